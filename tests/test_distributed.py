"""Data-parallel training: 2 processes on the gloo backend against one process, same batches."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from indexbench import distributed  # noqa: E402

EXAMPLES = [([101, 2000 + i, 2100 + (i % 5), 102], (i % 4, (i // 4) % 4)) for i in range(20)]
# batch 8 over 20 examples: the last batch of each epoch has 4, and a step's shards differ in size
STEPS = 5


def _train(out: str) -> None:
    """Train the tiny backbone a few steps (no dropout, so shards and one batch see the same
    model) and save its weights and history to ``out``."""
    from indexbench.generative.builtin_backbones import build_tiny
    from indexbench.generative.options import GenerativeOptions
    from indexbench.generative.training import train_id_generation
    from indexbench.protocols import RunContext

    backbone = build_tiny(seed=0)
    backbone.model.train = lambda mode=True: backbone.model  # stay in eval mode: no dropout
    backbone.add_id_tokens((4, 4))
    options = GenerativeOptions(batch_size=8, max_steps=STEPS, lr=1e-3, fresh_lr=1e-3, warmup_ratio=0.0)
    ctx = RunContext(seed=0, device="cpu", cache=None, dataset_name="toy", task_name="toy")
    history = train_id_generation(backbone, EXAMPLES, options, ctx)
    torch.save({"state": backbone.model.state_dict(), "losses": history["loss_curve"],
                "rank": distributed.rank(), "world": distributed.world_size()}, out)


def _worker(rank: int, world: int, port: int, outdir: str, train=None, name: str = "rank") -> None:
    """One of ``world`` processes as torchrun starts them: join the gloo group, run ``train``
    (default `_train`) writing to ``outdir/{name}{rank}.pt``."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    assert distributed.init_from_environment("cpu")
    try:
        (train or _train)(str(Path(outdir) / f"{name}{rank}.pt"))
    finally:
        torch.distributed.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_shard_splits_a_batch_and_weights_each_part_by_its_share():
    assert distributed.shard([1, 2, 3]) == ([1, 2, 3], 1.0)  # one process: the whole batch


def test_two_gloo_processes_train_the_engine_to_the_single_process_weights(tmp_path):
    torch.set_num_threads(1)
    _train(str(tmp_path / "single.pt"))
    torch.multiprocessing.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    single = torch.load(tmp_path / "single.pt")
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert [r["world"] for r in ranks] == [2, 2] and single["world"] == 1
    for name, weight in single["state"].items():
        for r in ranks:  # every process ends with the same weights, and those of one process
            assert torch.allclose(r["state"][name], weight, atol=1e-5, rtol=1e-4), name
    assert ranks[0]["losses"] == pytest.approx(single["losses"], rel=1e-5)
    moved = any(not torch.equal(w, v) for w, v in zip(single["state"].values(), _initial_state().values()))
    assert moved  # training changed the weights: the comparison is not of two untouched models


def _initial_state():
    from indexbench.generative.builtin_backbones import build_tiny

    return build_tiny(seed=0).model.state_dict()


def _run_grid(out: str) -> None:
    from indexbench.runner import run_grid

    root = Path(out).parent
    records = run_grid(GRID_INDEXER, ["product-search"], ["sample"], store=root / "ddp.sqlite",
                       cache_dir=root / "ddp-cache", device="cpu")
    torch.save({"metrics": records[0].metrics, "details": records[0].details}, out)


GRID_INDEXER = ["random-ids:backbone=tiny:max_steps=6:batch_size=16"]


