"""The regression workflow: grid files, --seeds, --resume after SIGKILL, and `indexbench compare`
(tolerances, missing and failed cells, paired significance tests, Markdown and JUnit output)."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from typer.testing import CliRunner

from indexbench.cli import app
from indexbench.compare import add_significance, compare, paired_tests, render_junit, rows, summary
from indexbench.errors import ConfigError
from indexbench.gridfile import Tolerance, Tolerances, load_grid
from indexbench.leaderboard import build_tables, render_markdown
from indexbench.runner import run_grid
from indexbench.store import ResultStore, RunRecord

GRID = """\
indexers = ["bm25", "bm25:k1=0.9"]
tasks = ["document-retrieval", "product-search"]
seeds = [0]

[tolerance]
absolute = 0.001

[tolerance.metrics."ndcg@10"]
absolute = 0.01
"""


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- grid files


def test_a_grid_file_gives_cells_seeds_and_tolerances(tmp_path):
    grid = load_grid(_write(tmp_path / "g.toml", GRID))
    assert grid.indexers == ["bm25", "bm25:k1=0.9"] and grid.datasets == ["sample"] and grid.seeds == [0]
    assert grid.tolerances.of("ndcg@10") == Tolerance(absolute=0.01, relative=0.0)
    assert grid.tolerances.of("mrr@10") == Tolerance(absolute=0.001, relative=0.0)
    assert grid.tolerances.timings is None


@pytest.mark.parametrize("text, message", [
    ('indexers = ["bm25"]\nindexer = ["x"]\n', "unknown key 'indexer'; valid keys: baseline_seeds, data_dir, datasets, device,"),
    ('indexers = ["bm25"]\nseeds = "0,1"\n', "'seeds' must be a non-empty list of integers, got '0,1'"),
    ('indexers = ["bm25"]\n[tolerance]\nseeds = "median"\n', "'tolerance.seeds' must be one of each, mean, got 'median'"),
    ('indexers = [3]\n', "'indexers' must be a non-empty list of strings"),
    ('tasks = ["id-quality"]\n', "'indexers' is required"),
    ('indexers = ["bm25"\n', "not valid TOML"),
    ('indexers = ["bm25"]\n[tolerance]\nabsolut = 0.1\n', "unknown key 'absolut' in [tolerance]"),
    ('indexers = ["bm25"]\n[tolerance.metrics."ndcg@10"]\nabsolute = -1\n',
     "'tolerance.metrics.ndcg@10.absolute' must be a number >= 0, got -1"),
])
def test_a_bad_grid_file_is_one_line_naming_the_file_and_key(tmp_path, text, message):
    path = _write(tmp_path / "g.toml", text)
    with pytest.raises(ConfigError) as info:
        load_grid(path)
    assert str(info.value).startswith(f"{path}: ") and message in str(info.value)
    assert "\n" not in str(info.value)


def test_an_unknown_name_in_a_grid_file_is_one_line_naming_the_file_and_key(tmp_path, user):
    grid = _write(tmp_path / "g.toml", 'indexers = ["bm25", "nosuch"]\ntasks = ["document-retrieval"]\n')
    result = CliRunner().invoke(app, ["run", "--grid", str(grid), "-q"])
    assert result.exit_code == 2
    assert f"{grid}: 'indexers': unknown indexer 'nosuch'; valid indexers: bm25," in result.stderr
    assert not (user / "results.sqlite").exists()
    # The same name given as a flag is the flag's error, not the file's.
    flag = CliRunner().invoke(app, ["run", "--grid", str(grid), "-i", "nosuch", "-q"])
    assert flag.exit_code == 2 and str(grid) not in flag.stderr and "unknown indexer 'nosuch'" in flag.stderr


def test_run_reads_the_grid_and_flags_override_it(tmp_path, user):
    grid = _write(tmp_path / "g.toml", GRID)
    out = tmp_path / "out.json"
    result = CliRunner().invoke(app, ["run", "--grid", str(grid), "-q", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted((r["indexer"], r["task"]) for r in json.loads(out.read_text())) == [
        ("bm25", "document-retrieval"), ("bm25", "product-search"),
        ("bm25:k1=0.9", "document-retrieval"), ("bm25:k1=0.9", "product-search")]
    result = CliRunner().invoke(app, ["run", "--grid", str(grid), "-q", "-t", "product-search", "--json", str(out)])
    assert {r["task"] for r in json.loads(out.read_text())} == {"product-search"}
    bad = CliRunner().invoke(app, ["run", "--grid", str(tmp_path / "nope.toml")])
    assert bad.exit_code == 2 and "no such grid file" in bad.stderr


# --------------------------------------------------------------------------- seeds


def test_several_seeds_run_each_cell_once_per_seed_and_the_leaderboard_shows_mean_and_sd(tmp_path):
    store = ResultStore(tmp_path / "r.sqlite")
    records = run_grid(["random-ids:backbone=tiny:max_steps=1"], ["id-quality"], ["sample"], seed=[0, 1, 2],
                       store=store, cache_dir=tmp_path / "cache", device="cpu")
    assert [r.seed for r in records] == [0, 1, 2] and all(r.status == "ok" for r in records)
    assert len(store.records()) == 3  # latest per cell *and seed*
    (table,) = build_tables(store.records())
    assert table.columns[-1] == "seeds" and table.rows[0][-1] == "3"
    values = [r.metrics["ami_l2"] for r in records]
    mean = sum(values) / 3
    sd = (sum((v - mean) ** 2 for v in values) / 2) ** 0.5
    assert table.rows[0][1] == f"{mean:.4f} ± {sd:.4f}"
    assert "± " in render_markdown([table])


# --------------------------------------------------------------------------- compare


def _rec(indexer: str, metrics: dict[str, float], *, status: str = "ok", per_query=None, task="product-search",
         reason: str = "", seed: int = 0) -> RunRecord:
    return RunRecord(indexer=indexer, task=task, dataset="sample", status=status, metrics=metrics,
                     per_query=per_query or {}, reason=reason, seed=seed)


def test_compare_passes_within_tolerance_and_names_what_moved_beyond_it():
    tolerances = Tolerances(default=Tolerance(absolute=0.01), metrics={"map@5": Tolerance(absolute=0.0, relative=0.1)})
    base = [_rec("a", {"ndcg@5": 0.50, "map@5": 0.40}), _rec("b", {"ndcg@5": 0.30}), _rec("gone", {"ndcg@5": 0.1}),
            _rec("broken", {"ndcg@5": 0.2}), _rec("skip", {}, status="skipped", reason="no IDs")]
    cur = [_rec("a", {"ndcg@5": 0.495, "map@5": 0.37}), _rec("b", {"ndcg@5": 0.35}),
           _rec("broken", {}, status="error", reason="RuntimeError: boom"), _rec("fresh", {"ndcg@5": 0.9}),
           _rec("skip", {}, status="skipped", reason="no IDs")]
    result = compare(base, cur, tolerances)
    by = {c.key[2]: c for c in result.cells}
    assert by["a"].status == "ok"  # -0.005 within 0.01; map@5 -0.03 within 10 % of 0.40
    assert by["b"].status == "ok" and by["b"].metrics[0].status == "improved"
    assert by["gone"].status == "missing" and by["broken"].status == "error" and "boom" in by["broken"].reason
    assert by["fresh"].status == "new" and not by["fresh"].failed and by["skip"].status == "skipped"
    assert {c.key[2] for c in result.failed} == {"gone", "broken"}
    worse = compare(base[:1], [_rec("a", {"ndcg@5": 0.48, "map@5": 0.35})], tolerances)
    (cell,) = worse.failed
    assert cell.status == "regressed"
    assert cell.reason == ("ndcg@5 0.5000 → 0.4800 (-0.0200, tolerance ±0.0100); "
                           "map@5 0.4000 → 0.3500 (-0.0500, tolerance ±0.0400)")


def test_compare_names_what_differs_between_the_two_sides_environments_when_a_cell_fails():
    base = [_rec("a", {"ndcg@5": 0.50}), _rec("b", {"ndcg@5": 0.30})]
    for record in base:
        record.versions = {"python": "3.11.7", "torch": "2.13.0", "plugin:a": "1", "indexbench": "0.1.0"}
    cur = [_rec("a", {"ndcg@5": 0.40}), _rec("b", {"ndcg@5": 0.30})]
    for record in cur:
        record.versions = {"python": "3.11.7", "torch": "2.13.0", "cpu": "x86_64 avx512", "plugin:a": "2",
                           "indexbench": "0.2.0"}
    result = compare(base, cur)
    # Plugin and indexbench versions are what a change moves, not the environment.
    assert result.environment == ["cpu: unrecorded → x86_64 avx512"]
    assert "different environments (cpu: unrecorded → x86_64 avx512)" in summary(result)
    cur[0].metrics["ndcg@5"] = 0.50
    assert "environments" not in summary(compare(base, cur))  # nothing failed: no note
    assert compare(base, base).environment == []


def test_records_carry_the_cpus_vector_instructions():
    from indexbench.environment import cpu_isa, package_versions

    assert package_versions()["cpu"] == cpu_isa()
    assert cpu_isa().split()[0] == platform.machine()
    machine = platform.machine()
    # AMD Zen 4 and an Intel Sapphire Rapids both have AVX-512; only the second has AMX tiles.
    assert cpu_isa(["sse4_2", "avx", "avx2", "avx512f"]) == f"{machine} avx512"
    assert cpu_isa(["avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16"]) == f"{machine} avx512 amx"
    assert cpu_isa(["sse4_2", "avx", "avx2"]) == f"{machine} avx2"
    assert cpu_isa([]) == machine


def test_records_carry_the_cpus_vendor():
    from indexbench.environment import cpu_vendor, package_versions

    # MKL picks its code path by vendor too: same ISA, other digits.
    assert cpu_vendor("GenuineIntel") == "intel" and cpu_vendor("AuthenticAMD") == "amd"
    assert cpu_vendor("HygonGenuine") == "HygonGenuine" and cpu_vendor("") == ""
    if Path("/proc/cpuinfo").exists():
        assert package_versions().get("cpu_vendor") == cpu_vendor()


def _kernel_levels(env: dict[str, str], imports: str) -> dict[str, str]:
    code = f"{imports}\nimport json\nfrom indexbench.environment import kernel_levels\nprint(json.dumps(kernel_levels()))"
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_records_name_the_kernel_level_each_loaded_library_runs_at_as_set_by_its_variable():
    faiss = pytest.importorskip("faiss")
    if not hasattr(faiss, "SIMDConfig"):
        pytest.skip("this faiss loads one build at import and cannot report a level")
    pytest.importorskip("threadpoolctl")
    if "avx2" not in Path("/proc/cpuinfo").read_text():
        pytest.skip("the variables are checked against an AVX2 CPU's levels")
    capped = _kernel_levels({"ATEN_CPU_CAPABILITY": "default", "FAISS_SIMD_LEVEL": "NONE"},
                            "import numpy, faiss, torch")
    assert capped["torch_isa"] == "DEFAULT" and capped["faiss_isa"] == "NONE"
    # OPENBLAS_CORETYPE is never set by a test (some machines set it to work around their CPU);
    # where the machine sets it, a bundled OpenBLAS must report that kernel (an older build may
    # not know the name and fall back to its own choice).
    blas = {k: v for k, v in capped.items() if k.startswith("openblas_core:")}
    assert set(blas) >= {"openblas_core:numpy", "openblas_core:faiss_cpu"} and all(blas.values())
    if os.environ.get("OPENBLAS_CORETYPE"):
        assert os.environ["OPENBLAS_CORETYPE"].lower() in {v.lower() for v in blas.values()}
    native = _kernel_levels({}, "import numpy, faiss, torch")
    assert native["torch_isa"] != "DEFAULT" and native["faiss_isa"] != "NONE"
    # Nothing is imported to ask: a process that never loaded torch or faiss names neither.
    assert not {"torch_isa", "faiss_isa"} & set(_kernel_levels({}, "import indexbench"))


def test_each_bundled_openblas_is_named_by_the_wheel_that_ships_it():
    from indexbench.environment import _bundling_package

    assert _bundling_package("/v/site-packages/numpy.libs/libscipy_openblas64_-32a4b2a6.so") == "numpy"
    assert _bundling_package("/v/site-packages/faiss_cpu.libs/libopenblaso-r0-d77a1985.3.15.so") == "faiss_cpu"
    assert _bundling_package("/v/site-packages/numpy/.dylibs/libscipy_openblas64_.dylib") == "numpy"  # macOS
    assert _bundling_package("/usr/lib/x86_64-linux-gnu/libopenblas.so.0") == "libopenblas"  # a system one


def test_compare_names_a_library_level_only_where_both_sides_loaded_that_library():
    base = [_rec("a", {"ndcg@5": 0.50})]
    base[0].versions = {"cpu": "x86_64 avx512", "openblas_core:numpy": "SkylakeX", "faiss_isa": "AVX512"}
    cur = [_rec("a", {"ndcg@5": 0.40})]
    # This side never loaded faiss (a bm25 cell run first): no difference of machine.
    cur[0].versions = {"cpu": "x86_64 avx512", "openblas_core:numpy": "SkylakeX"}
    assert compare(base, cur).environment == []
    cur[0].versions = {"cpu": "x86_64 avx512", "openblas_core:numpy": "Haswell", "faiss_isa": "AVX2"}
    assert compare(base, cur).environment == ["faiss_isa: AVX512 → AVX2", "openblas_core:numpy: SkylakeX → Haswell"]
    cur[0].versions = {"openblas_core:numpy": "SkylakeX", "faiss_isa": "AVX512"}  # cpu is always recorded
    assert compare(base, cur).environment == ["cpu: x86_64 avx512 → unrecorded"]


def test_records_carry_the_float_path_variables_that_were_set_and_compare_names_them():
    from indexbench.environment import float_path_variables

    assert float_path_variables({"MKL_CBWR": "COMPATIBLE", "ONEDNN_MAX_CPU_ISA": "", "HOME": "/x"}) == {
        "env:MKL_CBWR": "COMPATIBLE"}
    assert float_path_variables({}) == {}
    base = [_rec("a", {"ndcg@5": 0.50})]
    base[0].versions = {"cpu": "x86_64 avx512"}
    cur = [_rec("a", {"ndcg@5": 0.40})]
    cur[0].versions = {"cpu": "x86_64 avx512", "env:MKL_CBWR": "COMPATIBLE"}
    result = compare(base, cur)
    assert result.environment == ["env:MKL_CBWR: unset → COMPATIBLE"]
    assert result.cells[0].environment == ["env:MKL_CBWR: unset → COMPATIBLE"]


def test_a_run_records_the_float_path_variables_of_its_environment(monkeypatch):
    monkeypatch.setenv("MKL_CBWR", "COMPATIBLE")
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    (record,) = run_grid(["most-popular"], ["recommendation"], ["sample"], store=False, use_cache=False)
    assert record.versions.get("env:MKL_CBWR") == "COMPATIBLE"
    assert "env:ONEDNN_MAX_CPU_ISA" not in record.versions


def test_a_cells_record_carries_the_kernel_levels_of_what_it_loaded(tmp_path):
    pytest.importorskip("threadpoolctl")
    from indexbench.environment import kernel_levels

    (record,) = run_grid(["most-popular"], ["recommendation"], ["sample"], store=False, use_cache=False)
    expected = kernel_levels()
    assert expected and {k: record.versions.get(k) for k in expected} == expected


def test_compare_shows_the_mean_and_sd_across_seeds_and_gates_on_it_when_asked():
    def run(values, per_query=None):
        return [_rec("a", {"ndcg@5": v}, seed=s, per_query=(per_query or {}).get(s)) for s, v in enumerate(values)]

    queries = {s: {f"q{i}": {"ndcg@5": 0.1 * i + 0.01 * s} for i in range(6)} for s in range(3)}
    base = run([0.50, 0.52, 0.54], queries)
    # One seed drops by 0.03, the mean by 0.01: within a 0.015 tolerance, beyond it for that seed.
    moved = {s: {q: {"ndcg@5": v["ndcg@5"] - (0.03 if s == 1 else 0.0)} for q, v in qs.items()}
             for s, qs in queries.items()}
    cur = run([0.50, 0.49, 0.54], moved)
    each = compare(base, cur, Tolerances(default=Tolerance(absolute=0.015)))
    add_significance(each, base, cur)
    mean_row = each.cells[-1]
    assert [c.key[3] for c in each.cells[:3]] == [0, 1, 2] and mean_row.seeds == ((0, 1, 2), (0, 1, 2))
    (check,) = mean_row.metrics
    assert check.baseline == pytest.approx(0.52) and check.baseline_sd == pytest.approx(0.02)
    assert check.current == pytest.approx(0.51) and check.current_sd == pytest.approx(0.02646, abs=1e-5)
    assert mean_row.status == "ok" and check.n_queries == 18  # every (seed, query) pair both sides have
    assert [c.key[3] for c in each.failed] == [1]  # by default every seed's cell gates
    table = rows(each)
    assert table[-1][0] == "sample · product-search · a · mean of seeds 0,1,2"
    assert table[-1][2:4] == ["0.5200 ± 0.0200", "0.5100 ± 0.0265"]
    gate_on_mean = compare(base, cur, Tolerances(default=Tolerance(absolute=0.015), seeds="mean"))
    assert not gate_on_mean.failed  # the seed's drop is shown, not failed
    assert "regressed, not gated" in [r[-1] for r in rows(gate_on_mean)]
    assert "1 beyond it but not gated" in summary(gate_on_mean)
    worse = compare(base, run([0.47, 0.49, 0.51]), Tolerances(default=Tolerance(absolute=0.015), seeds="mean"))
    assert [c.label for c in worse.failed] == ["sample · product-search · a · mean of seeds 0,1,2"]
    # A seed that is missing now still fails when the gate is on the mean: the run is incomplete.
    short = compare(base, cur[:2], Tolerances(default=Tolerance(absolute=0.015), seeds="mean"))
    assert [c.status for c in short.failed][0] == "missing"
    assert short.cells[-1].label.endswith("mean of seeds 0,1,2 → 0,1")
    # One seed on each side: no mean row.
    assert all(c.seeds is None for c in compare(base[:1], cur[:1]).cells)
    junit = ET.fromstring(render_junit(each))
    assert "a mean of seeds 0,1,2" in [case.get("name") for case in junit.iter("testcase")]


def test_paired_tests_on_constructed_runs_with_known_answers():
    base = [0.1 * i for i in range(10)]
    # Every query better by a different amount: the exact two-sided Wilcoxon p is 2 / 2**10.
    p_t, p_w = paired_tests(base, [b + 0.01 * (i + 1) for i, b in enumerate(base)])
    assert p_w == pytest.approx(2 / 2**10)
    # Differences 0.01..0.10: mean 0.055, sd 0.030277, t = 0.055 / (0.030277 / sqrt 10) = 5.7446 on
    # 9 degrees of freedom, two-sided p = 2.782e-4 (t tables).
    assert p_t == pytest.approx(2.782e-4, rel=1e-3)
    # Differences that cancel: t = 0, so p = 1; no change at all: 1 and 1.
    p_t, _ = paired_tests(base, [b + (0.05 if i % 2 else -0.05) for i, b in enumerate(base)])
    assert p_t == pytest.approx(1.0)
    assert paired_tests(base, base) == (1.0, 1.0)
    assert paired_tests([0.5], [0.7]) == (None, None)


def test_cli_compare_exits_1_naming_the_cell_and_metric_and_writes_junit(tmp_path, user):
    grid = _write(tmp_path / "g.toml", GRID)
    base, cur = tmp_path / "base.json", tmp_path / "cur.json"
    for out in (base, cur):
        assert CliRunner().invoke(app, ["run", "--grid", str(grid), "-q", "--json", str(out)]).exit_code == 0
    same = CliRunner().invoke(app, ["compare", str(base), str(cur), "--grid", str(grid)])
    assert same.exit_code == 0, same.output
    assert "4 cells within tolerance" in same.stderr
    against_store = CliRunner().invoke(app, ["compare", str(base), "--grid", str(grid)])
    assert against_store.exit_code == 0, against_store.output
    edited = json.loads(base.read_text())
    target = next(r for r in edited if r["indexer"] == "bm25:k1=0.9" and r["task"] == "document-retrieval")
    target["metrics"]["ndcg@10"] += 0.02  # beyond the grid's 0.01 for ndcg@10
    _write(tmp_path / "edited.json", json.dumps(edited))
    junit = tmp_path / "compare.xml"
    result = CliRunner().invoke(app, ["compare", str(tmp_path / "edited.json"), str(cur), "--grid", str(grid),
                                      "--format", "markdown", "--junit", str(junit)])
    assert result.exit_code == 1
    assert "sample · document-retrieval · bm25:k1=0.9: regressed (ndcg@10" in result.stdout
    suite = ET.parse(junit).getroot()
    assert suite.get("tests") == "4" and suite.get("failures") == "1"
    (failure,) = suite.iter("failure")
    assert "ndcg@10" in failure.get("message")
    # The per-query values travelled in the JSON, so the paired tests ran (p = 1: no query changed).
    assert all(row.endswith("| 1 | 1 | ok |") or "regressed" in row
               for row in result.stdout.splitlines() if row.startswith("| sample"))
    missing = CliRunner().invoke(app, ["compare", str(tmp_path / "none.json")])
    assert missing.exit_code == 2 and "no such file" in missing.stderr


# --------------------------------------------------------------------------- resume


SLEEPY = """\
import os, time
from indexbench import hookimpl
from indexbench.registry import IndexerEntry


