"""The fault suite: every way a run can be given bad input, or lose work, that issue #13 listed.

Each case of the table runs `indexbench run` as a user would and checks the contract: one line
on stderr naming the file (or option) and the problem, exit status 2, and nothing written -- no
store, no artifact, no JSON file, no temporary file beside it. The cases that are not bad input
(a store locked for a while, a record that cannot be stored mid-grid, a killed writer's temp
directory, clashing or crashing plugins, datasets without usable test queries) check that no
computed result is lost and that the cause is named.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from indexbench import hookimpl
from indexbench.cache import ArtifactCache
from indexbench.cells import run_cell
from indexbench.cli import app
from indexbench.data import Corpus, Dataset, Document
from indexbench.protocols import SilentProgress
from indexbench.registry import IndexerEntry, load_registry
from indexbench.runner import plan_grid
from indexbench.store import ResultStore, RunRecord

CORPUS = [{"_id": "d1", "title": "Aspirin", "text": "Aspirin lowers fever."},
          {"_id": "d2", "text": "Statins lower cholesterol."}]
QUERIES = [{"_id": "q1", "text": "what lowers fever"}, {"_id": "q2", "text": "cholesterol drugs"}]
QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n"


def _jsonl(rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def _beir(root: Path, corpus: bytes | None = None, queries: str | None = None, qrels: str | None = None) -> Path:
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_bytes(_jsonl(CORPUS).encode() if corpus is None else corpus)
    (root / "queries.jsonl").write_text(_jsonl(QUERIES) if queries is None else queries)
    (root / "qrels" / "test.tsv").write_text(QRELS if qrels is None else qrels)
    return root


def _corpus_line2(line: str | bytes) -> bytes:
    raw = line.encode() if isinstance(line, str) else line
    return json.dumps(CORPUS[0]).encode() + b"\n" + raw + b"\n"


def _lcrec(root: Path, items: str, inters: str) -> Path:
    root.mkdir(parents=True)
    (root / "Tiny.item.json").write_text(items)
    (root / "Tiny.inter.json").write_text(inters)
    return root


def _setup_store_parent_is_file(t: Path) -> list[str]:
    (t / "afile").write_text("x")
    return ["--store", str(t / "afile" / "results.sqlite")]


def _setup_store_is_dir(t: Path) -> list[str]:
    (t / "storedir").mkdir()
    return ["--store", str(t / "storedir")]


def _setup_store_corrupt(t: Path) -> list[str]:
    (t / "bad.sqlite").write_bytes(b"this is not a database, just bytes " * 40)
    return ["--store", str(t / "bad.sqlite")]


def _setup_store_foreign(t: Path) -> list[str]:
    with sqlite3.connect(t / "other.sqlite") as conn:
        conn.execute("CREATE TABLE records (id INTEGER PRIMARY KEY, name TEXT)")
    conn.close()
    return ["--store", str(t / "other.sqlite")]


def _setup_json_is_dir(t: Path) -> list[str]:
    (t / "out").mkdir()
    return ["--json", str(t / "out")]


def _setup_json_parent_is_file(t: Path) -> list[str]:
    (t / "afile").write_text("x")
    return ["--json", str(t / "afile" / "records.json")]


def _setup_dataset_file(t: Path) -> list[str]:
    (t / "notes.txt").write_text("hello")
    return ["--dataset", str(t / "notes.txt")]


def _file(path: Path) -> Path:
    path.write_text("not a folder")
    return path


def _data(t: Path, writer) -> list[str]:
    return ["--dataset", str(writer(t / "ds"))]


FAULTS = {
    # case: (setup(tmp) -> extra CLI args, what the one line must say)
    "store: its folder is a file": (_setup_store_parent_is_file, "cannot be created, "),
    "store: a directory": (_setup_store_is_dir, "is a directory; --store takes a file path"),
    "store: a corrupt file": (_setup_store_corrupt, "is not an SQLite database"),
    "store: another program's database": (_setup_store_foreign, "not an indexbench results store"),
    "seed: negative": (lambda t: ["--seed", "-1"], "seed must be an integer in [0, 4294967295], got -1"),
    "seed: 2**32": (lambda t: ["--seed", str(2**32)], "got 4294967296"),
    "json: a directory": (_setup_json_is_dir, "is a directory; --json takes a file path"),
    "json: its folder is a file": (_setup_json_parent_is_file, "is not a directory"),
    "dataset: missing path": (lambda t: ["--dataset", str(t / "nowhere")], "no such directory"),
    "dataset: a file": (_setup_dataset_file, "is a file; a dataset is a registered name or a dataset directory"),
    "dataset: unknown name": (lambda t: ["--dataset", "nosuchset"], "unknown dataset 'nosuchset'"),
    "corpus: bad JSON": (lambda t: _data(t, lambda r: _beir(r, _corpus_line2('{"_id": "d2", "text": "x}'))),
                         "corpus.jsonl:2: invalid JSON"),
    "corpus: truncated line": (lambda t: _data(t, lambda r: _beir(r, _corpus_line2('{"_id": "d2", "te'))),
                               "corpus.jsonl:2: invalid JSON"),
    "corpus: array, not object": (lambda t: _data(t, lambda r: _beir(r, _corpus_line2('["d2", "x"]'))),
                                  "corpus.jsonl:2: expected a JSON object, got array"),
    "corpus: not UTF-8": (lambda t: _data(t, lambda r: _beir(r, _corpus_line2(b'{"_id": "d2", "text": "\xff"}'))),
                          "corpus.jsonl:2: not valid UTF-8"),
    "corpus: missing field": (lambda t: _data(t, lambda r: _beir(r, _corpus_line2('{"_id": "d2"}'))),
                              'corpus.jsonl:2: missing field "text"'),
    "corpus: mistyped field": (lambda t: _data(t, lambda r: _beir(r, _corpus_line2('{"_id": 2, "text": "x"}'))),
                               'field "_id" must be a string, got integer'),
    "corpus: duplicate id": (lambda t: _data(t, lambda r: _beir(r, _corpus_line2('{"_id": "d1", "text": "x"}'))),
                             'corpus.jsonl:2: duplicate document id "d1"'),
    "qrels: unknown document": (lambda t: _data(t, lambda r: _beir(r, qrels=QRELS + "q1\td9\t1\n")),
                                'test.tsv:4: unknown document id "d9"'),
    "qrels: unknown query": (lambda t: _data(t, lambda r: _beir(r, qrels=QRELS + "q9\td1\t1\n")),
                             'test.tsv:4: unknown query id "q9"'),
    "items: mistyped field": (lambda t: _data(t, lambda r: _lcrec(r, '{"0": {"title": 5}}', '{"0": [0]}')),
                              'Tiny.item.json: item "0": field "title" must be a string, got integer'),
    "options: not a number": (lambda t: ["--indexer", "bm25:k1=nan"],
                              "indexer 'bm25' option 'k1' must be a finite number, got nan"),
    "options: below the range": (lambda t: ["--indexer", "bm25:k1=-1"], "indexer 'bm25' option 'k1' must be >= 0, got -1.0"),
    "options: negative steps": (lambda t: ["--indexer", "hc:max_steps=-5"],
                                "indexer 'hc' option 'max_steps' must be >= 0, got -5"),
    "options: not a choice": (lambda t: ["--indexer", "bm25:method=okapi"],
                              "indexer 'bm25' option 'method' must be one of lucene, robertson, atire, bm25l, bm25+"),
    "cache: a file": (lambda t: ["--cache-dir", str(_file(t / "cache.txt"))], "is not a directory; the artifact cache needs one"),
    "interactions: unknown item": (lambda t: _data(t, lambda r: _lcrec(r, '{"0": {"title": "a"}}', '{"0": [0, 7]}')),
                                   'unknown item id "7"'),
}


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else b"<dir>"
            for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize("case", list(FAULTS))
def test_bad_input_gives_one_line_exit_2_and_writes_nothing(case, tmp_path, user):
    setup, message = FAULTS[case]
    work = tmp_path / "work"
    work.mkdir()
    args = setup(work)
    if "--dataset" not in args:
        args += ["--dataset", "sample"]
    before = _snapshot(work)
    result = CliRunner().invoke(app, ["run", "-i", "bm25", "-t", "document-retrieval", "-q", *args])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert message in lines[0], lines[0]
    assert _snapshot(work) == before, "the run wrote or changed something next to its input"
    assert not user.exists() or not any(user.rglob("*")), "the run wrote to the store or the cache"


def test_a_store_locked_for_a_while_is_waited_for(tmp_path, user):
    store = ResultStore(user / "results.sqlite")
    store.add(_record("earlier"))
    # Another process writing, for longer than sqlite's 5 s default timeout.
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1]); "
         "c.execute('BEGIN IMMEDIATE'); print('locked', flush=True); time.sleep(6); c.rollback()",
         str(store.path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        result = CliRunner().invoke(app, ["run", "-i", "bm25", "-t", "document-retrieval", "-q"])
        waited = time.monotonic() - started
    finally:
        holder.wait(timeout=60)
    assert waited > 3, "the lock was released before the run needed it: the test proves nothing"
    assert result.exit_code == 0, result.output
    assert sorted(r.indexer for r in store.records()) == ["bm25", "earlier"]


def _record(indexer: str = "bm25") -> RunRecord:
    return RunRecord(indexer=indexer, task="document-retrieval", dataset="sample", status="ok",
                     metrics={"ndcg@10": 0.5})


def test_a_record_the_store_cannot_take_goes_to_the_recovery_file_and_imports_back(tmp_path, user):
    store = ResultStore(tmp_path / "r.sqlite", busy_timeout_s=0.05)
    store.add(_record("earlier"))
    holder = sqlite3.connect(store.path)
    holder.execute("BEGIN IMMEDIATE")
    kept = store.add(_record())
    holder.rollback()
    holder.close()
    assert kept == tmp_path / "r.sqlite.recovered.jsonl"
    assert [r.indexer for r in store.records()] == ["earlier"]
    assert json.loads(kept.read_text().splitlines()[0])["metrics"] == {"ndcg@10": 0.5}
    result = CliRunner().invoke(app, ["import", str(kept), "--store", str(store.path)])
    assert result.exit_code == 0, result.output
    assert [(r.indexer, r.metrics) for r in store.records()] == [("earlier", {"ndcg@10": 0.5}),
                                                                 ("bm25", {"ndcg@10": 0.5})]


def test_a_store_failing_mid_grid_keeps_every_record_and_says_where(tmp_path, user, monkeypatch):
    """The store passes the up-front check, then every write fails (disk full, say): the grid
    still runs every cell, prints its leaderboard, writes --json, and exits 2 naming the file that
    holds the records."""
    import indexbench.store as store_module

    def broken_add(self, record):  # the real add's fallback, as after its retries all failed
        self.recovery_problem = "database or disk is full"
        self.recovered_to = store_module.write_recovery(record, self.recovery_path())
        return self.recovered_to

    monkeypatch.setattr(store_module.ResultStore, "add", broken_add)
    out = tmp_path / "records.json"
    result = CliRunner().invoke(app, ["run", "-i", "bm25,bm25:k1=0.9", "-t", "document-retrieval", "-q",
                                      "--json", str(out)])
    assert result.exit_code == 2
    recovery = user / "results.sqlite.recovered.jsonl"
    assert "some records could not be stored" in result.stderr and str(recovery) in result.stderr
    kept = [json.loads(line)["indexer"] for line in recovery.read_text().splitlines()]
    assert kept == ["bm25", "bm25:k1=0.9"] and len(json.loads(out.read_text())) == 2
    assert "sample · document-retrieval" in result.stdout  # the leaderboard was still shown


def test_json_that_cannot_be_written_at_the_end_leaves_no_temp_file(tmp_path, user, monkeypatch):
    out = tmp_path / "records.json"

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    result = CliRunner().invoke(app, ["run", "-i", "bm25", "-t", "document-retrieval", "-q", "--json", str(out)])
    assert result.exit_code == 2
    assert "No space left on device" in result.stderr and "the records are in" in result.stderr
    assert list(tmp_path.glob(".records.json.*")) == [] and not out.exists()
    assert len(ResultStore(user / "results.sqlite").records()) == 1


def test_stale_temp_directories_in_the_cache_are_removed_at_start(tmp_path, user):
    from indexbench.cache import _HOST

    namespace = user / "cache" / "bm25-index"
    namespace.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    killed = namespace / f".abc123.{_HOST}-{dead}.x1y2"  # a writer that is gone (SIGKILL)
    old = namespace / ".def456.x9z8"  # older than a day, from before writers were named
    live = namespace / f".fed789.{_HOST}-{os.getpid()}.q1w2"  # still being written
    checkpoint = user / "cache" / "lmindexer-checkpoints" / "0123abcd"  # resumable: kept
    for path in (killed, old, live, checkpoint):
        path.mkdir(parents=True)
    os.utime(old, (time.time() - 2 * 86400,) * 2)
    result = CliRunner().invoke(app, ["run", "-i", "bm25", "-t", "document-retrieval", "-q"])
    assert result.exit_code == 0, result.output
    assert not killed.exists() and not old.exists()
    assert live.exists() and checkpoint.exists()


# --------------------------------------------------------------------------- plugins


class Impostor:
    """Registers the built-in name ``bm25`` with an indexer that would win every table."""

    @staticmethod
    @hookimpl
    def register_indexers(register):
        register(IndexerEntry(name="bm25", factory=lambda cfg: None, description="not the real bm25"))
        register(IndexerEntry(name="impostor-own", factory=lambda cfg: None))


def _twin(label: str):
    class Twin:
        @staticmethod
        @hookimpl
        def register_indexers(register):
            register(IndexerEntry(name="twin", factory=lambda cfg: None, description=label))

    Twin.__name__ = label
    return Twin


def test_a_built_in_name_stays_built_in_and_the_impostor_is_told():
    registry = load_registry(extra_plugins=[Impostor])
    assert registry.indexer("bm25").plugin == "bm25"
    impostor = registry.plugin("Impostor")
    assert impostor.error is None and impostor.registers == {"indexer": ["impostor-own"]}
    assert any("'bm25' is a built-in name" in w for w in impostor.warnings)
    assert registry.plugin("bm25").warnings == []


def test_two_third_party_plugins_with_one_name_are_both_reported_and_the_name_refused():
    from indexbench.errors import ConfigError

    registry = load_registry(extra_plugins=[_twin("first_pkg"), _twin("second_pkg")])
    for name, other in (("first_pkg", "second_pkg"), ("second_pkg", "first_pkg")):
        assert any(other in w for w in registry.plugin(name).warnings), registry.plugin(name)
    with pytest.raises(ConfigError, match=r"registered by 2 plugins \(first_pkg, second_pkg\).*"
                                          r"INDEXBENCH_DISABLE_PLUGINS=second_pkg"):
        registry.indexer("twin")


class Undecorated:
    """A function named like a hook but not marked with ``hookimpl``: not a hook implementation."""

    called = False

    @staticmethod
    def register_indexers(register):
        Undecorated.called = True
        register(IndexerEntry(name="undecorated", factory=lambda cfg: None))


class Misspelt:
    """A marked function that names no hook (``register_indexer``, singular)."""

    @staticmethod
    @hookimpl
    def register_indexer(register):
        register(IndexerEntry(name="misspelt", factory=lambda cfg: None))

    @staticmethod
    @hookimpl
    def register_tasks(register):
        raise AssertionError("a plugin that failed validation must not be called")


class RaisingHook:
    @staticmethod
    @hookimpl
    def register_indexers(register):
        register(IndexerEntry(name="half-registered", factory=lambda cfg: None))
        raise RuntimeError("hook failed half-way")


def test_hooks_are_dispatched_by_pluggy_so_only_marked_and_known_hooks_count():
    registry = load_registry(extra_plugins=[Undecorated, Misspelt, RaisingHook, Impostor])
    assert not Undecorated.called and "undecorated" not in registry.indexers
    assert registry.plugin("Undecorated").error is None and registry.plugin("Undecorated").registers == {}
    error = registry.plugin("Misspelt").error
    assert error.startswith("PluginValidationError") and "register_indexer" in error, error
    assert "misspelt" not in registry.indexers
    raising = registry.plugin("RaisingHook")
    assert raising.error == "RuntimeError: hook failed half-way" and "half-registered" not in registry.indexers
    # Each failure stays with its plugin: the one loaded after them still registers, and so does
    # every built-in.
    assert registry.plugin("Impostor").registers == {"indexer": ["impostor-own"]}
    assert {"bm25", "lmindexer", "seal"} <= set(registry.indexers) and "id-quality" in registry.tasks


@pytest.fixture
def site(tmp_path, user):
    """An installed third-party impostor of bm25 and a plugin that raises SystemExit at import."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "aaa_impostor.py").write_text(
        "from indexbench import hookimpl\nfrom indexbench.registry import IndexerEntry\n"
        "class Fake:\n    def __init__(self, cfg): pass\n"
        "@hookimpl\ndef register_indexers(register):\n    register(IndexerEntry(name='bm25', factory=Fake))\n")
    (site / "exiting_plugin.py").write_text("raise SystemExit('exiting at import')\n")
    for dist, target in (("aaa-impostor", "aaa_impostor"), ("exiting-plugin", "exiting_plugin")):
        info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        # "aaa" sorts before "bm25": the order that let the impostor win before.
        (info / "entry_points.txt").write_text(f"[indexbench]\n{'aaa' if 'impostor' in dist else 'exiting'} = {target}\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
            "COLUMNS": "200"}


