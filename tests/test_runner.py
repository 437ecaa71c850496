"""The runner, store, cache and leaderboard as a library: `run_grid` in-process."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from indexbench import hookimpl
from indexbench.cache import ArtifactCache
from indexbench.entries import IndexerEntry
from indexbench.errors import ConfigError
from indexbench.leaderboard import build_tables, render_markdown
from indexbench.registry import load_registry
from indexbench.runner import run_grid
from indexbench.specs import IndexerSpec
from indexbench.store import ResultStore

sys.path.insert(0, str(Path(__file__).parent / "example_plugin"))
import indexbench_example  # noqa: E402


class Exploding:
    name = "exploding"

    def __init__(self, config):
        pass

    def build_retriever(self, problem, ctx):
        raise RuntimeError("out of cheese")


class ClashingPlugin:
    @staticmethod
    @hookimpl
    def register_indexers(register):
        register(IndexerEntry(name="bm25", factory=Exploding))


class MarkupExploding(Exploding):
    """Fails with text that Rich would read as markup."""

    def build_retriever(self, problem, ctx):
        raise RuntimeError("[bold]out of cheese[/]")


class ExplodingPlugin:
    @staticmethod
    @hookimpl
    def register_indexers(register):
        register(IndexerEntry(name="exploding", factory=Exploding))
        register(IndexerEntry(name="exploding2", factory=MarkupExploding))


@pytest.fixture(scope="module")
def registry():
    return load_registry(extra_plugins=[indexbench_example, ExplodingPlugin, ClashingPlugin])


def test_a_third_party_plugin_cannot_take_a_built_in_name(registry):
    clash = [p for p in registry.plugins if p.name.endswith("ClashingPlugin")][0]
    assert clash.error is None and clash.registers == {}
    assert clash.warnings == ["indexer 'bm25' is a built-in name (of bm25); this plugin's indexer of that "
                              "name is not registered -- rename it"]
    assert registry.indexer("bm25").plugin == "bm25"


def test_grid_records_ok_skipped_and_error_cells_and_goes_on(registry, tmp_path):
    store = ResultStore(tmp_path / "r.sqlite")
    records = run_grid(["exploding", "word-overlap"], ["product-search", "id-quality"], ["sample"],
                       cache_dir=tmp_path / "cache", store=store, registry=registry, device="cpu")
    status = {(r.indexer, r.task): (r.status, r.reason) for r in records}
    assert status[("exploding", "product-search")] == ("error", "RuntimeError: out of cheese")
    assert status[("word-overlap", "product-search")][0] == "ok"
    assert status[("exploding", "id-quality")][0] == "skipped"
    assert len(store.records()) == 4
    error = [r for r in store.records() if r.status == "error"][0]
    assert "out of cheese" in error.details["traceback"]


def test_the_runner_logs_plain_text_with_a_level_and_the_console_prints_it_literally(registry, tmp_path):
    import io

    from rich.console import Console

    from indexbench.console import RichProgress
    from indexbench.protocols import LOG_LEVELS, SilentProgress

    logged = []

    class Recorder(SilentProgress):
        def log(self, message, level="info"):
            logged.append((message, level))

    run_grid(["exploding2", "word-overlap"], ["product-search", "id-quality"], ["sample"], store=False,
             cache_dir=tmp_path / "cache", registry=registry, device="cpu", progress=Recorder())
    levels = sorted(level for _, level in logged)
    assert levels == ["error", "ok", "skipped", "skipped"] and set(levels) <= set(LOG_LEVELS)
    error = next(m for m, level in logged if level == "error")
    assert error == "exploding2 × product-search × sample: error (RuntimeError: [bold]out of cheese[/])"

    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None)
    progress = RichProgress(console=console)
    for message, level in logged:
        progress.log(message, level)
    shown = out.getvalue()
    assert "✗ exploding2 × product-search × sample: error (RuntimeError: [bold]out of cheese[/])" in shown
    assert shown.count("✓ ") == 1 and shown.count("– ") == 2  # outcomes read without colour


def test_same_seed_same_metrics_and_latest_record_wins(registry, tmp_path):
    store = ResultStore(tmp_path / "r.sqlite")
    runs = [run_grid(["title-letters"], ["id-quality"], ["sample"], cache_dir=tmp_path / "c", store=store,
                     registry=registry, device="cpu", seed=3)[0] for _ in range(2)]
    assert runs[0].metrics == runs[1].metrics and runs[0].status == "ok"
    assert runs[0].config_hash == runs[1].config_hash
    assert len(store.records(latest=False)) == 2 and len(store.records()) == 1


def test_bm25_fitted_index_is_cached(registry, tmp_path):
    first = run_grid(["bm25"], ["product-search"], ["sample"], cache_dir=tmp_path / "c", store=False,
                     registry=registry, device="cpu")[0]
    assert list((tmp_path / "c" / "bm25").iterdir())
    second = run_grid(["bm25"], ["product-search"], ["sample"], cache_dir=tmp_path / "c", store=False,
                      registry=registry, device="cpu")[0]
    assert first.status == second.status == "ok" and first.metrics == second.metrics


def test_indexer_spec_parsing_and_labels():
    spec = IndexerSpec.parse("dual-encoder:finetune=true:batch-size=8")
    assert spec.name == "dual-encoder"
    assert spec.options == (("batch_size", "8"), ("finetune", "true"))
    assert spec.label == "dual-encoder:batch_size=8:finetune=true"
    with pytest.raises(ConfigError, match="not of the form key=value"):
        IndexerSpec.parse("bm25:k1")


def test_option_types_are_converted(registry):
    config = IndexerSpec.parse("title-letters:buckets=5").build_config(registry.indexer("title-letters"))
    assert config.buckets == 5
    with pytest.raises(ConfigError, match="expects int"):
        IndexerSpec.parse("title-letters:buckets=many").build_config(registry.indexer("title-letters"))


def test_markdown_leaderboard_keeps_skips_visible(registry, tmp_path):
    records = run_grid(["word-overlap"], ["id-quality"], ["sample"], store=False, registry=registry,
                       use_cache=False, device="cpu")
    text = render_markdown(build_tables(records))
    assert "| word-overlap (indexbench_example 0.3.0) | skipped: word-overlap assigns no semantic IDs" in text


def test_cache_writes_are_atomic(tmp_path):
    cache = ArtifactCache(tmp_path)

    def fail(directory):
        (directory / "half").write_text("x")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        cache.get_or_create("ns", {"k": 1}, fail, lambda d: d)
    assert not cache.has("ns", {"k": 1})
    assert list((tmp_path / "ns").iterdir()) == []

    @dataclass
    class Calls:
        n: int = 0

    calls = Calls()

    def compute():
        calls.n += 1
        return [1.0, 2.0]

    assert cache.array("emb", "key", compute).tolist() == [1.0, 2.0]
    assert cache.array("emb", "key", compute).tolist() == [1.0, 2.0]
    assert calls.n == 1 and cache.hits == 1


def test_exported_trec_files_score_the_same_in_ir_measures(registry, tmp_path):
    """`indexbench export`'s run and qrels files, read back by ir-measures, give the stored metrics."""
    import ir_measures

    from indexbench.trec import export_record

    store = ResultStore(tmp_path / "r.sqlite")
    run_grid(["word-overlap", "bm25"], ["product-search", "recommendation"], ["sample"], store=store,
             registry=registry, device="cpu", cache_dir=tmp_path / "cache")
    records = store.records(results=True)
    assert len(records) == 4
    for record in records:
        assert set(record.per_query) == {q for q, j in record.qrels.items() if any(v > 0 for v in j.values())}
        run, qrels = export_record(record, tmp_path / "trec")
        measures = [ir_measures.parse_measure(m.replace("ndcg", "nDCG").replace("map", "AP").replace("recall", "R"))
                    for m in record.metrics]
        scores = ir_measures.calc_aggregate(measures, ir_measures.read_trec_qrels(str(qrels)),
                                            ir_measures.read_trec_run(str(run)))
        for name, measure in zip(record.metrics, measures):
            assert scores[measure] == pytest.approx(record.metrics[name], abs=1e-9), (record.indexer, name)
    listing = store.records()  # without results=True the per-query payload is not read
    assert all(r.rankings == {} and r.per_query == {} for r in listing)