class Sleepy:
    name = "sleepy"

    def __init__(self, config):
        pass

    def build_retriever(self, problem, ctx):
        time.sleep(float(os.environ.get("SLEEPY_SECONDS", "0")))

        class Nothing:
            def search(self, queries, k):
                return [[] for _ in queries]
        return Nothing()


@hookimpl
def register_indexers(register):
    register(IndexerEntry(name="sleepy", factory=Sleepy))
"""


def _rows(path: Path) -> list[tuple[int, str, str]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT id, indexer, grid_id FROM records ORDER BY id").fetchall()
    conn.close()
    return rows


def test_a_grid_killed_with_sigkill_resumes_without_recomputing_finished_cells(tmp_path, user):
    site = tmp_path / "site"
    (site / "indexbench_sleepy").mkdir(parents=True)
    (site / "indexbench_sleepy" / "__init__.py").write_text(SLEEPY)
    info = site / "indexbench_sleepy-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: indexbench-sleepy\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[indexbench]\nsleepy = indexbench_sleepy\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
           "SLEEPY_SECONDS": "120"}
    store = user / "results.sqlite"
    command = [sys.executable, "-m", "indexbench", "run", "-i", "bm25,bm25:k1=0.9,sleepy,bm25:b=0.5",
               "-t", "document-retrieval", "-q", "--resume"]
    grid = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (store.exists() and len(_rows(store)) >= 2):
            time.sleep(0.2)
        assert len(_rows(store)) == 2, "the first two cells did not finish in time"
        time.sleep(0.5)  # well inside the sleepy cell
        grid.send_signal(signal.SIGKILL)
    finally:
        grid.wait(timeout=30)
    before = _rows(store)
    assert [r[1] for r in before] == ["bm25", "bm25:k1=0.9"]
    env["SLEEPY_SECONDS"] = "0"
    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    after = _rows(store)
    assert after[:2] == before  # the finished cells were not recomputed (no new rows for them)
    assert [r[1] for r in after] == ["bm25", "bm25:k1=0.9", "sleepy", "bm25:b=0.5"]
    assert len({r[2] for r in after}) == 1  # one grid, each cell once
    assert "2 finished cell(s) reused" in resumed.stderr
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and _rows(store) == after and "4 finished cell(s) reused" in again.stderr


def test_resume_reuses_skipped_cells_and_runs_failed_ones_again(tmp_path):
    store = ResultStore(tmp_path / "r.sqlite")
    grid = dict(indexers=["bm25"], tasks=["product-search", "id-quality"], datasets=["sample"],
                cache_dir=tmp_path / "cache", store=store, device="cpu")
    first = run_grid(**grid)
    assert [r.status for r in first] == ["ok", "skipped"]
    again = run_grid(**grid, resume=True)
    assert again.reused == 2 and len(store.records(latest=False)) == 2  # the skip is not filed twice
    # An error is never reused: the cell runs again and its new record is filed.
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE records SET status = 'error' WHERE task = 'id-quality'")
    conn.close()
    third = run_grid(**grid, resume=True)
    assert third.reused == 1 and [r.status for r in third] == ["ok", "skipped"]
    assert len(store.records(latest=False)) == 3


def test_every_shipped_grid_file_names_real_indexers_options_and_tasks():
    from indexbench.registry import get_registry
    from indexbench.runner import plan_grid

    grids = sorted((Path(__file__).parents[1] / "benchmarks" / "grids").glob("*.toml"))
    assert any(g.name == "ci.toml" for g in grids)
    for path in grids:
        grid = load_grid(path)
        plan_grid(grid.indexers, grid.tasks or ["id-quality"], [], get_registry())  # raises on a bad name


def test_verify_judges_present_references_and_skips_absent_data(tmp_path, user):
    from indexbench.references import Reference, judge, load_references, verify

    bm25 = run_grid(["bm25"], ["document-retrieval"], ["sample"], store=False, use_cache=False, device="cpu")[0]
    ours = bm25.metrics["ndcg@10"]
    refs = _write(tmp_path / "refs.toml", f"""