def _cli(env, *args):
    return subprocess.run([sys.executable, "-m", "indexbench", *args], env=env, capture_output=True,
                          text=True, timeout=300)


def test_installed_impostor_and_exiting_plugin_cannot_take_over_or_take_down(site, user):
    listing = json.loads(_cli(site, "plugins", "--json").stdout)
    by_name = {p["name"]: p for p in listing}
    assert by_name["exiting"]["error"] == "SystemExit: exiting at import"
    assert by_name["aaa"]["registers"] == {} and "built-in name" in by_name["aaa"]["warnings"][0]
    assert by_name["bm25"]["warnings"] == [] and by_name["bm25"]["builtin"] is True
    result = _cli(site, "run", "-i", "bm25", "-t", "document-retrieval", "-q")
    assert result.returncode == 0, result.stderr
    (record,) = ResultStore(user / "results.sqlite").records()
    assert record.config["plugin"] == {"name": "bm25", "version": record.config["plugin"]["version"],
                                       "builtin": True}


def test_the_leaderboard_names_a_third_party_plugin_beside_its_indexer(tmp_path):
    from indexbench.leaderboard import indexer_label

    ours = _record()
    ours.config = {"plugin": {"name": "bm25", "version": "0.1.0", "builtin": True}}
    theirs = _record("word-overlap")
    theirs.config = {"plugin": {"name": "example", "version": "0.3.0", "builtin": False}}
    assert indexer_label(ours) == "bm25"
    assert indexer_label(theirs) == "word-overlap (example 0.3.0)"


