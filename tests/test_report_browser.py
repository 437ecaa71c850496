"""The report of the CI grid (the committed gate baseline's records), opened in a real headless
Chromium: every page loads with no console error, every image decodes, every link resolves,
and the leaderboard shows the store's numbers.

Needs Debian's ``chromium`` (or $INDEXBENCH_CHROMIUM) and the ``playwright`` package (a test
dependency; its own browser downloads are never used). `.ci/run` installs chromium where apt can.
"""

from __future__ import annotations

import os
import shutil
import statistics
from pathlib import Path

import pytest

BASELINE = Path(__file__).resolve().parents[1] / "benchmarks" / "baselines" / "ci.json"


def _chromium() -> str:
    path = os.environ.get("INDEXBENCH_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium; or set INDEXBENCH_CHROMIUM)")
    return path


@pytest.fixture(scope="module")
def browser():
    executable = _chromium()
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")
    with sync_api.sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield instance
        instance.close()


def test_ci_grid_report_in_chromium(browser, tmp_path):
    from indexbench.compare import load_side
    from indexbench.references import load_references, shipped_references
    from indexbench.report import write_report

    records = load_side(BASELINE)
    index = write_report(records, tmp_path / "report", source=str(BASELINE),
                         references=load_references(shipped_references()))
    pages = sorted(index.parent.glob("*.html"))
    assert len(pages) > 2

    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.on("requestfailed", lambda req: problems.append(f"request failed: {req.url}"))
    means: dict[tuple[str, str, str, str], float] = {}
    for r in records:
        if r.status == "ok":
            for metric, value in r.metrics.items():
                means.setdefault((r.dataset, r.task, r.indexer, metric), []).append(value)
    seen_numbers = 0
    for html in pages:
        response = page.goto(html.as_uri())
        assert response is None or response.ok, html.name
        broken = page.evaluate("""() => [...document.images]
            .filter(img => !img.complete || img.naturalWidth === 0).map(img => img.getAttribute('src'))""")
        assert broken == [], f"{html.name}: images that do not load: {broken}"
        for href in page.evaluate("() => [...document.querySelectorAll('a[href]')].map(a => a.href)"):
            assert href.startswith("file://"), f"{html.name} links outside the report: {href}"
            assert Path(href.split("#")[0].removeprefix("file://")).is_file(), f"{html.name}: {href} does not resolve"
        rows = page.evaluate("""() => [...document.querySelectorAll('#leaderboard-table tbody tr')].map(tr =>
            [tr.cells[0].innerText, [...tr.querySelectorAll('td[data-metric]')]
                .filter(td => td.dataset.value !== '').map(td => [td.dataset.metric, td.innerText])])""")
        title = page.title().split(" · indexbench")[0]
        for indexer, cells in rows:
            for metric, text in cells:
                dataset, task = title.split(" · ")
                expected = statistics.fmean(means[(dataset, task, indexer, metric)])
                assert text.split(" ±")[0] == f"{expected:.4f}", (html.name, indexer, metric)
                seen_numbers += 1
    assert problems == []
    assert seen_numbers > 50  # the CI grid's leaderboards were actually read