[[reference]]
name = "bm25 on the sample data"
indexer = "bm25"
task = "document-retrieval"
dataset = "sample"
metric = "ndcg@10"
value = {ours + 0.015}
tolerance = 0.01

[[reference]]
name = "BM25 on SciFact (BEIR)"
indexer = "bm25"
task = "document-retrieval"
dataset = "scifact"
metric = "ndcg@10"
value = 0.665
tolerance = 0.035
""")
    verdicts = verify(load_references(refs), data_dir=tmp_path / "no-data", store=False, use_cache=False,
                      device="cpu")
    assert [v.status for v in verdicts] == ["near", "skipped"]
    assert verdicts[0].ours == pytest.approx(ours) and "scifact" in verdicts[1].reason
    ref = Reference("r", "bm25", "document-retrieval", "sample", "ndcg@10", 0.5, 0.01)
    assert [judge(ref, x) for x in (0.505, 0.49, 0.485, 0.47)] == ["ok", "ok", "near", "fail"]
    floor = Reference("r", "sasrec", "recommendation", "sample", "ndcg@10", 0.5, 0.01, check="at-least")
    assert [judge(floor, x) for x in (0.7, 0.49, 0.485, 0.47)] == ["ok", "ok", "near", "fail"]
    beside = Reference("r", "hc", "id-quality", "sample", "ami_l2", 0.5, 0.0, check="beside")
    assert judge(beside, 0.1) == "beside"
    bad_check = _write(tmp_path / "check.toml", refs.read_text().replace('tolerance = 0.01', 'tolerance = 0.01\ncheck = "roughly"'))
    with pytest.raises(ConfigError, match="reference 1: check must be one of within, at-least, beside"):
        load_references(bad_check)
    bad = _write(tmp_path / "bad.toml", '[[reference]]\nname = "x"\n')
    with pytest.raises(ConfigError, match="reference 1: missing key 'indexer'"):
        load_references(bad)
    from indexbench.references import shipped_references

    assert (Path(__file__).parents[1] / "benchmarks" / "references.toml").resolve() == shipped_references().resolve()
    shipped = load_references(shipped_references())
    assert {(r.indexer, r.dataset, r.value) for r in shipped} >= {("bm25", "scifact", 0.665),
                                                                   ("dual-encoder", "scifact", 0.645)}
    tiger_beauty = {r.metric: r.value for r in shipped
                    if (r.indexer, r.dataset) == ("rqvae:preset=tiger", "amazon-beauty:category_text=true")}
    assert tiger_beauty == {"recall@5": 0.0454, "ndcg@5": 0.0321, "recall@10": 0.0648, "ndcg@10": 0.0384}
    from indexbench.registry import get_registry
    from indexbench.specs import IndexerSpec

    installed = set(get_registry().indexers)
    for r in shipped:  # every row names an installed indexer or one published only for comparison
        assert IndexerSpec.parse(r.indexer).name in installed or r.indexer in {"bert4rec", "p5"}, r
    assert {r.device for r in shipped if r.indexer.startswith("rqvae:preset=tiger")} == {"gpu"}
    assert {r.check for r in shipped if r.indexer == "sasrec"} == {"at-least"}


def test_verify_runs_each_cell_once_and_skips_methods_it_does_not_implement(tmp_path, monkeypatch):
    from indexbench import runner
    from indexbench.references import load_references, verify

    calls = []
    real = runner.run_grid
    monkeypatch.setattr(runner, "run_grid", lambda *a, **k: calls.append(a) or real(*a, **k))
    refs = _write(tmp_path / "refs.toml", "".join(f"""