# --------------------------------------------------------------------------- unusable datasets


class Unfittable:
    """An ID indexer that fails loudly if anything tries to fit it."""

    def __init__(self, config):
        pass

    def assign_ids(self, corpus, ctx):
        raise AssertionError("fitted although the dataset gives the task nothing to score")

    def build_retriever(self, problem, ctx):
        raise AssertionError("fitted although the dataset gives the task nothing to score")


class UnfittablePlugin:
    @staticmethod
    @hookimpl
    def register_indexers(register):
        register(IndexerEntry(name="unfittable", factory=Unfittable, kind="ids"))


def _dataset(categories, interactions) -> Dataset:
    docs = [Document(id=f"i{n}", text=f"item {n}", title=f"item {n}", categories=tuple(c))
            for n, c in enumerate(categories)]
    return Dataset(name="tiny", corpus=Corpus(docs), interactions=interactions)


@pytest.mark.parametrize("categories, interactions, task, cause", [
    ([("Root",)] * 4, {"u1": ["i0"], "u2": ["i1"]}, "product-search",
     "no item's category path goes below the root"),
    ([("Root", "Bolts")] * 4, {"u1": ["i0"]}, "product-search",
     "make only 1 distinct query, too few for a 20% test split"),
    ([("Root", "Bolts")] * 4, {"u1": ["i0"], "u2": ["i3"]}, "recommendation",
     "no user has two or more interactions"),
])
def test_a_dataset_without_usable_test_queries_is_skipped_before_fitting(categories, interactions, task,
                                                                         cause, tmp_path):
    registry = load_registry(extra_plugins=[UnfittablePlugin])
    (cell,) = plan_grid(["unfittable"], [task], [_dataset(categories, interactions)], registry)
    record = run_cell(cell, cache=ArtifactCache(tmp_path / "cache"), progress=SilentProgress(), seed=0,
                      device="cpu", versions={}, git_commit="", grid_id="")
    assert record.status == "skipped", record.reason
    assert f"dataset tiny gives {task} no usable test query: " in record.reason and cause in record.reason


def test_ctrl_c_keeps_the_finished_cells_and_says_so(tmp_path, user, monkeypatch):
    import indexbench.cells as cells

    real, calls = cells.run_cell, []

    def interrupted_second(cell, **kwargs):
        calls.append(cell.spec.label)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(cell, **kwargs)

    monkeypatch.setattr(cells, "run_cell", interrupted_second)
    result = CliRunner().invoke(app, ["run", "-i", "bm25,bm25:k1=0.9", "-t", "document-retrieval", "-q"])
    assert result.exit_code == 130
    assert result.stderr.startswith("interrupted: the cells that finished are in ")
    assert [r.indexer for r in ResultStore(user / "results.sqlite").records()] == ["bm25"]
