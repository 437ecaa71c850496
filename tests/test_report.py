"""`indexbench report`: what the pages say (numbers, marks, reasons, provenance), that every
figure and link resolves, and that a failed report leaves nothing behind. Tiny synthetic
records; the real browser check is in test_report_browser.py."""

from __future__ import annotations

import json
import random
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from indexbench.data import SemanticIds
from indexbench.errors import IndexbenchError
from indexbench.references import Reference
from indexbench.report import MARKER, write_report
from indexbench.report.model import boards, curves, verify_from_records
from indexbench.store import ResultStore, RunRecord
from indexbench.tasks.id_quality import code_usage, first_code_categories


def ranking_record(indexer: str, seed: int, values: list[float], **extra) -> RunRecord:
    per_query = {f"q{i}": {"ndcg@10": v, "recall@10": min(1.0, v * 1.5)} for i, v in enumerate(values)}
    metrics = {m: sum(q[m] for q in per_query.values()) / len(per_query) for m in ("ndcg@10", "recall@10")}
    return RunRecord(indexer=indexer, task="document-retrieval", dataset="tiny", status="ok", seed=seed,
                     metrics=metrics, per_query=per_query, timings={"fit_s": 1.0, "latency_p50_ms": 2.0},
                     details={"latencies_ms": [1.0 + i / 10 for i in range(20)], **extra},
                     versions={"torch": "2.13.0", "cpu_isa": "avx2", "threads": "2"}, git_commit="abc123def456",
                     duration_s=3.5)


def grid_records() -> list[RunRecord]:
    rng = random.Random(0)
    strong = [rng.uniform(0.5, 1.0) for _ in range(40)]
    records = []
    for seed in (0, 1, 2):
        # "close" differs from "strong" by noise only; "weak" is far below on every query.
        records.append(ranking_record("strong", seed, [min(1.0, v + rng.uniform(-0.01, 0.01)) for v in strong],
                                      training={"loss_curve": [3.0, 2.0, 1.5, 1.2]}))
        records.append(ranking_record("close", seed, [min(1.0, max(0.0, v + rng.uniform(-0.05, 0.05))) for v in strong]))
        records.append(ranking_record("weak", seed, [v * 0.3 for v in strong]))
    records.append(RunRecord(indexer="gone", task="document-retrieval", dataset="tiny", status="skipped",
                             reason="gone needs <histories> the task lacks"))
    records.append(RunRecord(indexer="broken", task="document-retrieval", dataset="tiny", status="error",
                             reason="ValueError: bad shape"))
    return records


