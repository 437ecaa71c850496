"""The generative engine on tiny backbones: decoding agrees with exhaustive scoring, any local
seq2seq checkpoint works, training learns, and an ID indexer retrieves through a ranking task."""

import itertools
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from indexbench.cache import ArtifactCache
from indexbench.data import SemanticIds
from indexbench.errors import UnknownNameError
from indexbench.generative import GenerativeOptions
from indexbench.generative.backbones import load_backbone
from indexbench.generative.decoding import constrained_beam_search, score_ids
from indexbench.generative.exact import score_all_ids
from indexbench.generative.id_tokens import IdTrie
from indexbench.protocols import RunContext

SIZES = (4, 3, 5)
QUERIES = ["red wooden toy train", "a tiny query", "stainless steel lab thermometer for liquids"]


def random_codes(n, seed=0):
    every = np.array(list(itertools.product(*(range(k) for k in SIZES))))
    return every[np.random.default_rng(seed).choice(len(every), n, replace=False)]


@pytest.fixture(scope="module")
def tiny_t5_dir(tmp_path_factory):
    """A randomly initialised T5 saved as a Hugging Face checkpoint, as a user's t5-base would be."""
    from transformers import T5Config, T5ForConditionalGeneration

    from indexbench.generative.builtin_backbones import minilm_tokenizer

    tokenizer = minilm_tokenizer()
    config = T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=16, d_ff=64, num_heads=2,
                      num_layers=2, num_decoder_layers=1, pad_token_id=0, decoder_start_token_id=0,
                      eos_token_id=tokenizer.sep_token_id)
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("tiny-t5")
    T5ForConditionalGeneration(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def backbone_with_ids(name, seed=0):
    backbone = load_backbone(str(name), seed=seed)
    backbone.add_id_tokens(SIZES)
    backbone.check_head()
    return backbone


@pytest.mark.parametrize("which", ["tiny", "local-t5"])
def test_beam_search_equals_exhaustive_scoring_when_beams_cover_every_id(which, tiny_t5_dir):
    backbone = backbone_with_ids("tiny" if which == "tiny" else tiny_t5_dir, seed=3)
    codes = random_codes(25)
    trie = IdTrie(codes, SIZES)
    ids, mask = backbone.text.collate(backbone.text.tokenize(QUERIES, max_length=16))
    with torch.no_grad():
        docs, scores = constrained_beam_search(backbone, trie, ids, mask, num_beams=40)
        for q in range(len(QUERIES)):
            exhaustive = score_ids(backbone, ids[q : q + 1].expand(25, -1), mask[q : q + 1].expand(25, -1),
                                   torch.tensor(codes))
            found = docs[q][docs[q] >= 0]
            assert sorted(found.tolist()) == list(range(25))  # every valid ID, once
            # ... best first, each with its exhaustive score (near-ties may swap places).
            assert torch.allclose(scores[q][:25], exhaustive[found], atol=1e-4)
            assert torch.allclose(scores[q][:25], exhaustive.sort(descending=True).values, atol=1e-4)
            assert (docs[q][25:] == -1).all()


@pytest.mark.parametrize("shared", [True, False], ids=["shared-input", "stock-attention"])
@pytest.mark.parametrize("which", ["tiny", "local-t5", "minilm-encdec"])
def test_scoring_a_whole_catalogue_with_shared_cross_attention_equals_scoring_each_id(which, shared, tiny_t5_dir):
    backbone = backbone_with_ids({"local-t5": tiny_t5_dir}.get(which, which), seed=2)
    torch.manual_seed(0)
    with torch.no_grad():  # untrained ID rows score every ID alike; spread them so ranks differ
        for rows in backbone.output_head().weight, backbone.id_embeddings(0):
            rows.add_(torch.randn_like(rows))
    codes = torch.tensor(random_codes(25, seed=4))
    ids, mask = backbone.text.collate(backbone.text.tokenize(QUERIES, max_length=16))
    implementation = backbone.model.config._attn_implementation
    with torch.no_grad():
        every = score_all_ids(backbone, ids, mask, codes, chunk=7, shared=shared)  # chunks of 7, 7, 7 and 4
        assert backbone.model.config._attn_implementation == implementation  # switched back
        assert every.shape == (3, 25)
        for q in range(3):
            one_by_one = score_ids(backbone, ids[q : q + 1].expand(25, -1), mask[q : q + 1].expand(25, -1), codes)
            assert torch.allclose(every[q], one_by_one, atol=1e-4)
        assert every.std(dim=1).min() > 0.1  # IDs are told apart ...
        assert not torch.allclose(every[0], every[2], atol=1e-3)  # ... and so are the inputs


@pytest.mark.parametrize("mask_kind", ["float", "bool", "none"])
def test_attention_to_one_shared_input_equals_attention_to_its_copies(mask_kind):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    from indexbench.generative.exact import shared_input_attention

    torch.manual_seed(0)
    rows, heads, length, keys, dim = 5, 3, 4, 7, 8
    query = torch.randn(rows, heads, length, dim)
    key, value = torch.randn(1, heads, keys, dim), torch.randn(1, heads, keys, dim)
    bias = torch.randn(1, heads, length, keys)
    allowed = torch.tensor([True] * 5 + [False] * 2).expand(rows, 1, length, keys)
    mask = {"float": torch.zeros(allowed.shape).masked_fill(~allowed, -1e9), "bool": allowed, "none": None}[mask_kind]
    module = torch.nn.Module().eval()
    module.is_causal = False
    ours, _ = shared_input_attention(module, query, key, value, mask, scaling=0.5, position_bias=bias)
    copies, _ = sdpa_attention_forward(module, query, key.expand(rows, -1, -1, -1).contiguous(),
                                       value.expand(rows, -1, -1, -1).contiguous(), mask, scaling=0.5,
                                       position_bias=bias)
    assert ours.shape == (rows, length, heads, dim)
    assert torch.allclose(ours, copies, atol=1e-5)


def test_narrow_beams_return_distinct_valid_ids_in_score_order_and_batching_changes_nothing():
    backbone = backbone_with_ids("tiny", seed=5)
    codes = random_codes(40, seed=1)
    trie = IdTrie(codes, SIZES)
    ids, mask = backbone.text.collate(backbone.text.tokenize(QUERIES, max_length=16))
    with torch.no_grad():
        docs, scores = constrained_beam_search(backbone, trie, ids, mask, num_beams=6)
        assert docs.shape == (3, 6)
        for q in range(3):
            assert len(set(docs[q].tolist())) == 6 and (docs[q] >= 0).all()
            assert (scores[q][:-1] >= scores[q][1:]).all()
            # Each returned document's score is the exhaustive score of its ID.
            exact = score_ids(backbone, ids[q : q + 1].expand(6, -1), mask[q : q + 1].expand(6, -1),
                              torch.tensor(codes[docs[q].numpy()]))
            assert torch.allclose(scores[q], exact, atol=1e-4)
            alone_ids, alone_mask = backbone.text.collate(backbone.text.tokenize([QUERIES[q]], max_length=16))
            alone, _ = constrained_beam_search(backbone, trie, alone_ids, alone_mask, num_beams=6)
            assert alone[0].tolist() == docs[q].tolist()


def test_unknown_backbone_lists_the_valid_names(tmp_path):
    with pytest.raises(UnknownNameError, match="minilm-encdec"):
        load_backbone("no-such-backbone")
    (tmp_path / "empty").mkdir()
    with pytest.raises(Exception, match="not a loadable seq2seq checkpoint"):
        load_backbone(str(tmp_path / "empty"))


# --------------------------------------------------------------------------- the engine end to end


@dataclass
class LettersConfig(GenerativeOptions):
    buckets: int = 6


class TitleLetters:
    """IDs from the first two letters of a title: crude but deterministic semantic IDs."""

    name = "letters"

    def __init__(self, config):
        self.config = config
        self.calls = 0

    def assign_ids(self, corpus, ctx):
        self.calls += 1
        k = self.config.buckets
        ids, used = {}, Counter()
        for doc in corpus:
            title = (doc.title or doc.text).lower() + "  "
            prefix = (ord(title[0]) % k, ord(title[1]) % k)
            ids[doc.id] = (*prefix, used[prefix])
            used[prefix] += 1
        return SemanticIds(ids=ids, codebook_sizes=(k, k, max(used.values())))


@pytest.fixture(scope="module")
def sample():
    from indexbench.registry import get_registry

    return get_registry().dataset("sample").load(None)


def memorisation_problem(sample):
    from indexbench.protocols import QuerySet, RetrievalProblem

    docs = list(sample.corpus)[:12]
    pairs = [(f"query number {i} about {d.title}", d.id) for i, d in enumerate(docs)]
    problem = RetrievalProblem(task="product-search", corpus=sample.corpus, train_pairs=pairs,
                               dev=QuerySet({"q0": pairs[0][0]}, {"q0": {pairs[0][1]: 1}}))
    return problem, pairs


def test_training_memorises_a_small_set_of_pairs(sample):
    """A model that can learn: after training, every training query finds its own document."""
    from indexbench.generative.engine import GenerativeRetrieval

    problem, pairs = memorisation_problem(sample)
    indexer = TitleLetters(LettersConfig(backbone="tiny", fresh_lr=1e-2, epochs=1000, max_steps=150,
                                         batch_size=12, warmup_ratio=0.0))
    engine = GenerativeRetrieval(indexer)
    retriever = engine.build_retriever(problem, RunContext(seed=0))
    training = engine.details["training"]
    assert training["steps"] == 150
    assert training["final_loss"] < training["first_loss"] / 10
    top = retriever.search([q for q, _ in pairs], 5)
    assert [ranking[0][0] for ranking in top] == [d for _, d in pairs]
    assert training["dev_checks"][-1]["recall@10"] == 1.0


def test_a_local_t5_checkpoint_trains_and_decodes(sample, tiny_t5_dir):
    from indexbench.generative.engine import GenerativeRetrieval

    problem, pairs = memorisation_problem(sample)
    engine = GenerativeRetrieval(TitleLetters(LettersConfig(backbone=str(tiny_t5_dir), lr=1e-2, epochs=1000,
                                                            max_steps=60, batch_size=12)))
    retriever = engine.build_retriever(problem, RunContext(seed=0))
    assert engine.details["training"]["final_loss"] < engine.details["training"]["first_loss"] * 0.7
    rankings = retriever.search([q for q, _ in pairs], 5)
    valid = set(sample.corpus.ids)
    assert all(len(r) == 5 and {d for d, _ in r} <= valid for r in rankings)


def test_id_indexer_runs_through_a_ranking_task_and_reuses_its_cache(sample, tmp_path):
    from indexbench.tasks.product_search import ProductSearchTask

    task = ProductSearchTask()
    config = LettersConfig(backbone="tiny", epochs=1, max_steps=5, num_beams=7)
    cache = ArtifactCache(tmp_path / "cache")
    first = task.evaluate(TitleLetters(config), sample, RunContext(seed=1, cache=cache))
    assert cache.misses == 1 and cache.hits == 0
    second = task.evaluate(TitleLetters(config), sample, RunContext(seed=1, cache=cache))
    assert cache.hits == 1
    assert first.metrics == second.metrics
    details = first.details["indexer"]
    assert details["training"]["steps"] == 5 and details["id_shape"] == [6, 6, details["id_shape"][2]]
    assert second.details["indexer"]["training"] == details["training"]  # reported from the cache
    assert set(first.metrics) == {"ndcg@5", "map@5", "recall@10"}


@pytest.mark.parametrize("documents_as_queries, option, with_documents", [
    (True, "auto", True), (False, "auto", False), (False, "yes", True), (True, "no", False)])
def test_indexing_pairs_follow_the_task_unless_told(sample, documents_as_queries, option, with_documents):
    """"auto" adds (document text -> ID) pairs exactly when the task says a document's text is a
    fair query for it (search, not recommendation)."""
    import dataclasses

    from indexbench.generative.engine import GenerativeRetrieval

    problem, pairs = memorisation_problem(sample)
    problem = dataclasses.replace(problem, documents_as_queries=documents_as_queries)
    engine = GenerativeRetrieval(TitleLetters(LettersConfig(backbone="tiny", max_steps=1,
                                                            indexing_pairs=option)))
    engine.build_retriever(problem, RunContext(seed=0))
    expected = len(pairs) + (len(sample.corpus) if with_documents else 0)
    assert engine.details["training"]["examples"] == expected


def test_first_position_is_warm_started_unless_switched_off(sample):
    from indexbench.errors import ConfigError
    from indexbench.generative.engine import GenerativeRetrieval

    problem, _ = memorisation_problem(sample)
    engine = GenerativeRetrieval(TitleLetters(LettersConfig(backbone="tiny", max_steps=1)))
    engine.build_retriever(problem, RunContext(seed=0))
    report = engine.details["training"]["id_init"]
    assert report["documents"] == len(sample.corpus) and report["codes"] <= 6
    off = GenerativeRetrieval(TitleLetters(LettersConfig(backbone="tiny", max_steps=1, id_init="none")))
    off.build_retriever(problem, RunContext(seed=0))
    assert "id_init" not in off.details["training"]
    with pytest.raises(ConfigError, match="id_init"):
        GenerativeRetrieval(TitleLetters(LettersConfig(backbone="tiny", id_init="centroids"))).build_retriever(
            problem, RunContext(seed=0))


def test_length_groups_split_only_when_padding_is_worth_saving():
    from indexbench.generative.training import length_groups

    assert length_groups([5, 6, 5, 7]) == [[0, 1, 2, 3]]  # similar lengths: one batch
    assert length_groups([64, 8, 64, 9, 7, 64]) == [[1, 3, 4], [0, 2, 5]]
    assert length_groups([3]) == [[0]]
    groups = length_groups([10, 60, 12, 64, 11, 62, 9, 58])
    assert sorted(sum(groups, [])) == list(range(8)) and len(groups) == 2


@pytest.mark.parametrize("which", ["tiny", "local-t5"])
def test_the_split_batch_loss_and_gradients_equal_the_whole_batchs(which, tiny_t5_dir):
    from indexbench.generative.training import id_batch_loss, length_groups

    backbone = backbone_with_ids("tiny" if which == "tiny" else tiny_t5_dir, seed=1)
    backbone.model.eval()  # no dropout: the two must then agree to float rounding
    texts = QUERIES + ["a long document " * 12, "another long product description " * 8]
    inputs = backbone.text.tokenize(texts, max_length=48)
    targets = [tuple(int(c) for c in row) for row in random_codes(len(inputs), seed=2)]
    assert len(length_groups([len(x) for x in inputs])) == 2

    def loss_and_grads(split):
        backbone.model.zero_grad(set_to_none=True)
        if split:
            loss = id_batch_loss(backbone, inputs, targets)
        else:  # the whole batch padded to its longest input, as before the split
            from indexbench.generative.decoding import id_losses

            ids, mask = backbone.text.collate(inputs, backbone.device)
            loss = id_losses(backbone, ids, mask, torch.tensor(targets)).mean()
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in backbone.model.parameters() if p.grad is not None]

    whole, whole_grads = loss_and_grads(False)
    split, split_grads = loss_and_grads(True)
    torch.testing.assert_close(split, whole, rtol=1e-5, atol=1e-6)
    assert len(split_grads) == len(whole_grads)
    for a, b in zip(split_grads, whole_grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