def test_a_grid_under_two_processes_stores_one_record_with_the_single_process_metrics(tmp_path):
    from indexbench.runner import run_grid
    from indexbench.store import ResultStore

    torch.set_num_threads(1)
    single = run_grid(GRID_INDEXER, ["product-search"], ["sample"], store=False,
                      cache_dir=tmp_path / "single-cache", device="cpu")[0]
    torch.multiprocessing.spawn(_worker, args=(2, _free_port(), str(tmp_path), _run_grid, "grid"), nprocs=2,
                                join=True)
    stored = ResultStore(tmp_path / "ddp.sqlite").records()
    assert len(stored) == 1 and stored[0].status == "ok"  # the main process alone wrote it
    assert stored[0].details["data_parallel_processes"] == 2
    # Dropout draws other masks for two shards of 8 than for one batch of 16, so the runs are
    # not bit-equal (the engine test above, without dropout, is); the start is the same model.
    trained, reference = (r.details["indexer"]["training"] for r in (stored[0], single))
    assert trained["steps"] == reference["steps"] == 6
    assert trained["first_loss"] == pytest.approx(reference["first_loss"], rel=0.05)
    ranks = [torch.load(tmp_path / f"grid{r}.pt", weights_only=False) for r in range(2)]
    assert ranks[0]["metrics"] == ranks[1]["metrics"]
    # only the main process wrote artifacts: one of each, no second copy from the other rank
    assert not any(p.name.startswith(".") for p in (tmp_path / "ddp-cache").rglob("*"))


PAIRS = [(f"query number {i} about {w}", f"document {i} on {w} and more") for i, w in
         enumerate(["lenses", "gloves", "pumps", "valves", "tubes", "clamps", "sieves", "scales", "flasks"])]
# batch 4 over 9 pairs: the last batch has 1 pair and is dropped; two processes hold 2 rows each


def _train_encoder(out: str) -> None:
    """Fine-tune the tiny dual encoder a few in-batch-negative steps, dropout off."""
    from indexbench.encoders import build_tiny_encoder, train_in_batch_negatives

    encoder = build_tiny_encoder(seed=0)
    encoder.model.train = lambda mode=True: encoder.model  # stay in eval mode: no dropout
    history = train_in_batch_negatives(encoder, PAIRS, epochs=2, batch_size=4, lr=1e-3, warmup_ratio=0.0)
    torch.save({"state": encoder.model.state_dict(), "losses": history["losses"]}, out)


def _train_simcse(out: str) -> None:
    from indexbench.encoders import build_tiny_encoder
    from indexbench.simcse import SimCSEConfig, train_simcse

    encoder = build_tiny_encoder(seed=0)
    encoder.model.train = lambda mode=True: encoder.model  # no dropout: the positive is the row itself
    history = train_simcse(encoder, [d for _, d in PAIRS], SimCSEConfig(max_steps=3, batch_size=5, lr=1e-3))
    torch.save({"state": encoder.model.state_dict(), "losses": history["losses"]}, out)


@pytest.mark.parametrize("train", [_train_encoder, _train_simcse], ids=["in-batch-negatives", "simcse"])
def test_two_gloo_processes_fine_tune_the_dual_encoder_to_the_single_process_weights(tmp_path, train):
    torch.set_num_threads(1)
    train(str(tmp_path / "single.pt"))
    torch.multiprocessing.spawn(_worker, args=(2, _free_port(), str(tmp_path), train, "encoder"),
                                nprocs=2, join=True)
    single = torch.load(tmp_path / "single.pt")
    ranks = [torch.load(tmp_path / f"encoder{r}.pt") for r in range(2)]
    assert len(single["losses"]) == (4 if train is _train_encoder else 2)
    for r in ranks:  # the in-batch negatives span both processes' rows, as in one process
        assert r["losses"] == pytest.approx(single["losses"], rel=1e-5)
        for name, weight in single["state"].items():
            assert torch.allclose(r["state"][name], weight, atol=1e-5, rtol=1e-4), name