def id_record(indexer: str) -> RunRecord:
    ids = SemanticIds({f"d{i}": (i % 4, i // 4 % 3, i) for i in range(24)}, (4, 3, 24))
    cats = {f"d{i}": ("Root", "A" if i % 4 < 2 else "B") for i in range(24)}
    return RunRecord(indexer=indexer, task="id-quality", dataset="tiny", status="ok",
                     metrics={"ami_l2": 0.5, "collision_rate": 0.2},
                     details={"code_usage": code_usage(ids), "first_code_categories": first_code_categories(ids, cats),
                              "indexer": {"curves": [{"phase": "p", "global_step": s, "loss": 5.0 - s, "top1": s / 10}
                                                     for s in range(5)]}})


def test_boards_mean_spread_best_and_significance():
    (board,) = boards(grid_records(), {"document-retrieval": ["ndcg@10"]})
    assert board.metrics[0] == "ndcg@10"
    by = {e.indexer: e for e in board.entries}
    assert [e.indexer for e in board.entries][0] == "strong" or by["close"].mean["ndcg@10"] > by["strong"].mean["ndcg@10"]
    best = next(e for e in board.entries if "ndcg@10" in e.best)
    assert best.indexer in ("strong", "close")
    other = by["close"] if best.indexer == "strong" else by["strong"]
    assert "ndcg@10" in other.tied  # noise-level difference: not significant
    assert "ndcg@10" not in by["weak"].tied and by["weak"].p_value["ndcg@10"] < 0.05
    assert by["weak"].seeds == [0, 1, 2] and by["weak"].sd["ndcg@10"] >= 0
    assert {e.indexer: (e.status, e.reason) for e in board.unscored} == {
        "broken": ("error", "ValueError: bad shape"), "gone": ("skipped", "gone needs <histories> the task lacks")}


def test_lower_is_better_metric_marks_the_smallest():
    recs = [RunRecord(indexer=n, task="id-quality", dataset="tiny", status="ok", metrics={"collision_rate": v})
            for n, v in (("a", 0.4), ("b", 0.1), ("c", 0.3))]
    (board,) = boards(recs, {"id-quality": ["collision_rate"]})
    assert [e.indexer for e in board.entries] == ["b", "c", "a"]
    assert [e.indexer for e in board.entries if "collision_rate" in e.best] == ["b"]


def test_curves_found_by_shape_not_by_plugin():
    details = {"training": {"loss_curve": [1.0, 0.5, 0.25], "note": [1, 2]},
               "dev_curve": [{"epoch": 1, "ndcg@10": 0.1, "tag": "x"}, {"epoch": 2, "ndcg@10": 0.2, "tag": "y"}],
               "phases": [{"name": "a"}, {"name": "b"}], "flag_curve": [True, False]}
    found = {(c.where, c.name): c for c in curves(details)}
    assert set(found) == {("details.training.loss_curve", "loss_curve"), ("details.dev_curve", "ndcg@10")}
    assert found[("details.dev_curve", "ndcg@10")].points == [(1.0, 0.1), (2.0, 0.2)]
    assert found[("details.dev_curve", "ndcg@10")].x_label == "epoch"


def test_code_usage_and_category_spread_of_ids():
    ids = SemanticIds({"a": (0, 0), "b": (0, 1), "c": (1, 0), "d": (0, 2)}, (2, 3))
    assert code_usage(ids) == [[3, 1], [2, 1, 1]]
    table = first_code_categories(ids, {"a": ("R", "x"), "b": ("R", "x"), "c": ("R", "y")})
    assert table == {"R > x": {"0": 2}, "R > y": {"1": 1}}


def test_verify_from_records_judges_stored_cells_only():
    refs = [Reference("Paper A", "strong", "document-retrieval", "tiny", "ndcg@10", 0.70, 0.05),
            Reference("Paper B", "missing", "document-retrieval", "tiny", "ndcg@10", 0.5, 0.05)]
    (table,) = verify_from_records(refs, grid_records())
    (row,) = table.rows
    assert row[:2] == ("Paper A", "strong")
    verdict = row[2]["ndcg@10"]
    ours = sum(r.metrics["ndcg@10"] for r in grid_records() if r.indexer == "strong") / 3
    assert verdict.ours == pytest.approx(ours)
    assert verdict.status == ("ok" if abs(ours - 0.70) <= 0.05 else "near" if abs(ours - 0.70) <= 0.10 else "fail")


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: list[str] = []
        self.values: list[tuple[str, str]] = []
        self._row: list = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.refs.append(a["src"])
            assert a.get("alt"), "every image has alt text"
        if tag == "a" and a.get("href"):
            self.refs.append(a["href"])
        if tag == "td" and "data-metric" in a:
            self.values.append((a["data-metric"], a["data-value"]))


def _check_site(folder: Path) -> dict[str, _Links]:
    pages = {}
    for page in folder.glob("*.html"):
        parser = _Links()
        parser.feed(page.read_text())
        for ref in parser.refs:
            target = ref.split("#")[0]
            assert not re.match(r"[a-z]+://", ref), f"{page.name} links out of the report: {ref}"
            assert (folder / target).is_file(), f"{page.name}: {ref} does not resolve"
        pages[page.name] = parser
    return pages


def test_report_site_numbers_figures_links_and_reasons(tmp_path):
    records = grid_records() + [id_record("idx-a"), id_record("idx-b")]
    records[0].details["dataset_identity"] = {"summary": "is not a registered split (24 users)"}
    index = write_report(records, tmp_path / "site", source="test")
    site = index.parent
    assert (site / MARKER).is_file() and index.name == "index.html"
    pages = _check_site(site)
    (retrieval_page,) = [p for p in pages if p.startswith("tiny--document-retrieval")]
    html = (site / retrieval_page).read_text()
    # Every number shown is the mean over seeds of the stored values.
    shown = pages[retrieval_page].values
    for e in boards(records)[0].entries if boards(records)[0].task == "document-retrieval" else boards(records)[1].entries:
        for metric in ("ndcg@10", "recall@10"):
            assert (metric, repr(e.mean[metric])) in shown or (metric, str(e.mean[metric])) in shown
    assert "<th>fit s</th>" in html and "<th>p50 ms</th>" in html and "<td>3.5</td>" in html  # times, cell s
    assert "gone needs &lt;histories&gt; the task lacks" in html  # reasons shown, and escaped
    assert "data: tiny is not a registered split (24 users)" in html  # the identity line names its dataset
    assert "ValueError: bad shape" in html and "abc123def456"[:12] in html and "cpu_isa=avx2" in html
    for section in ("per-query", "latency", "curves"):
        assert f'id="{section}"' in html
    id_page = (site / next(p for p in pages if p.startswith("tiny--id-quality"))).read_text()
    for section in ("code-usage", "categories", "curves"):
        assert f'id="{section}"' in id_page
    figures = list((site / "figures").glob("*.png"))
    assert figures and all(f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in figures)


def test_report_refuses_a_foreign_folder_and_leaves_nothing(tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(IndexbenchError, match="not an indexbench report folder"):
        write_report(grid_records(), foreign, source="test")
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_report_replaces_an_earlier_report_and_cleans_up_on_failure(tmp_path, monkeypatch):
    out = tmp_path / "site"
    write_report(grid_records(), out, source="first")
    write_report(grid_records()[:3], out, source="second")
    assert "second" in (out / "index.html").read_text()

    import indexbench.report.figures as figures

    def boom(*args, **kwargs):
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(figures, "latencies", boom)
    with pytest.raises(RuntimeError, match="drawing failed"):
        write_report(grid_records(), out, source="third")
    assert "second" in (out / "index.html").read_text()  # the earlier report is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]  # no staging folder left


def test_report_cli_from_store_and_from_files(tmp_path, user):
    from typer.testing import CliRunner

    from indexbench.cli import app

    store = ResultStore(tmp_path / "s.sqlite")
    for record in grid_records():
        store.add(record)
    runner = CliRunner()
    result = runner.invoke(app, ["report", "--store", str(store.path), "--out", str(tmp_path / "a"), "-q"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "a" / "index.html").is_file()

    runs = tmp_path / "run.json"
    runs.write_text(json.dumps([r.to_dict() for r in grid_records()]))
    result = runner.invoke(app, ["report", str(runs), "--out", str(tmp_path / "b"), "-q"])
    assert result.exit_code == 0, result.output

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    result = runner.invoke(app, ["report", str(bad), "--out", str(tmp_path / "c"), "-q"])
    assert result.exit_code == 2 and "bad.json" in result.output
    assert not (tmp_path / "c").exists()


@pytest.fixture
def umask_022():
    import os

    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_files_and_folders_written_into_place_get_the_umasks_permissions_not_owner_only(tmp_path, umask_022):
    """mkstemp / mkdtemp stage owner-only (0600 / 0700); what is renamed into place must be
    readable as a directly written file would be: a committed baseline, a served report."""
    import stat

    from indexbench.cache import ArtifactCache
    from indexbench.cli.app import write_atomic

    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    write_atomic(tmp_path / "baseline.json", "[]")
    assert mode(tmp_path / "baseline.json") == 0o644
    index = write_report(grid_records(), tmp_path / "site", source="test")
    assert mode(tmp_path / "site") == 0o755 and mode(index) == 0o644
    cache = ArtifactCache(tmp_path / "cache")
    with cache.writing("embeddings", "k") as folder:
        (folder / "x.npy").write_bytes(b"0")
    assert mode(cache.path("embeddings", "k")) == 0o755
