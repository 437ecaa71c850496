"""indexbench.encoders: the shared text encoder, its cache and contrastive fine-tuning.

Everything runs on the ``tiny`` encoder (a random 2-layer BERT built in code); only the MiniLM
sanity check is marked slow.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from indexbench.cache import ArtifactCache
from indexbench.encoders import (
    build_tiny_encoder,
    builtin_encoders,
    conflict_free_batches,
    cpu_has_amx_bf16,
    embedding_key,
    encode_cached,
    int8_copy,
    other_positives_mask,
    resolve_precision,
    train_in_batch_negatives,
)
from indexbench.errors import ConfigError

TEXTS = [
    "short",
    "a considerably longer sentence about protein folding in yeast cells and what it implies",
    "medium length text on vitamin d",
    "x",
    "another long one: randomized controlled trial of statins in elderly patients with diabetes",
]

TOY_PAIRS = [
    (f"which study reports {w} levels", f"{w} measurements in a cohort of {w} patients")
    for w in ["insulin", "cortisol", "ferritin", "calcium", "sodium", "glucose", "lactate", "urea",
              "albumin", "troponin", "creatinine", "bilirubin", "thyroxine", "estradiol", "renin",
              "leptin"]
]


@pytest.fixture(scope="module")
def tiny():
    return build_tiny_encoder()


def test_module_import_does_not_import_torch():
    code = "import indexbench.encoders, sys; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_builtin_encoders_are_minilm_and_tiny():
    assert [e.name for e in builtin_encoders()] == ["minilm", "tiny"]


def test_shape_dtype_and_normalisation(tiny):
    emb = tiny.encode(TEXTS)
    assert emb.shape == (len(TEXTS), tiny.dim)
    assert emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)


def test_empty_input(tiny):
    assert tiny.encode([]).shape == (0, tiny.dim)


def test_order_preserved_despite_length_sorting(tiny):
    batched = tiny.encode(TEXTS, batch_size=2)
    one_by_one = np.stack([tiny.encode([t])[0] for t in TEXTS])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)


def test_left_and_right_truncation_keep_end_and_start(tiny):
    text = "one two three four five six"
    # 5 tokens = [CLS] + 3 words + [SEP]
    assert tiny.tokenize([text], max_length=5, truncation="right") == tiny.tokenize(["one two three"])
    assert tiny.tokenize([text], max_length=5, truncation="left") == tiny.tokenize(["four five six"])
    right = tiny.encode([text], max_length=5, truncation="right")
    left = tiny.encode([text], max_length=5, truncation="left")
    np.testing.assert_allclose(right, tiny.encode(["one two three"]), atol=1e-6)
    np.testing.assert_allclose(left, tiny.encode(["four five six"]), atol=1e-6)
    assert not np.allclose(left, right)


def test_max_length_is_capped_by_the_model(tiny):
    ids = tiny.tokenize(["word " * 2000], max_length=100_000)
    assert len(ids[0]) == tiny.max_positions


def test_progress_is_reported(tiny):
    seen = {}

    class Task:
        def advance(self, n=1):
            seen["done"] = seen.get("done", 0) + n

        def set_status(self, text):
            pass

    class Progress:
        from contextlib import contextmanager

        @contextmanager
        def task(self, description, total=None):
            seen["description"], seen["total"] = description, total
            yield Task()

    tiny.encode(TEXTS, batch_size=2, progress=Progress(), description="docs")
    assert seen == {"description": "docs", "total": len(TEXTS), "done": len(TEXTS)}


def test_cache_hit_returns_identical_array_without_encoding(tiny, tmp_path, monkeypatch):
    cache = ArtifactCache(tmp_path)
    calls = []
    real = tiny.encode
    monkeypatch.setattr(tiny, "encode", lambda *a, **k: calls.append(1) or real(*a, **k))

    first = encode_cached(tiny, TEXTS, cache, max_length=16)
    second = encode_cached(tiny, TEXTS, cache, max_length=16)
    assert len(calls) == 1 and cache.hits == 1
    np.testing.assert_array_equal(first, second)

    encode_cached(tiny, TEXTS, cache, max_length=16, truncation="left")  # another key
    encode_cached(tiny, TEXTS[:-1], cache, max_length=16)  # other texts
    assert len(calls) == 3

    encode_cached(tiny, TEXTS, None, max_length=16)  # no cache: always computes
    assert len(calls) == 4


@pytest.mark.parametrize("precision", ["int8", "bf16"])
def test_lower_precision_embeddings_stay_close_to_fp32_and_leave_the_float_model_alone(precision):
    import torch

    fp32 = build_tiny_encoder()
    fp32.precision = "fp32"  # not auto: that is bf16 on an AMX CPU
    low = build_tiny_encoder()
    low.precision = precision
    a, b = fp32.encode(TEXTS), low.encode(TEXTS)
    assert not np.array_equal(a, b)  # it did compute in the lower precision ...
    np.testing.assert_allclose(np.sum(a * b, axis=1), 1.0, atol=0.01)  # ... and stays close
    # The same text's row stays nearest its own fp32 row: rankings survive the precision.
    assert (np.argmax(b @ a.T, axis=1) == np.arange(len(TEXTS))).all()
    np.testing.assert_array_equal(low.encode(TEXTS), b)  # repeatable
    # Training and the weights' identity see the float model, untouched.
    assert all(p.dtype == torch.float32 for p in low.model.parameters())
    assert low.identity == fp32.identity


def test_int8_copy_per_channel_gives_each_output_row_its_own_weight_scale():
    import torch

    model = build_tiny_encoder().model
    layer = model.encoder.layer[0].intermediate.dense
    per_tensor = int8_copy(model).encoder.layer[0].intermediate.dense.weight()
    per_channel = int8_copy(model, per_channel=True).encoder.layer[0].intermediate.dense.weight()
    assert per_tensor.qscheme() == torch.per_tensor_affine
    assert per_channel.qscheme() == torch.per_channel_affine
    scales = per_channel.q_per_channel_scales()
    assert len(scales) == layer.out_features and len(set(scales.tolist())) > 1
    # Finer scales: the dequantised weights sit closer to the float ones.
    error = lambda q: float((q.dequantize() - layer.weight.detach()).abs().mean())  # noqa: E731
    assert error(per_channel) < error(per_tensor)


def test_int8_follows_the_weights_after_they_change(tmp_path):
    encoder = build_tiny_encoder()
    encoder.precision = "int8"
    before = encoder.encode(TEXTS)
    train_in_batch_negatives(encoder, TOY_PAIRS, epochs=1, batch_size=8, lr=1e-2, seed=0,
                             query_max_length=16, doc_max_length=16)
    after = encoder.encode(TEXTS)
    assert not np.allclose(before, after, atol=1e-3)  # a stale quantised copy would repeat `before`
    reference = build_tiny_encoder()
    reference.model.load_state_dict(encoder.model.state_dict())
    np.testing.assert_allclose(np.sum(after * reference.encode(TEXTS), axis=1), 1.0, atol=0.01)


def test_cache_keys_differ_by_precision(tiny, tmp_path):
    keys = {}
    for precision in ("fp32", "int8", "bf16"):
        encoder = build_tiny_encoder()
        encoder.precision = precision
        keys[precision] = embedding_key(encoder, TEXTS, max_length=16, truncation="right")
    assert len({str(k) for k in keys.values()}) == 3
    cache = ArtifactCache(tmp_path)
    quantised = build_tiny_encoder()
    quantised.precision = "int8"
    encode_cached(tiny, TEXTS, cache, max_length=16)
    encode_cached(quantised, TEXTS, cache, max_length=16)
    assert cache.hits == 0  # the int8 run did not reuse the fp32 rows


def test_precision_resolution_and_errors(monkeypatch):
    import indexbench.encoders

    assert cpu_has_amx_bf16() in (True, False)
    monkeypatch.setattr(indexbench.encoders.precision, "cpu_has_amx_bf16", lambda: True)
    assert resolve_precision("auto", "cpu") == "bf16"  # AMX: bf16 is the fast one, at fp32's quality
    monkeypatch.setattr(indexbench.encoders.precision, "cpu_has_amx_bf16", lambda: False)
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("auto", "cuda:0") == "bf16"
    assert resolve_precision("bf16", "cpu") == "bf16"
    with pytest.raises(ConfigError, match="int8 .* CPU only"):
        resolve_precision("int8", "cuda")
    with pytest.raises(ConfigError, match="one of auto, fp32, int8, bf16, not 'fp16'"):
        resolve_precision("fp16", "cpu")


def test_conflict_free_batches_never_repeat_a_query_or_document():
    keys = [("q1", "d1"), ("q2", "d1"), ("q3", "d1"), ("q1", "d2"), ("q4", "d3"), ("q5", "d4"),
            ("q6", "d5"), ("q4", "d6")]
    batches = conflict_free_batches(keys, list(range(len(keys))), batch_size=4)
    assert sorted(i for b in batches for i in b) == list(range(len(keys)))
    for batch in batches:
        assert len(batch) <= 4
        assert len({keys[i][0] for i in batch}) == len(batch)
        assert len({keys[i][1] for i in batch}) == len(batch)


def test_other_known_positives_are_masked():
    positives = {"q1": {"d1", "d2"}, "q2": {"d2"}}
    assert other_positives_mask(["q1", "q2"], ["d1", "d2"], positives) == [[False, True], [False, False]]


def test_finetuning_reduces_the_training_loss(tiny):
    encoder = build_tiny_encoder()
    before = encoder.identity
    history = train_in_batch_negatives(encoder, TOY_PAIRS, epochs=8, batch_size=8, lr=2e-3, seed=0,
                                       query_max_length=16, doc_max_length=16)
    assert history["steps"] == 16 and len(history["losses"]) == 16
    assert history["final_loss"] < 0.5 * history["first_loss"]
    assert encoder.identity["weights"].startswith("sha256:") and encoder.identity != before
    assert not encoder.model.training


def test_finetuning_is_deterministic_and_leaves_global_rng_alone():
    import torch

    def run(seed):
        encoder = build_tiny_encoder()
        history = train_in_batch_negatives(encoder, TOY_PAIRS, epochs=2, batch_size=8, lr=1e-3,
                                           seed=seed, max_steps=3)
        return encoder, history

    state = torch.random.get_rng_state()
    a, ha = run(0)
    assert torch.equal(state, torch.random.get_rng_state())
    b, hb = run(0)
    c, _ = run(1)
    assert ha["steps"] == 3
    assert ha["losses"] == hb["losses"]
    assert a.identity == b.identity != c.identity
    np.testing.assert_array_equal(a.encode(TEXTS), b.encode(TEXTS))


def test_save_and_load_weights_round_trip(tmp_path):
    trained = build_tiny_encoder()
    train_in_batch_negatives(trained, TOY_PAIRS, epochs=1, batch_size=8, lr=1e-3, max_steps=2)
    trained.save(tmp_path / "enc")

    fresh = build_tiny_encoder()
    assert fresh.identity != trained.identity
    fresh.load_weights(tmp_path / "enc")
    assert fresh.identity == trained.identity
    np.testing.assert_array_equal(fresh.encode(TEXTS), trained.encode(TEXTS))

    from indexbench.encoders import TextEncoder

    loaded = TextEncoder.from_pretrained(tmp_path / "enc")
    assert loaded.identity == trained.identity
    np.testing.assert_array_equal(loaded.encode(TEXTS), trained.encode(TEXTS))


@pytest.mark.slow
def test_minilm_paraphrases_are_closer_than_unrelated_text():
    from indexbench.encoders import load_minilm

    encoder = load_minilm()
    assert encoder.dim == 384 and encoder.identity["weights"] == "pretrained"
    a, b, c = encoder.encode([
        "Vitamin D supplements lower the risk of bone fractures in older adults.",
        "Taking vitamin D reduces how often elderly people break bones.",
        "The stock market closed higher after the central bank held interest rates.",
    ])
    assert a @ b > a @ c + 0.3
    assert a @ b > b @ c + 0.3
