"""Many processes on one cache and one store, as a Ray grid's workers or parallel runs are."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

from indexbench.cache import ArtifactCache
from indexbench.store import ResultStore, RunRecord

KEY = {"corpus": "abc", "model": "tiny"}


def _create_slowly(root: str, who: int, start_at: float, out: str) -> None:
    """Create the same artifact as the other process, both starting at ``start_at``; write what
    this process loaded to ``out``."""
    cache = ArtifactCache(root)

    def create(directory: Path) -> None:
        with open(Path(out).with_name("creations"), "a") as log:
            log.write(f"{who}\n")
        (directory / "who").write_text(str(who))
        time.sleep(0.3)  # a reader that looked now would see half an artifact if it were visible
        (directory / "payload").write_text("x" * 100_000)

    def load(directory: Path) -> str:
        assert len((directory / "payload").read_text()) == 100_000
        return (directory / "who").read_text()

    time.sleep(max(0.0, start_at - time.time()))
    loaded = cache.get_or_create("race", KEY, create, load)
    Path(out).write_text(f"{loaded} {cache.misses}")


def test_two_processes_creating_one_artifact_both_end_with_the_same_whole_one(tmp_path):
    context = multiprocessing.get_context("spawn")
    start_at = time.time() + 2.0  # after both have started
    outs = [tmp_path / f"out{i}" for i in range(2)]
    workers = [context.Process(target=_create_slowly, args=(str(tmp_path / "cache"), i, start_at, str(out)))
               for i, out in enumerate(outs)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [worker.exitcode for worker in workers] == [0, 0]
    loaded = [out.read_text().split() for out in outs]
    assert loaded[0][0] == loaded[1][0]  # one artifact, whoever made it
    assert sorted(int(misses) for _, misses in loaded) == [1, 1]
    # The per-artifact lock made the second wait for the first instead of computing it again.
    assert (tmp_path / "creations").read_text().split() == [loaded[0][0]]
    namespace = tmp_path / "cache" / "race"
    assert [p.name for p in namespace.iterdir() if p.name.startswith(".")] == []  # no temp left


def test_a_writer_that_loses_the_rename_race_keeps_the_winners_artifact(tmp_path):
    cache = ArtifactCache(tmp_path)
    with cache.writing("race", KEY) as mine:
        (mine / "who").write_text("me")
        with cache.writing("race", KEY) as theirs:  # finishes first, inside our block
            (theirs / "who").write_text("them")
    assert (cache.path("race", KEY) / "who").read_text() == "them"
    assert [p.name for p in (tmp_path / "race").iterdir() if p.name.startswith(".")] == []


def _write_records(store_path: str, writer: int, count: int) -> None:
    store = ResultStore(store_path)
    for i in range(count):
        kept = store.add(RunRecord(indexer=f"w{writer}", task="t", dataset="d", status="ok",
                                   metrics={"i": float(i)}, per_query={str(i): {"m": 1.0}}))
        assert kept is None, store.recovery_problem


def test_eight_processes_writing_fifty_records_each_lose_none(tmp_path):
    store_path = tmp_path / "shared.sqlite"
    ResultStore(store_path).check()
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_write_records, args=(str(store_path), w, 50)) for w in range(8)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(120)
    assert [writer.exitcode for writer in writers] == [0] * 8
    records = ResultStore(store_path).records(latest=False, results=True)
    assert len(records) == 400
    assert sorted((r.indexer, r.metrics["i"]) for r in records) == sorted(
        (f"w{w}", float(i)) for w in range(8) for i in range(50))
    assert all(r.per_query for r in records)
    assert not store_path.with_name(store_path.name + ".recovered.jsonl").exists()


def test_listing_a_store_writes_nothing_to_it_and_reads_an_older_schema(tmp_path):
    import sqlite3

    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)  # a store from before most columns existed, not in WAL mode
    conn.execute("CREATE TABLE records (id INTEGER PRIMARY KEY AUTOINCREMENT, indexer TEXT, task TEXT, "
                 "dataset TEXT, status TEXT, metrics TEXT)")
    conn.execute("INSERT INTO records (indexer, task, dataset, status, metrics) VALUES "
                 "('bm25', 'product-search', 'sample', 'ok', '{\"ndcg@5\": 0.5}')")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    [record] = ResultStore(path).records(results=True)
    assert (record.indexer, record.metrics, record.seed, record.per_query) == ("bm25", {"ndcg@5": 0.5}, 0, {})
    assert path.read_bytes() == before  # no migration, no WAL switch: a read-only mount lists too
    assert not path.with_name("old.sqlite-wal").exists()
