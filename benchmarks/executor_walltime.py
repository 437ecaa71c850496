"""Wall time of one grid run locally and on a local Ray cluster (issue #16's measurement).

Each run starts from an empty cache and store of its own (under a temporary folder, never the
user's), so both pay for every artifact; the metrics of the two runs are compared cell by cell
(every cell whose metrics differ is listed with its largest difference), and both runs' records
are kept in benchmarks/out/executors/<grid>/{local,ray}.json. Run it on an otherwise idle machine:

    python benchmarks/executor_walltime.py benchmarks/grids/ci.toml --workers 2
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(grid: Path, executor: str, workers: int, folder: Path, extra: list[str]) -> tuple[float, list[dict]]:
    out = folder / f"{executor}.json"
    command = [sys.executable, "-m", "indexbench", "run", "--grid", str(grid), "--executor", executor,
               "--store", str(folder / f"{executor}.sqlite"), "--cache-dir", str(folder / f"{executor}-cache"),
               "--json", str(out), "-q", *extra]
    if executor == "ray":
        command += ["--max-parallel", str(workers)]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started, json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("grid", type=Path)
    parser.add_argument("--workers", type=int, default=2, help="cells in flight on Ray")
    parser.add_argument("extra", nargs="*", help="more `indexbench run` arguments (after --)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="indexbench-executors-") as tmp:
        folder = Path(tmp)
        local_s, local = run(args.grid, "local", args.workers, folder, args.extra)
        ray_s, on_ray = run(args.grid, "ray", args.workers, folder, args.extra)
        kept = Path("benchmarks/out/executors") / args.grid.stem
        kept.mkdir(parents=True, exist_ok=True)
        for name in ("local.json", "ray.json"):
            shutil.copy(folder / name, kept / name)

    def metrics(records):
        return {(r["indexer"], r["task"], r["dataset"], r["seed"]): (r["status"], r["metrics"]) for r in records}

    left, right = metrics(local), metrics(on_ray)
    same = left == right
    for cell in sorted(set(left) | set(right), key=str):
        a, b = left.get(cell), right.get(cell)
        if a == b:
            continue
        if a is None or b is None or a[0] != b[0]:
            print(f"{cell}: local {a and a[0]}, ray {b and b[0]}")
            continue
        diffs = {k: abs(a[1][k] - b[1][k]) for k in a[1].keys() & b[1].keys()
                 if isinstance(a[1][k], (int, float)) and a[1][k] != b[1][k]}
        worst = max(diffs, key=diffs.get) if diffs else "(metric names)"
        print(f"{cell}: {len(diffs)} metrics differ, largest {worst} by {diffs.get(worst, 0):.4g}")
    print(f"| grid | cells | local s | Ray ({args.workers} in flight) s | local / Ray | same metrics |")
    print("|---|---:|---:|---:|---:|---|")
    print(f"| {args.grid} | {len(local)} | {local_s:.0f} | {ray_s:.0f} | {local_s / ray_s:.2f} | {same} |")


if __name__ == "__main__":
    main()
