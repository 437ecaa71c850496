"""The command line, run as a user would: in a subprocess, with plugins installed as packages."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parent / "example_plugin"


def _dist_info(site: Path, dist: str, version: str, entry_points: dict[str, str]) -> None:
    """Install a distribution the way pip would as far as discovery goes: a .dist-info folder
    with METADATA and entry_points.txt on sys.path."""
    info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    lines = ["[indexbench]", *(f"{name} = {target}" for name, target in entry_points.items())]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture
def env(tmp_path):
    """An environment with the example plugin and a broken plugin installed, and private
    store/cache/data locations."""
    site = tmp_path / "site"
    shutil.copytree(EXAMPLE / "indexbench_example", site / "indexbench_example")
    _dist_info(site, "indexbench-example", "0.3.0", {"example": "indexbench_example"})
    (site / "indexbench_broken.py").write_text("raise ImportError('needs libfoo, which is not installed')\n")
    _dist_info(site, "indexbench-broken", "9.9", {"broken": "indexbench_broken"})
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
        "INDEXBENCH_RESULTS": str(tmp_path / "results.sqlite"),
        "INDEXBENCH_CACHE": str(tmp_path / "cache"),
        "INDEXBENCH_DATA": str(tmp_path / "data"),
        "COLUMNS": "200",
    }


def cli(env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "indexbench", *args], env=env, capture_output=True,
                          text=True, timeout=300)


def test_help_does_not_import_torch():
    code = ("import sys; from typer.testing import CliRunner; from indexbench.cli import app; "
            "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0, r.output; "
            "heavy = [m for m in ('torch', 'transformers', 'faiss', 'sklearn', 'bm25s') if m in sys.modules]; "
            "print(heavy); sys.exit(1 if heavy else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_listing_plugins_does_not_import_torch(env):
    code = ("import sys; from indexbench.registry import get_registry; get_registry(); "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], env=env, timeout=120).returncode == 0


def test_plugins_lists_builtins_third_party_and_broken(env):
    result = cli(env, "plugins", "--json")
    assert result.returncode == 0, result.stderr
    plugins = {p["name"]: p for p in json.loads(result.stdout)}
    assert plugins["example"]["version"] == "0.3.0"
    assert plugins["example"]["registers"] == {
        "indexer": ["word-overlap", "title-letters"], "task": ["title-lookup"], "dataset": ["tool-shelf"],
        "encoder": ["minilm-cls"], "backbone": ["tiny-deep"]}
    assert "bm25" in plugins["bm25"]["registers"]["indexer"]
    # The core's own plugins load by module name through the same hooks.
    assert set(plugins["indexbench.tasks"]["registers"]["task"]) == {
        "document-retrieval", "product-search", "recommendation", "id-quality"}
    assert plugins["indexbench.datasets"]["builtin"] and "sample" in plugins["indexbench.datasets"]["registers"]["dataset"]
    assert plugins["indexbench.encoders"]["registers"]["encoder"] == ["minilm", "tiny"]
    assert "tiny" in plugins["indexbench.generative.builtin_backbones"]["registers"]["backbone"]
    assert plugins["broken"]["error"] == "ImportError: needs libfoo, which is not installed"
    table = cli(env, "plugins")
    assert "failed to load" in table.stdout and "word-overlap" in table.stdout


def test_third_party_plugin_runs_through_the_grid(env, tmp_path):
    out = tmp_path / "records.json"
    # The ID indexer retrieves through the core's generative engine (a tiny backbone, 3 steps).
    letters = "title-letters:buckets=4:backbone=tiny:max_steps=3"
    result = cli(env, "run", "-i", f"word-overlap,{letters}", "-t", "id-quality,product-search",
                 "--json", str(out), "-q")
    assert result.returncode == 0, result.stderr
    records = {(r["indexer"], r["task"]): r for r in json.loads(out.read_text())}
    assert records[("word-overlap", "id-quality")]["status"] == "skipped"
    assert "semantic ID" in records[("word-overlap", "id-quality")]["reason"]
    ids = records[("title-letters:backbone=tiny:buckets=4:max_steps=3", "id-quality")]
    assert ids["status"] == "ok" and ids["dataset"] == "sample"
    assert 0.0 <= ids["metrics"]["utilization@1"] <= 1.0 and "ami_l2" in ids["metrics"]
    generated = records[("title-letters:backbone=tiny:buckets=4:max_steps=3", "product-search")]
    assert generated["status"] == "ok", generated.get("error")
    assert generated["details"]["indexer"]["training"]["steps"] == 3
    search = records[("word-overlap", "product-search")]
    assert search["status"] == "ok" and set(search["metrics"]) == {"ndcg@5", "map@5", "recall@10"}
    assert search["metrics"]["ndcg@5"] > 0.0
    assert search["dataset_fingerprint"] and search["config_hash"] and search["versions"]["python"]
    assert "latency_p50_ms" in search["timings"]
    # The store got the same cells, and the leaderboard re-renders from it.
    board = cli(env, "leaderboard", "--format", "markdown")
    assert board.returncode == 0 and "| word-overlap (example 0.3.0) |" in board.stdout
    assert "skipped: word-overlap assigns no semantic IDs" in board.stdout or "skipped:" in board.stdout
    csv_out = cli(env, "leaderboard", "--format", "csv", "--task", "product-search").stdout
    assert csv_out.startswith("dataset,task,indexer") and "ndcg@5" in csv_out


def test_every_hook_of_the_example_plugin_works_through_the_grid(env, tmp_path):
    out = tmp_path / "records.json"
    # Its task on its dataset; its encoder under a core indexer; its backbone under its ID indexer.
    result = cli(env, "run", "-i", "word-overlap,hc:encoder=minilm-cls:backbone=tiny-deep:max_steps=2",
                 "-t", "title-lookup,id-quality", "-d", "tool-shelf", "--json", str(out), "-q")
    assert result.returncode == 0, result.stderr
    records = {(r["indexer"], r["task"]): r for r in json.loads(out.read_text())}
    lookup = records[("word-overlap", "title-lookup")]
    assert lookup["status"] == "ok" and lookup["metrics"]["recall@1"] == 1.0 and len(lookup["per_query"]) == 12
    hc = records[("hc:backbone=tiny-deep:encoder=minilm-cls:max_steps=2", "id-quality")]
    assert hc["status"] == "ok", hc.get("reason")
    encoder = hc["details"]["indexer"]["encoder"]
    assert (encoder["encoder"], encoder["pooling"], encoder["normalize"]) == ("minilm-cls", "cls", False)
    assert "does not retrieve" in records[("hc:backbone=tiny-deep:encoder=minilm-cls:max_steps=2",
                                           "title-lookup")]["reason"]
    out2 = tmp_path / "generated.json"
    result = cli(env, "run", "-i", "title-letters:buckets=4:backbone=tiny-deep:max_steps=2", "-t", "product-search",
                 "--json", str(out2), "-q")
    assert result.returncode == 0, result.stderr
    (generated,) = json.loads(out2.read_text())
    assert generated["status"] == "ok", generated.get("reason")
    assert generated["details"]["indexer"]["backbone"] == "tiny-deep"  # an unknown name would have failed the cell


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-i", "nope"], "unknown indexer 'nope'; valid indexers: "),
        (["-i", "bm25", "-t", "nope"], "unknown task 'nope'; valid tasks: document-retrieval"),
        (["-i", "bm25", "-d", "nope"], "unknown dataset 'nope'; valid datasets: "),
        (["-i", "bm25:k1=abc"], "option 'k1' expects float, got 'abc'"),
        (["-i", "bm25:flavour=x"], "has no option 'flavour'; valid options: b, k1"),
        (["-i", "bm25", "--device", "tpu"], "unknown device 'tpu'"),
    ],
)
def test_bad_names_fail_fast_with_one_line_and_write_nothing(env, tmp_path, args, message):
    out = tmp_path / "records.json"
    result = cli(env, "run", *args, "--json", str(out), "-q")
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not out.exists()
    assert not Path(env["INDEXBENCH_RESULTS"]).exists()


def test_malformed_dataset_names_file_and_line_and_writes_nothing(env, tmp_path):
    data = tmp_path / "broken-beir"
    (data / "qrels").mkdir(parents=True)
    (data / "corpus.jsonl").write_text('{"_id": "d1", "text": "fine"}\n{"_id": "d2", "text": \n')
    (data / "queries.jsonl").write_text('{"_id": "q1", "text": "query"}\n')
    (data / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    out = tmp_path / "records.json"
    result = cli(env, "run", "-i", "bm25", "-d", str(data), "--json", str(out), "-q")
    assert result.returncode == 2
    assert "corpus.jsonl:2:" in result.stderr
    assert not out.exists() and not Path(env["INDEXBENCH_RESULTS"]).exists()


def test_leaderboard_without_results_says_so(env):
    result = cli(env, "leaderboard")
    assert result.returncode == 1 and "no results stored yet" in result.stderr


def test_datasets_lists_status(env):
    result = cli(env, "datasets")
    assert result.returncode == 0
    assert "sample" in result.stdout and "built-in" in result.stdout
    assert "scifact" in result.stdout and "missing" in result.stdout


def test_sigterm_during_a_run_leaves_no_temporary_artifact(tmp_path):
    """`kill` of a running grid unwinds like Ctrl-C: the half-written artifact directory goes."""
    import signal

    from indexbench.cache import ArtifactCache
    from indexbench.cli import sigterm_unwinds

    cache = ArtifactCache(tmp_path)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as exited, sigterm_unwinds():
        with cache.writing("models", {"k": 1}) as tmp:
            (tmp / "half.bin").write_bytes(b"0" * 10)
            os.kill(os.getpid(), signal.SIGTERM)
    assert exited.value.code == 128 + signal.SIGTERM
    assert list((tmp_path / "models").iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) is before  # the previous handler is put back