def test_bm25_ranks_equal_scores_by_document_order_whatever_order_bm25s_returns_them():
    import numpy as np
    from indexbench_bm25 import BM25Retriever

    class Tokenizer:
        def tokenize(self, queries, **kwargs):
            return [[0] for _ in queries]

    class TiesReversed:  # what an unstable top-k sort may hand back on another CPU
        def retrieve(self, tokens, k, show_progress):
            return np.array([[3, 2, 0, 1]]), np.array([[2.0, 5.0, 5.0, 5.0]])

    (ranking,) = BM25Retriever(TiesReversed(), Tokenizer(), ["a", "b", "c", "d"]).search(["q"], k=4)
    assert ranking == [("a", 5.0), ("b", 5.0), ("c", 5.0), ("d", 2.0)]


def test_leaderboard_shows_the_generative_cells_protocol_guards():
    from indexbench.leaderboard import render_csv
    from indexbench.store import RunRecord

    generative = RunRecord("hc", "recommendation", "toy", "ok", metrics={"recall@10": 0.1}, duration_s=3.0,
                           details={"indexer": {"protocol": {"invalid_id_rate": 0.0, "invalid_id_rate_free": 0.375,
                                                             "collision_policy": "dedup-position"}}})
    plain = RunRecord("bm25", "recommendation", "toy", "ok", metrics={"recall@10": 0.2}, duration_s=1.0)
    [table] = build_tables([generative, plain])
    assert table.columns[:5] == ["indexer", "recall@10", "invalid IDs", "invalid, no trie", "collisions"]
    rows = {row[0]: row for row in table.rows}
    assert rows["hc"][2:5] == ["0.0%", "37.5%", "dedup-position"]
    assert rows["bm25"][2:5] == ["", "", ""]  # no IDs generated: blank, never a zero
    assert "invalid_id_rate_free,0.375" in render_csv([generative])
    [only_plain] = build_tables([plain])
    assert "invalid IDs" not in only_plain.columns
