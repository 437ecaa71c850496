"""Screenshots of an `indexbench report` site in headless Chromium (issue #31).

    python benchmarks/report_screenshot.py REPORT_DIR OUT_DIR [--width 1200] [--max-height 2400]

Writes OUT_DIR/report-index.png (the index) and OUT_DIR/report-<board>.png for every board page
(the top of the page, down to --max-height pixels), and fails if a page logs a console error or
shows an image that does not decode. Needs Debian's chromium (or $INDEXBENCH_CHROMIUM) and the
playwright package (a test dependency; its own browser downloads are never used).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--max-height", type=int, default=2400)
    args = parser.parse_args()
    index = args.report.resolve() / "index.html"
    if not index.is_file():
        sys.exit(f"{index}: not found (write the report first: indexbench report --out {args.report})")
    chromium = os.environ.get("INDEXBENCH_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        sys.exit("no chromium on PATH (Debian: apt-get install chromium; or set INDEXBENCH_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": args.width, "height": 900})
        page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        for html in [index] + sorted(p for p in index.parent.glob("*.html") if p != index):
            page.goto(html.as_uri())
            broken = page.evaluate("""() => [...document.images]
                .filter(img => !img.complete || img.naturalWidth === 0).map(img => img.getAttribute('src'))""")
            problems += [f"{html.name}: image does not load: {src}" for src in broken]
            height = min(page.evaluate("() => document.documentElement.scrollHeight"), args.max_height)
            target = args.out / f"report-{html.stem}.png"
            page.screenshot(path=str(target), clip={"x": 0, "y": 0, "width": args.width, "height": height},
                            full_page=True)
            print(f"{target} ({args.width}x{height})")
        browser.close()
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