def _train_lmindexer(out: str) -> None:
    """LMIndexer's whole self-supervised schedule on the tiny backbone, every module kept in
    eval mode (no dropout: the SimCSE positive is then h itself)."""
    from indexbench.data import Corpus, Document
    from indexbench.protocols import RunContext
    from indexbench.registry import get_registry

    original = torch.nn.Module.train
    torch.nn.Module.train = lambda self, mode=True: original(self, False)
    try:
        entry = get_registry().indexer("lmindexer")
        indexer = entry.factory(entry.config_class(
            backbone="tiny", codebook_size=64, reconstructor_warmup_steps=3, encoder_warmup_steps=3,
            position_steps=4, index_batch_size=8, diagnostics_every=0, eval_batch_size=16))
        words = ["pipette tips sterile", "safety gloves nitrile", "drill bits cobalt", "glass beakers"]
        corpus = Corpus(Document(id=f"d{i}", text=f"{words[i % 4]} model {i} pack of {i % 5 + 1}")
                        for i in range(30))
        ids = indexer.assign_ids(corpus, RunContext(seed=3))
    finally:
        torch.nn.Module.train = original
    torch.save({"ids": ids.ids, "phases": indexer.details["phases"]}, out)


def test_two_gloo_processes_run_lmindexers_schedule_as_one_process_does(tmp_path):
    torch.set_num_threads(1)
    _train_lmindexer(str(tmp_path / "single.pt"))
    torch.multiprocessing.spawn(_worker, args=(2, _free_port(), str(tmp_path), _train_lmindexer, "lmindexer"),
                                nprocs=2, join=True)
    single = torch.load(tmp_path / "single.pt", weights_only=False)
    ranks = [torch.load(tmp_path / f"lmindexer{r}.pt", weights_only=False) for r in range(2)]
    assert ranks[0]["ids"] == ranks[1]["ids"]  # the processes stay in lockstep
    trained = [p for p in single["phases"] if "mean_reconstruction" in p]
    assert [p["phase"] for p in trained] == ["reconstructor-warmup", "encoder-warmup@1", "train@1",
                                             "encoder-warmup@2", "train@2"]
    for one, two in zip(single["phases"], ranks[0]["phases"]):
        for key in ("mean_reconstruction", "mean_contrastive", "mean_commitment"):
            if key in one:  # each loss the sum of the processes' shares = one process's loss
                assert two[key] == pytest.approx(one[key], rel=1e-4), (one["phase"], key)
    agree = sum(a == b for a, b in zip(single["ids"].values(), ranks[0]["ids"].values()))
    assert agree >= 0.9 * len(single["ids"])  # an argmax may flip on a last-bit difference


def _train_sasrec(out: str, loss: str = "ce", negatives: int = 0) -> None:
    """SASRec a few epochs on users walking an item cycle, without dropout; uneven lengths, so
    the processes' rows hold different numbers of positions, and 33 users in batches of 8, so
    each epoch's last batch has one row and the second process none. Two epochs: over more
    steps a ReLU input at 0 can flip on float order and the runs part by more than rounding."""
    import numpy as np
    from indexbench_sasrec import SASRecConfig
    from indexbench_sasrec._model import SASRecModel
    from indexbench_sasrec._train import ItemIndex, train

    from indexbench.protocols import SilentProgress

    items = ItemIndex([str(i) for i in range(20)])
    sequences = [[str((u * 3 + t) % 20) for t in range(3 + u % 5)] for u in range(33)]
    config = SASRecConfig(hidden=16, dropout=0.0, lr=1e-2, batch_size=8, max_epochs=2, loss=loss, negatives=negatives)
    torch.manual_seed(0)
    model = SASRecModel(20, config.hidden, config.blocks, config.heads, config.max_len, config.dropout)
    history = train(model, config, items, sequences, items.right_aligned([s[:-1] for s in sequences[:6]], 50),
                    np.array([items.index[s[-1]] for s in sequences[:6]]), seed=0, device="cpu",
                    progress=SilentProgress())
    torch.save({"state": model.state_dict(), "losses": [p["loss"] for p in history["curve"]]}, out)


