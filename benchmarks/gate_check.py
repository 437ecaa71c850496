"""Proof that the CI gate (`indexbench compare` with a grid's spread rule) can fail, and that it
holds across machines (issue #27). Three commands, each against a committed grid and baseline:

    python benchmarks/gate_check.py power    --grid G --baseline B   # what each cell tolerates
    python benchmarks/gate_check.py planted  --grid G --baseline B   # planted regressions must FAIL
    python benchmarks/gate_check.py variants --grid G --baseline B   # other ISAs / threads must PASS
    python benchmarks/gate_check.py seeds --seeds 10,11,12 ...        # seeds the baseline lacks must PASS

``planted`` runs a few cells with a regression planted through an option (bm25 with k1 = 0, a
dual encoder that reads 16 document tokens, the generative engine at a tenth of its learning
rate, LMIndexer without its reconstructor warm-up), files the records under the baseline's cell
name, and exits 1 unless the gate fails every one of them. ``variants`` reruns cells in a child
process under the float paths of other CPUs (``VARIANTS``: torch's ``ATEN_CPU_CAPABILITY``,
every library capped at AVX2, an AVX-512 Xeon's library choices, MKL's reproducible GEMM path,
``OMP_NUM_THREADS``; for benchmarks, OpenBLAS's kernel and whole other CPUs emulated by QEMU)
and exits 1 unless the gate passes every one.
``seeds`` runs the grid at seeds the baseline does not hold and judges each seed alone, as CI
judges its one seed: the gate's false alarms on the noise it was built for. ``power`` prints,
per cell and headline metric, the noise the rule tolerates and the smallest
drop it detects at the grid's CI seeds.

Each writes nothing outside ``--out`` (default: a temporary folder): private store and cache.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from indexbench.checks import by_group
from indexbench.compare import compare
from indexbench.environment import cpu_isa
from indexbench.gridfile import Grid, load_grid
from indexbench.specs import IndexerSpec
from indexbench.store import RunRecord, read_records


@dataclass
class Planted:
    name: str
    prefix: str  # the baseline indexer spec it replaces starts with this
    extra: str  # options appended to that spec
    tasks: list[str] = field(default_factory=list)  # default: every task the baseline ran it on


PLANTED = [
    Planted("bm25 with k1 = 0", "bm25", ":k1=0"),
    Planted("dual encoder reading 16 document tokens", "dual-encoder", ":doc_max_length=16",
            ["document-retrieval", "product-search"]),
    Planted("generative engine at a tenth of its learning rate", "hc:", ":lr=1e-05:fresh_lr=3e-05",
            ["document-retrieval"]),
    # Caught by the reconstructor's own fit (the tiny backbone's IDs collapse either way).
    Planted("LMIndexer without its reconstructor warm-up", "lmindexer", ":reconstructor_warmup=false",
            ["id-quality"]),
]

def numpy_above_avx2() -> str:
    """numpy's runtime-dispatched SIMD targets beyond AVX2 (2.4 groups them as X86_V4 and
    AVX512_*; older releases name AVX512F, AVX512_SKX, ...), for NPY_DISABLE_CPU_FEATURES."""
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__
    except ImportError:
        from numpy.core._multiarray_umath import __cpu_dispatch__
    return " ".join(f for f in __cpu_dispatch__ if "AVX512" in f or f == "X86_V4")


# What an AVX2-only CPU runs, library by library: torch's own kernels, MKL's GEMM and oneDNN
# (torch); faiss's distance kernels (k-means); numpy's own SIMD loops. The OpenBLAS that numpy and
# faiss each bundle picks SkylakeX/Zen code on an AVX-512 CPU too, but `OPENBLAS_CORETYPE` is left
# as the machine has it: some machines set it (with `OPENBLAS_L2_SIZE`) because older OpenBLAS
# builds misbehave on their CPU, so tests and CI never change it. On this grid it moved nothing
# (benchmarks/LOG.md, "An AVX2 machine, library by library"); the `...-openblas` variants, for
# benchmarks only, set it where the machine does not.
AVX2_MACHINE = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2",
                "FAISS_SIMD_LEVEL": "AVX2", "NPY_DISABLE_CPU_FEATURES": numpy_above_avx2()}

# What an AVX-512 Xeon without VNNI or bf16 (Skylake-SP) selects where a library picks its
# kernels by instruction set: faiss's AVX512 level, oneDNN's avx512_core (and OpenBLAS's SkylakeX
# code in the `-openblas` variant). MKL's Intel-only code paths cannot be selected on an AMD CPU.
AVX512_XEON = {"FAISS_SIMD_LEVEL": "AVX512", "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}

OPENBLAS_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

# QEMU's user-mode emulator reads the CPU model from this variable and passes it on to the
# emulated process, so its records name the model (`env:QEMU_CPU`) and `compare` shows it.
QEMU_CPU = "QEMU_CPU"
QEMU = "qemu-x86_64"
# QEMU 7.2, the first release to emulate AVX2, crashes inside numpy's AVX2 argsort once torch is
# loaded (sklearn's AMI, every id-quality cell); 10.0 runs the grid. 8.x and 9.x are untested.
QEMU_OLDEST = (8, 0)


def qemu_version() -> tuple[int, ...]:
    """The installed emulator's version, as (major, minor); (0,) where it cannot be read."""
    try:
        banner = subprocess.run([QEMU, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return (0,)
    found = re.search(r"version (\d+)\.(\d+)", banner)
    return (int(found.group(1)), int(found.group(2))) if found else (0,)


def why_no_emulator() -> str | None:
    """Why QEMU cannot emulate a CPU here (None when it can): another machine, no emulator, or
    one too old to trust."""
    if platform.machine() != "x86_64":
        return f"{QEMU} emulates an x86-64 CPU on an x86-64 machine only"
    if shutil.which(QEMU) is None:
        return f"{QEMU} is not installed (Debian, Ubuntu: apt-get install qemu-user)"
    found = qemu_version()
    if found < QEMU_OLDEST:
        return (f"{QEMU} {'.'.join(map(str, found))} is older than {'.'.join(map(str, QEMU_OLDEST))}, whose "
                f"AVX2 emulation is sound (Debian 12: qemu-user from bookworm-backports)")
    return None


def emulator(env: dict[str, str] | None) -> list[str]:
    """The command prefix that runs a child under QEMU where ``env`` names a `QEMU_CPU`; else []."""
    return [shutil.which(QEMU) or QEMU] if QEMU_CPU in (env or {}) else []


VARIANTS = {
    "aten-default": {"ATEN_CPU_CAPABILITY": "default"},
    "aten-avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "aten-avx512": {"ATEN_CPU_CAPABILITY": "avx512"},
    "avx2-machine": AVX2_MACHINE,
    "avx512-xeon": AVX512_XEON,
    # MKL's conditional-numerical-reproducibility code path: on an AMD CPU the only MKL setting
    # that changes a GEMM's bits (MKL_ENABLE_INSTRUCTIONS and every other MKL_CBWR branch leave
    # them as they are), so the nearest stand-in here for the Intel-only kernels a Xeon's MKL picks.
    "mkl-compatible": {"MKL_CBWR": "COMPATIBLE"},
    "omp1": {"OMP_NUM_THREADS": "1"},
    "omp2": {"OMP_NUM_THREADS": "2"},
    # Benchmarks only (not the default list, never in CI): they set OpenBLAS's kernel.
    "avx2-machine-openblas": {**AVX2_MACHINE, "OPENBLAS_CORETYPE": "Haswell"},
    "avx512-xeon-openblas": {**AVX512_XEON, "OPENBLAS_CORETYPE": "SkylakeX"},
    # Benchmarks only: another CPU itself, emulated. QEMU's user-mode emulator runs the cells on a
    # virtual CPU whose CPUID every library reads, so each one picks its kernels as it would on
    # that machine, with no variable of its own set: MKL's Intel-only code paths on a GenuineIntel
    # model (no setting reaches them on an AMD CPU), OpenBLAS's kernel, faiss's, numpy's, torch's,
    # oneDNN's. QEMU (10.0 too) emulates AVX2 but neither AVX-512 nor AMX, so the CPUs are
    # AVX2-only ones: an Intel Haswell and an AMD Zen 2 (the kind of machine issue #27 failed
    # on). 30 to 110 times slower than the host. Not that CPU's digits wherever a kernel uses the
    # estimate instructions (rcpps, rsqrtps): QEMU returns the exact value where silicon returns
    # a 12-bit estimate, so e.g. MKL's sqrt on an AMD model rounds otherwise and the emulated
    # Zen 2 is another draw than a real one (benchmarks/LOG.md, "The emulator against a real
    # machine"); what carries over is the verdict on a draw of that CPU's kernels.
    "qemu-haswell": {QEMU_CPU: "Haswell-v4"},
    "qemu-epyc-rome": {QEMU_CPU: "EPYC-Rome"},
}
BENCHMARK_ONLY = [name for name in VARIANTS if name.endswith("-openblas") or QEMU_CPU in VARIANTS[name]]
DEFAULT_VARIANTS = [name for name in VARIANTS if name not in BENCHMARK_ONLY]


def why_not_runnable(name: str, environ: dict[str, str] | None = None) -> str | None:
    """Why a variant cannot run here (None when it can): an AVX-512 variant on a CPU without
    AVX-512, or a variant that sets OpenBLAS's kernel on a machine whose environment already sets
    it (kept there for correctness, never overridden)."""
    environ = os.environ if environ is None else environ
    if "avx512" in name and not cpu_has_avx512():
        return "this CPU has no AVX-512"
    if QEMU_CPU in VARIANTS[name] and (why := why_no_emulator()):
        return why
    set_here = [v for v in OPENBLAS_VARIABLES if v in environ]
    if "OPENBLAS_CORETYPE" in VARIANTS[name] and set_here:
        return f"this machine sets {', '.join(set_here)}, which a variant never overrides"
    return None


def cpu_has_avx512() -> bool:
    return "avx512" in cpu_isa().split()


def run_cells(grid: Grid, indexers: list[str], tasks: list[str], out: Path, env: dict[str, str] | None = None,
              seeds: list[int] | None = None) -> list[RunRecord]:
    """`indexbench run` in a child process (so environment variables read at torch's start take
    effect; under QEMU's emulator where ``env`` names a `QEMU_CPU`), on a private store and
    cache; its records."""
    out.mkdir(parents=True, exist_ok=True)
    command = [*emulator(env), sys.executable, "-m", "indexbench", "run", "-i", ",".join(indexers), "-t", ",".join(tasks),
               "-d", ",".join(grid.datasets), "--seeds", ",".join(map(str, seeds or grid.seeds)),
               "--device", grid.device or "cpu", "--json", str(out / "records.json"),
               "--store", str(out / "results.sqlite"), "--cache-dir", str(out / "cache"), "-q"]
    if grid.threads is not None:
        command += ["--threads", str(grid.threads)]
    if grid.data_dir is not None:
        command += ["--data-dir", str(grid.data_dir)]
    done = subprocess.run(command, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    if done.returncode not in (0, 1):
        raise SystemExit(f"indexbench run failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return read_records(out / "records.json")


def power(grid: Grid, baseline: list[RunRecord], metrics: list[str] | None) -> list[dict]:
    """Per cell and metric: the baseline's sd over seeds, the noise of a difference at the CI's
    seed count, and the drop the rule needs to fail (the smallest it detects)."""
    from indexbench.spread import deterministic, judge_metric

    rows = []
    for group, seeds in by_group(baseline).items():
        ok = [r for r in seeds.values() if r.status == "ok"]
        if not ok:
            continue
        names = metrics or list(ok[0].metrics)
        for name in [n for n in names if n in ok[0].metrics]:
            ci = [RunRecord(indexer=r.indexer, task=r.task, dataset=r.dataset, status="ok", seed=r.seed,
                            metrics=dict(r.metrics)) for r in ok[:len(grid.seeds)]]
            check = judge_metric(name, ok, ci, grid.tolerances, deterministic=deterministic(ok))
            rows.append({"cell": " · ".join(group[1:]), "metric": name, "mean": check.baseline,
                         "sd": check.baseline_sd or 0.0, "noise": check.noise or 0.0, "detects": check.allowed,
                         "rule": check.rule, "seeds": len(ok)})
    return rows


def planted(grid: Grid, baseline: list[RunRecord], out: Path) -> list[dict]:
    groups = by_group(baseline)
    results = []
    for plant in PLANTED:
        specs = sorted({g[2] for g in groups if g[2].startswith(plant.prefix)})
        if not specs:
            results.append({"planted": plant.name, "caught": False, "why": "no baseline cell for it"})
            continue
        for spec in specs:
            tasks = plant.tasks or sorted({g[1] for g in groups if g[2] == spec})
            tasks = [t for t in tasks if any(g[1] == t and g[2] == spec for g in groups)]
            started = time.perf_counter()
            records = run_cells(grid, [spec + plant.extra], tasks, out / f"planted-{len(results)}")
            for record in records:
                record.indexer = spec  # filed under the baseline's cell: the gate sees "the same cell, worse"
            base = [r for r in baseline if r.indexer == spec and r.task in tasks]
            result = compare(base, records, grid.tolerances)
            failed = [c for c in result.cells if c.failed]
            worst = max((m for c in result.cells for m in c.metrics if m.used is not None),
                        key=lambda m: m.used, default=None)
            results.append({"planted": plant.name, "cell": spec, "tasks": tasks, "caught": bool(failed),
                            "failed_cells": [c.label for c in failed],
                            "worst": None if worst is None else
                            {"metric": worst.name, "baseline": worst.baseline, "current": worst.current,
                             "allowed": worst.allowed, "used": worst.used, "rule": worst.rule},
                            "seconds": round(time.perf_counter() - started, 1)})
    return results


def largest_z(result) -> tuple[float, str]:
    """The largest worsening of a seed-varying metric in units of the noise of the difference,
    and where: what k has to exceed for the comparison to pass."""
    found = [(m.worsening / m.noise, f"{c.label} {m.name}") for c in result.cells for m in c.metrics
             if m.rule == "spread" and m.noise and m.worsening is not None]
    return max(found, default=(0.0, ""))


def moved_from_same_seed(baseline: list[RunRecord], records: list[RunRecord], result) -> dict:
    """What the run changed against the baseline's records of the same seeds: the cells with a
    metric that differs, and the largest such change (either way) in noise units. Unlike
    `largest_z`, this leaves out how far the seed itself sits from the baseline's mean."""
    same = by_group(baseline)
    noise = {(c.key[:3], m.name): m.noise for c in result.cells for m in c.metrics if m.noise}
    cells, largest, where = [], 0.0, ""
    for key, seeds in by_group(records, ok_only=True).items():
        for seed, record in seeds.items():
            before = same.get(key, {}).get(seed)
            if before is None:
                continue
            names = [n for n, v in record.metrics.items() if before.metrics.get(n) != v]
            if names:
                cells.append(f"{IndexerSpec.parse(key[2]).name} · {key[1]} ({len(names)})")
            for n in names:
                if noise.get((key, n)):
                    z = abs(record.metrics[n] - before.metrics[n]) / noise[(key, n)]
                    if z > largest:
                        largest, where = z, f"{IndexerSpec.parse(key[2]).name} · {key[1]} {n}"
    return {"cells_moved": cells, "largest_move_z": round(largest, 2), "largest_move_at": where}


def judged(name: str, env: dict, result, started: float, baseline: list[RunRecord] | None = None,
           records: list[RunRecord] | None = None) -> dict:
    used = sorted(((m.used, c.label, m.name) for c in result.cells for m in c.metrics if m.used is not None),
                  reverse=True)
    moved = sum(1 for c in result.cells for m in c.metrics if m.delta not in (None, 0.0))
    z, where = largest_z(result)
    return {"variant": name, "env": env, "passed": not result.failed,
            "failed_cells": [f"{c.label}: {c.reason}" for c in result.failed], "metrics_moved": moved,
            "closest": used[:3], "largest_z": round(z, 2), "largest_z_at": where,
            **(moved_from_same_seed(baseline, records, result) if baseline and records else {}),
            "seconds": round(time.perf_counter() - started, 1)}


def selected(grid: Grid, baseline: list[RunRecord], indexers: list[str] | None,
             tasks: list[str] | None) -> tuple[list[str], list[str], list[RunRecord]]:
    """The indexers and tasks to rerun (default: the grid's) and the baseline records of their cells."""
    indexers = indexers or grid.indexers
    tasks = tasks or grid.tasks
    labels = {IndexerSpec.parse(spec).label for spec in indexers}  # records file options sorted
    base = [r for r in baseline if r.indexer in labels and r.task in tasks]
    if not base:
        raise SystemExit(f"no baseline cell for indexers {sorted(labels)} and tasks {tasks}")
    return indexers, tasks, base


def other_seeds(grid: Grid, baseline: list[RunRecord], out: Path, seeds: list[int], indexers: list[str] | None,
                tasks: list[str] | None) -> list[dict]:
    indexers, tasks, base = selected(grid, baseline, indexers, tasks)
    started = time.perf_counter()
    records = run_cells(grid, indexers, tasks, out / "seeds", seeds=seeds)
    return [judged(f"seed {seed}", {}, compare(base, [r for r in records if r.seed == seed], grid.tolerances),
                   started) for seed in seeds]


def variants(grid: Grid, baseline: list[RunRecord], out: Path, names: list[str], indexers: list[str] | None,
             tasks: list[str] | None) -> list[dict]:
    indexers, tasks, base = selected(grid, baseline, indexers, tasks)
    results = []
    for name in names:
        why = why_not_runnable(name)
        if why:
            results.append({"variant": name, "passed": None, "why": why})
            continue
        started = time.perf_counter()
        records = run_cells(grid, indexers, tasks, out / f"variant-{name}", VARIANTS[name])
        results.append(judged(name, VARIANTS[name], compare(base, records, grid.tolerances), started, base, records))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["power", "planted", "variants", "seeds"])
    parser.add_argument("--grid", type=Path, default=Path("benchmarks/grids/ci.toml"))
    parser.add_argument("--baseline", type=Path, default=Path("benchmarks/baselines/ci.json"))
    parser.add_argument("--out", type=Path, help="keep the runs' records here [default: a temporary folder]")
    parser.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                        help=f"variants: comma-separated, of {', '.join(VARIANTS)} [default: all but "
                             f"{', '.join(BENCHMARK_ONLY)}]")
    parser.add_argument("--indexers", help="variants, seeds: only these baseline cells' indexers (comma-separated)")
    parser.add_argument("--tasks", help="variants, seeds: only these tasks (comma-separated)")
    parser.add_argument("--metrics", help="power: only these metrics (comma-separated)")
    parser.add_argument("--seeds", default="10,11,12,13,14", help="seeds: the seeds to run (comma-separated)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    grid, baseline = load_grid(args.grid), read_records(args.baseline)
    out = args.out or Path(tempfile.mkdtemp(prefix="indexbench-gate-check-"))
    if args.command == "power":
        results = power(grid, baseline, args.metrics.split(",") if args.metrics else None)
        print(f"{'cell':<70} {'metric':<16} {'mean':>8} {'sd':>8} {'noise':>8} {'detects':>8}  rule")
        for row in results:
            print(f"{row['cell'][:70]:<70} {row['metric']:<16} {row['mean']:8.4f} {row['sd']:8.4f} "
                  f"{row['noise']:8.4f} {row['detects']:8.4f}  {row['rule']}")
        ok = True
    elif args.command == "planted":
        results = planted(grid, baseline, out)
        for row in results:
            worst = row.get("worst") or {}
            state = "CAUGHT " if row["caught"] else "MISSED "
            moved = (f"worst {worst['metric']} {worst['baseline']:.4f} → {worst['current']:.4f} (tolerance "
                     f"{worst['allowed']:.4f}, {worst['rule']})" if worst else "no metric got worse")
            print(f"{state} {row['planted']}: {row.get('cell', row.get('why', ''))} {row.get('tasks', '')}; {moved}; "
                  f"{row.get('seconds', 0)} s")
        ok = all(row["caught"] for row in results)
    else:
        indexers = args.indexers.split(",") if args.indexers else None
        tasks = args.tasks.split(",") if args.tasks else None
        if args.command == "seeds":
            results = other_seeds(grid, baseline, out, [int(s) for s in args.seeds.split(",") if s], indexers, tasks)
        else:
            names = [n for n in args.variants.split(",") if n]
            unknown = [n for n in names if n not in VARIANTS]
            if unknown:
                parser.error(f"unknown variant {unknown[0]!r}; valid: {', '.join(VARIANTS)}")
            results = variants(grid, baseline, out, names, indexers, tasks)
        for row in results:
            state = {True: "PASSED", False: "FAILED", None: "SKIPPED"}[row["passed"]]
            closest = "; ".join(f"{label} {metric} {used:.0%}" for used, label, metric in row.get("closest", []))
            print(f"{state} {row['variant']} {row.get('env', '')}: {row.get('metrics_moved', 0)} metric(s) moved; "
                  f"largest worsening {row.get('largest_z', 0)} x noise ({row.get('largest_z_at', '')}); "
                  f"closest: {closest or 'none worse'}; {row.get('seconds', '')} s {row.get('why', '')}")
            if "cells_moved" in row:
                print(f"    against the baseline's same seed: {len(row['cells_moved'])} cell(s) moved "
                      f"({', '.join(row['cells_moved']) or 'none'}); largest move {row['largest_move_z']} x noise "
                      f"({row['largest_move_at'] or '-'})")
            for failure in row.get("failed_cells", []):
                print(f"    {failure}")
        ok = all(row["passed"] is not False for row in results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