[[reference]]
name = "{indexer} {metric}"
indexer = "{indexer}"
task = "recommendation"
dataset = "sample"
metric = "{metric}"
value = 0.01
tolerance = 0.5
""" for indexer in ("most-popular", "bert4rec") for metric in ("recall@10", "ndcg@10")) + """
[[reference]]
name = "most-popular at a budget only a GPU finishes"
indexer = "most-popular"
task = "recommendation"
dataset = "sample"
metric = "recall@10"
value = 0.01
tolerance = 0.5
device = "gpu"
""")
    verdicts = verify(load_references(refs), store=False, use_cache=False, device="cpu")
    assert [v.status for v in verdicts] == ["ok", "ok", "skipped", "skipped", "skipped"]
    assert verdicts[2].reason == "indexbench has no indexer 'bert4rec' (published for comparison)"
    assert verdicts[4].reason == "runs at the published budget, which needs a GPU (verify --device cuda)"
    verdicts = verdicts[:4]
    assert calls == [(["most-popular"], ["recommendation"], ["sample"])]
    from indexbench.references import paper_vs_ours

    (pivot,) = paper_vs_ours(verdicts)
    assert (pivot.dataset, pivot.task, pivot.metrics) == ("sample", "recommendation", ["recall@10", "ndcg@10"])
    assert [(name, indexer, list(cells)) for name, indexer, cells in pivot.rows] == [
        ("most-popular recall@10", "most-popular", ["recall@10"]), ("most-popular ndcg@10", "most-popular", ["ndcg@10"]),
        ("bert4rec recall@10", "bert4rec", ["recall@10"]), ("bert4rec ndcg@10", "bert4rec", ["ndcg@10"])]
    same_name = [dataclasses.replace(v, reference=dataclasses.replace(v.reference, name=v.reference.indexer))
                 for v in verdicts]
    (pivot,) = paper_vs_ours(same_name)
    assert [(name, list(cells)) for name, _, cells in pivot.rows] == [
        ("most-popular", ["recall@10", "ndcg@10"]), ("bert4rec", ["recall@10", "ndcg@10"])]
    assert pivot.rows[0][2]["ndcg@10"] is same_name[1]


def test_verify_outside_a_source_checkout_uses_the_shipped_references(tmp_path):
    import subprocess
    import sys

    env = {**os.environ, "INDEXBENCH_DATA": str(tmp_path / "no-data"), "INDEXBENCH_RESULTS": str(tmp_path / "r.sqlite"),
           "INDEXBENCH_CACHE": str(tmp_path / "cache"), "COLUMNS": "250"}
    done = subprocess.run([sys.executable, "-m", "indexbench", "verify", "-q"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "BM25 on SciFact" in done.stdout and "skipped" in done.stdout
    wide = subprocess.run([sys.executable, "-m", "indexbench", "verify", "-q", "--wide", "-d", "amazon-beauty"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert wide.returncode == 0, wide.stderr
    assert "amazon-beauty · recommendation: paper vs ours" in wide.stdout
    tiger_row = next(line for line in wide.stdout.splitlines() if "TIGER on Beauty" in line)
    assert "0.0454 / —" in tiger_row and "0.0384 / —" in tiger_row  # published, nothing of ours without data


def test_a_run_plan_takes_each_flag_over_the_grid_and_defaults_for_the_rest(tmp_path):
    from indexbench.cli.running import RunPlan

    grid = load_grid(_write(tmp_path / "g.toml", 'indexers = ["bm25"]\ndatasets = ["sample"]\nseeds = [3, 4]\n'
                                                 'device = "cpu"\nthreads = 2\n'))
    none = dict(indexer=None, task=None, dataset=None, seed=None, seeds=None, data_dir=None, device=None, threads=None)
    plan = RunPlan.merge(grid, **none)
    assert (plan.indexers, plan.datasets, plan.seeds, plan.device, plan.threads) == (["bm25"], ["sample"], [3, 4], "cpu", 2)
    assert "id-quality" in plan.tasks  # the file names no task: every task
    assert plan.from_grid == {"indexer": "indexers", "dataset": "datasets"}
    plan = RunPlan.merge(grid, **{**none, "indexer": ["dual-encoder"], "seed": 7, "threads": 1})
    assert (plan.indexers, plan.seeds, plan.threads) == (["dual-encoder"], [7], 1)
    assert plan.from_grid == {"dataset": "datasets"}
    bare = RunPlan.merge(None, **{**none, "indexer": ["bm25"]})
    assert (bare.datasets, bare.seeds, bare.device, bare.threads, bare.from_grid) == (["sample"], [0], "auto", None, {})
    with pytest.raises(ConfigError, match="no indexer given"):
        RunPlan.merge(None, **none)
    with pytest.raises(ConfigError, match="give --seed or --seeds, not both"):
        RunPlan.merge(grid, **{**none, "seed": 1, "seeds": "1,2"})