def _train_sasrec_bce(out: str) -> None:
    _train_sasrec(out, loss="bce")


@pytest.mark.parametrize("train", [_train_sasrec, _train_sasrec_bce], ids=["ce", "bce"])
def test_two_gloo_processes_train_sasrec_to_the_single_process_weights(tmp_path, train):
    torch.set_num_threads(1)
    train(str(tmp_path / "single.pt"))
    torch.multiprocessing.spawn(_worker, args=(2, _free_port(), str(tmp_path), train, "sasrec"), nprocs=2, join=True)
    single = torch.load(tmp_path / "single.pt")
    for r in range(2):  # same negatives, each process's rows' share of the batch mean
        ranks = torch.load(tmp_path / f"sasrec{r}.pt")
        assert ranks["losses"] == pytest.approx(single["losses"], rel=1e-5)
        for name, weight in single["state"].items():
            other = ranks["state"][name]
            if name.endswith("in_proj_bias"):
                # Not the key bias (the middle third): softmax ignores it, its true gradient is 0,
                # and Adam scales float noise of either summation order to full-size steps.
                third = len(weight) // 3
                weight, other = torch.cat([weight[:third], weight[2 * third:]]), torch.cat([other[:third], other[2 * third:]])
            assert torch.allclose(other, weight, atol=1e-5, rtol=1e-4), name
    assert single["losses"][1] < single["losses"][0]  # it trained: the comparison is not of untouched models


@pytest.mark.parametrize(("loss", "negatives"), [("ce", 0), ("bce", 0), ("ce", 7), ("bce", 7)])
def test_sasrec_shards_of_a_batch_add_up_to_its_loss_and_gradient(monkeypatch, loss, negatives):
    """What two processes compute at the same weights: each one's rows' share, plus a stand-in
    with no rows, sum to one process's batch loss and gradient (every loss, shared negatives
    included: a position's own column is found among the whole batch's targets). Training runs
    are compared above; with shared negatives float order parts them within a few steps, so the
    contract is checked here, exactly, at fixed weights."""
    import numpy as np
    from indexbench_sasrec import SASRecConfig
    from indexbench_sasrec import _train as sasrec_train
    from indexbench_sasrec._model import SASRecModel

    items = sasrec_train.ItemIndex([str(i) for i in range(20)])
    windows = items.right_aligned([[str((u * 3 + t) % 20) for t in range(3 + u % 5)] for u in range(8)], 8)
    inputs, targets = windows[:, :-1], windows[:, 1:]
    config = SASRecConfig(hidden=16, loss=loss, negatives=negatives)
    sampler = sasrec_train.popularity(windows, 20, 0.5) if negatives else None
    torch.manual_seed(0)
    model = SASRecModel(20, 16, 2, 1, 50, 0.0)

    def part(rows, share):
        monkeypatch.setattr(sasrec_train.distributed, "shard_indices", lambda size: rows)
        monkeypatch.setattr(sasrec_train.distributed, "shard_share", lambda size: share)
        batch = sasrec_train.make_batch(inputs, targets, config, 20, sampler, torch.Generator().manual_seed(1), "cpu")
        model.zero_grad()
        value = sasrec_train.batch_loss(model, batch, loss)
        value.backward()
        return float(value.detach()), torch.cat([p.grad.reshape(-1) for p in model.parameters()])

    whole, gradient = part(list(range(8)), 1.0)
    parts = [part([0, 2, 4, 6], 0.5), part([1, 3, 5, 7], 0.5), part([0], 0.0)]
    assert sum(value for value, _ in parts) == pytest.approx(whole, rel=1e-6)
    assert torch.allclose(sum(g for _, g in parts), gradient, atol=1e-4, rtol=1e-5)
    assert parts[2][0] == 0 and not parts[2][1].any()  # the stand-in adds nothing
    assert np.isfinite(whole) and gradient.abs().max() > 0
