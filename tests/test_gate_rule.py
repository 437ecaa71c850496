"""The CI gate's machine-proof pieces (issue #27): the spread rule of `indexbench compare`,
pinned threads, per-cell environment differences, and `indexbench baseline`."""

from __future__ import annotations

import dataclasses
import json
import re
import statistics
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from indexbench.cli import app
from indexbench.compare import compare, environment, rows, summary
from indexbench.errors import ConfigError
from indexbench.gridfile import Tolerance, Tolerances, load_grid
from indexbench.runner import run_grid
from indexbench.store import RunRecord

SPREAD = Tolerances(default=Tolerance(absolute=0.001), rule="spread", k=4.0)


def _rec(metrics: dict[str, float], seed: int, *, indexer="a", per_query=None, versions=None, details=None,
         task="document-retrieval") -> RunRecord:
    return RunRecord(indexer=indexer, task=task, dataset="sample", status="ok", seed=seed, metrics=metrics,
                     per_query=per_query or {}, versions=versions or {}, details=details or {})


def _base(values: list[float], name: str = "ndcg@10") -> list[RunRecord]:
    return [_rec({name: v}, seed) for seed, v in enumerate(values)]


def test_a_seed_varying_metric_fails_beyond_k_times_the_noise_of_the_difference():
    values = [0.50, 0.52, 0.48, 0.51, 0.49]  # sd 0.0158
    sd = statistics.stdev(values)
    noise = sd * (1 / 5 + 1 / 1) ** 0.5
    edge = 0.50 - 4.0 * noise
    inside = compare(_base(values), [_rec({"ndcg@10": edge + 0.002}, 0)], SPREAD)
    (cell,) = inside.cells
    (check,) = cell.metrics
    assert cell.status == "ok" and check.rule == "spread"
    assert check.noise == pytest.approx(noise) and check.allowed == pytest.approx(4.0 * noise)
    assert check.used == pytest.approx((0.50 - edge - 0.002) / (4.0 * noise))
    assert cell.label == "sample · document-retrieval · a · seeds 0,1,2,3,4 → 0"
    outside = compare(_base(values), [_rec({"ndcg@10": edge - 0.002}, 0)], SPREAD)
    assert [c.status for c in outside.failed] == ["regressed"]
    assert "k × noise" in outside.failed[0].reason
    # Three current seeds: their mean is judged, with the smaller noise of a mean of three, so a
    # drop that one seed may show by chance fails at three.
    drop = 0.50 - 3.5 * noise
    assert not compare(_base(values), [_rec({"ndcg@10": drop}, 0)], SPREAD).failed
    three = compare(_base(values), [_rec({"ndcg@10": drop}, s) for s in range(3)], SPREAD)
    assert three.cells[0].metrics[0].noise == pytest.approx(sd * (1 / 5 + 1 / 3) ** 0.5)
    assert three.failed
    # A gain far beyond the tolerance passes, shown as improved.
    better = compare(_base(values), [_rec({"ndcg@10": 0.70}, 0)], SPREAD)
    assert not better.failed and better.cells[0].metrics[0].status == "improved"


def _queries(values: list[float]) -> dict[str, dict[str, float]]:
    return {f"q{i}": {"recall@1": v} for i, v in enumerate(values)}


def test_a_seed_constant_metric_is_deterministic_and_keeps_the_tight_floor_with_p_values_shown():
    hits = [1.0] * 30 + [0.0] * 30
    base = [_rec({"recall@1": 0.5}, s, per_query=_queries(hits)) for s in range(5)]
    same = compare(base, [_rec({"recall@1": 0.5}, 0, per_query=_queries(hits))], SPREAD)
    (check,) = same.cells[0].metrics
    assert check.rule == "fixed" and check.allowed == 0.001 and check.noise == 0.0 and not same.failed
    assert (check.p_ttest, check.p_wilcoxon, check.n_queries) == (1.0, 1.0, 60)
    # Two queries lost: the drop (0.033) is far beyond the floor, so it fails although a paired
    # test over 60 queries cannot call it significant.
    two = [0.0, 0.0] + hits[2:]
    lost = compare(base, [_rec({"recall@1": 28 / 60}, 0, per_query=_queries(two))], SPREAD)
    (check,) = lost.cells[0].metrics
    assert lost.failed and check.p_ttest > 0.1
    assert rows(lost)[0][5] == "±0.0010 fixed"
    # A last-digit change passes.
    assert not compare(base, [_rec({"recall@1": 0.4995}, 0)], SPREAD).failed


def test_in_a_seed_dependent_cell_a_metric_equal_at_every_seed_may_still_move_by_one_query():
    hits = [1.0] * 6 + [0.0] * 6
    base = [_rec({"recall@10": 0.5, "ndcg@5": 0.40 + 0.01 * s}, s, per_query=_queries(hits)) for s in range(5)]
    # recall@10 was 0.5 at every seed, but the cell is trained (ndcg@5 varies): one query of 12
    # (1/12) is noise, two are not.
    one = compare(base, [_rec({"recall@10": 0.5 - 1 / 12, "ndcg@5": 0.42}, 0, per_query=_queries(hits))], SPREAD)
    check = one.cells[0].metrics[0]
    assert check.rule == "spread" and check.allowed == pytest.approx(1 / 12) and not one.failed
    two = compare(base, [_rec({"recall@10": 0.5 - 2 / 12, "ndcg@5": 0.42}, 0, per_query=_queries(hits))], SPREAD)
    assert two.failed and "recall@10" in two.failed[0].reason


def test_a_rise_is_the_regression_of_a_lower_is_better_metric():
    base = [_rec({"collision_rate": v, "ami_l2": 0.6}, s, task="id-quality") for s, v in
            enumerate([0.30, 0.31, 0.29, 0.30, 0.30])]
    fewer = compare(base, [_rec({"collision_rate": 0.10, "ami_l2": 0.6}, 0, task="id-quality")], SPREAD)
    assert not fewer.failed and fewer.cells[0].metrics[0].status == "improved"
    more = compare(base, [_rec({"collision_rate": 0.50, "ami_l2": 0.6}, 0, task="id-quality")], SPREAD)
    assert more.failed and more.cells[0].metrics[0].lower_is_better
    # The per-seed rule knows the direction too.
    assert not compare(base[:1], [_rec({"collision_rate": 0.10, "ami_l2": 0.6}, 0, task="id-quality")]).failed


def test_compare_names_each_cells_environment_differences_and_how_close_a_pass_came():
    old = {"cpu": "x86_64 avx512", "threads": "2", "torch": "2.13.0", "plugin:a": "1"}
    base = [_rec({"ndcg@10": v}, s, versions=old, details={"indexer": {"precision": "bf16",
                                                                        "options": {"precision": "auto"}}})
            for s, v in enumerate([0.50, 0.52, 0.48, 0.51, 0.49])]
    new = {**old, "cpu": "x86_64 avx2", "threads": "1"}
    assert environment(base[0]) == {"cpu": "x86_64 avx512", "threads": "2", "torch": "2.13.0", "precision": "bf16"}
    current = [_rec({"ndcg@10": 0.40}, 0, versions=new, details={"indexer": {"precision": "fp32"}})]
    failed = compare(base, current, SPREAD)
    assert failed.cells[0].environment == ["cpu: x86_64 avx512 → x86_64 avx2", "precision: bf16 → fp32",
                                           "threads: 2 → 1"]
    text = summary(failed)
    assert "[environment differs: cpu: x86_64 avx512 → x86_64 avx2; precision: bf16 → fp32; threads: 2 → 1]" in text
    same = compare(base, [_rec({"ndcg@10": 0.47}, 0, versions=old,
                               details={"indexer": {"precision": "bf16"}})], SPREAD)
    assert not same.failed and same.cells[0].environment == []
    text = summary(same)
    used = same.cells[0].metrics[0].used
    assert f"closest to failing: sample · document-retrieval · a · seeds 0,1,2,3,4 → 0, ndcg@10 used {used:.0%}" in text
    assert rows(same)[0][6] == f"{used:.0%}"


def test_a_baseline_cell_missing_or_failing_now_fails_the_spread_rule_too():
    base = _base([0.5, 0.52]) + [_rec({"ndcg@10": 0.3}, s, indexer="b") for s in range(2)]
    broken = RunRecord(indexer="b", task="document-retrieval", dataset="sample", status="error", seed=0,
                       reason="RuntimeError: boom")
    result = compare(base, [_rec({"ndcg@10": 0.5}, 0), broken, _rec({"ndcg@10": 1.0}, 0, indexer="c")], SPREAD)
    assert {c.key[2]: c.status for c in result.cells} == {"a": "ok", "b": "error", "c": "new"}
    assert compare(base, [_rec({"ndcg@10": 0.5}, 0)], SPREAD).failed[0].status == "missing"
    # A cell skipped on both sides is one skipped row, not also a new one.
    skip = [RunRecord(indexer="s", task="id-quality", dataset="sample", status="skipped", seed=s, reason="no IDs")
            for s in range(2)]
    both = compare(skip, skip[:1], SPREAD)
    assert [(c.key[2], c.status) for c in both.cells] == [("s", "skipped")]


def test_grid_files_take_threads_baseline_seeds_and_the_spread_rule(tmp_path):
    path = tmp_path / "g.toml"
    path.write_text('indexers = ["bm25"]\nseeds = [0]\nbaseline_seeds = [0, 1, 2]\nthreads = 2\n'
                    '[tolerance]\nrule = "spread"\nk = 5\n')
    grid = load_grid(path)
    assert grid.baseline_seeds == [0, 1, 2] and grid.threads == 2
    assert (grid.tolerances.rule, grid.tolerances.k) == ("spread", 5.0)
    for bad, message in (("threads = 0\n", "'threads' must be an integer >= 1"),
                         ('baseline_seeds = "0"\n', "'baseline_seeds' must be a non-empty list of integers"),
                         ('[tolerance]\nrule = "mean"\n', "'tolerance.rule' must be one of fixed, spread"),
                         ("[tolerance]\nk = -1\n", "'tolerance.k' must be a number >= 0")):
        path.write_text('indexers = ["bm25"]\n' + bad)
        with pytest.raises(ConfigError, match=message):
            load_grid(path)


def test_pinned_threads_hold_for_torch_and_every_torch_cell_records_its_thread_count(tmp_path, monkeypatch):
    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    before = torch.get_num_threads()
    try:
        records = run_grid(["random-ids:backbone=tiny:max_steps=2:num_beams=2"], ["id-quality"], ["sample"],
                           store=False, use_cache=False, device="cpu", threads=1)
        assert records[0].status == "ok" and records[0].versions["threads"] == "1"
        assert torch.get_num_threads() == 1
        # --resume takes a stored cell only if it ran at the pinned thread count.
        store = tmp_path / "r.sqlite"
        spec = ["random-ids:backbone=tiny:max_steps=2:num_beams=2"]
        run_grid(spec, ["id-quality"], store=store, use_cache=False, device="cpu", threads=1)
        assert run_grid(spec, ["id-quality"], store=store, use_cache=False, device="cpu", threads=1,
                        resume=True).reused == 1
        again = run_grid(spec, ["id-quality"], store=store, use_cache=False, device="cpu", threads=2, resume=True)
        assert again.reused == 0 and again[0].versions["threads"] == "2"
        with pytest.raises(ConfigError, match="threads must be an integer >= 1"):
            run_grid(["bm25"], ["product-search"], store=False, threads=0)
    finally:
        torch.set_num_threads(before)


def test_indexbench_baseline_records_every_cell_at_the_baseline_seeds_on_a_private_store(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("INDEXBENCH_RESULTS", str(home / "results.sqlite"))
    monkeypatch.setenv("INDEXBENCH_CACHE", str(home / "cache"))
    grid = tmp_path / "g.toml"
    grid.write_text('indexers = ["bm25"]\ntasks = ["product-search", "id-quality"]\nseeds = [0]\n'
                    'baseline_seeds = [0, 1]\n[tolerance]\nrule = "spread"\n')
    out = tmp_path / "base.json"
    result = CliRunner().invoke(app, ["baseline", "--grid", str(grid), "--out", str(out), "-q"])
    assert result.exit_code == 0, result.output
    records = json.loads(out.read_text())
    assert sorted((r["task"], r["seed"]) for r in records) == [("id-quality", 0), ("id-quality", 1),
                                                               ("product-search", 0), ("product-search", 1)]
    assert not home.exists()  # neither the user's store nor their cache was touched
    # The gate then passes a one-seed run of the same grid against it.
    run = tmp_path / "run.json"
    assert CliRunner().invoke(app, ["run", "--grid", str(grid), "--json", str(run), "--store",
                                    str(tmp_path / "r.sqlite"), "-q"]).exit_code == 0
    gate = CliRunner().invoke(app, ["compare", str(out), str(run), "--grid", str(grid), "--format", "markdown"])
    assert gate.exit_code == 0, gate.output
    assert "seeds 0,1 → 0" in gate.stdout and "±0.0010 fixed" in gate.stdout
    # A cell that fails: exit 1, nothing written.
    grid.write_text('indexers = ["bm25", "hc:backbone=/no/such/model"]\ntasks = ["product-search"]\n'
                    'baseline_seeds = [0, 1]\n')
    failing = tmp_path / "failing.json"
    result = CliRunner().invoke(app, ["baseline", "--grid", str(grid), "--out", str(failing), "-q"])
    assert result.exit_code in (1, 2) and not failing.exists()


def test_the_committed_baseline_holds_every_cell_of_the_ci_grid_at_every_baseline_seed_as_pinned():
    from indexbench.registry import get_registry
    from indexbench.specs import IndexerSpec
    from indexbench.store import read_records

    root = Path(__file__).parents[1]
    grid = load_grid(root / "benchmarks" / "grids" / "ci.toml")
    records = read_records(root / "benchmarks" / "baselines" / "ci.json")
    tasks = grid.tasks or sorted(get_registry().tasks)
    cells = {(r.dataset, r.task, r.indexer, r.seed) for r in records}
    labels = [IndexerSpec.parse(i).label for i in grid.indexers]
    expected = {(d, t, i, s) for d in grid.datasets for t in tasks for i in labels for s in grid.baseline_seeds}
    assert cells == expected and len(records) == len(expected)
    assert grid.tolerances.rule == "spread" and grid.threads and grid.device == "cpu"
    for record in records:
        assert record.status != "error", (record.indexer, record.task, record.reason)
        if record.status == "ok" and "threads" in record.versions:
            assert record.versions["threads"] == str(grid.threads)
        # What `auto` would resolve by the machine is pinned: every precision resolved to fp32.
        assert set(environment(record).get(k, "fp32") for k in ("precision", "encoder_precision")) == {"fp32"}


def test_the_ci_grid_pins_every_precision_an_amx_cpu_would_resolve_to_bf16(monkeypatch):
    # The committed baseline was recorded without AMX, where `auto` is fp32 anyway, so the records
    # alone cannot show a cell that would switch to bf16 on a Xeon: read the grid's options instead.
    import indexbench.encoders.precision
    from indexbench.encoders import PRECISIONS, resolve_precision
    from indexbench.options import rules_of
    from indexbench.registry import get_registry
    from indexbench.specs import IndexerSpec

    monkeypatch.setattr(indexbench.encoders.precision, "cpu_has_amx_bf16", lambda: True)
    grid = load_grid(Path(__file__).parents[1] / "benchmarks" / "grids" / "ci.toml")
    registry = get_registry()
    checked = []
    for text in grid.indexers:
        spec = IndexerSpec.parse(text)
        entry = registry.indexers[spec.name]
        config = spec.build_config(entry)
        for field in dataclasses.fields(config):
            if tuple(rules_of(field).get("choices", ())) != PRECISIONS:
                continue
            if field.name.startswith("encoder_") and not getattr(entry.factory, "uses_embeddings", True):
                continue  # nothing is embedded (random-ids)
            checked.append((spec.name, field.name))
            assert resolve_precision(getattr(config, field.name), grid.device) == "fp32", (text, field.name)
    assert {name for name, _ in checked} == {"dual-encoder", "hc", "rqvae"}


def _benchmark_module(name: str, imports: tuple[str, ...] = ()):
    """A script of benchmarks/ as a module; ``imports``: the scripts of that folder it imports."""
    import importlib.util

    found = {dep: _benchmark_module(dep) for dep in imports}
    spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[1] / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.update({**found, name: module})  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    finally:
        for loaded in (*found, name):
            del sys.modules[loaded]
    return module


def _gate_check():
    return _benchmark_module("gate_check")


def test_ci_and_the_default_variants_leave_openblas_kernel_variables_as_the_machine_sets_them():
    gate_check = _gate_check()
    ci_script = (Path(__file__).parents[1] / ".ci" / "run").read_text()
    in_ci = [name for line in ci_script.splitlines() if "gate_check.py variants" in line
             for name in re.search(r"--variants (\S+)", line).group(1).split(",")]
    assert in_ci == ["avx2-machine", "mkl-compatible"]
    for name in gate_check.DEFAULT_VARIANTS:
        assert not set(gate_check.VARIANTS[name]) & set(gate_check.OPENBLAS_VARIABLES), name
    # A benchmark-only variant that sets OpenBLAS's kernel refuses a machine that sets it itself.
    assert "OPENBLAS_CORETYPE" in gate_check.VARIANTS["avx2-machine-openblas"]
    assert "never overrides" in gate_check.why_not_runnable("avx2-machine-openblas", {"OPENBLAS_L2_SIZE": "1"})
    assert gate_check.why_not_runnable("avx2-machine-openblas", {}) is None
    assert gate_check.why_not_runnable("avx2-machine", {"OPENBLAS_CORETYPE": "Haswell"}) is None


def test_avx512_variants_are_refused_where_the_recorded_cpu_has_no_avx512(monkeypatch):
    gate_check = _gate_check()
    # The same reading of the CPU the records carry (`versions.cpu`), so the two cannot disagree.
    monkeypatch.setattr(gate_check, "cpu_isa", lambda: "x86_64 avx2")
    assert gate_check.why_not_runnable("aten-avx512", {}) == "this CPU has no AVX-512"
    assert gate_check.why_not_runnable("avx512-xeon", {}) == "this CPU has no AVX-512"
    assert gate_check.why_not_runnable("aten-avx2", {}) is None
    monkeypatch.setattr(gate_check, "cpu_isa", lambda: "x86_64 avx512 amx")
    assert gate_check.why_not_runnable("aten-avx512", {}) is None


def test_emulated_cpu_variants_run_the_cells_under_qemu_and_say_why_not_where_it_is_missing(tmp_path, monkeypatch):
    gate_check = _gate_check()
    emulated = [name for name in gate_check.VARIANTS if gate_check.QEMU_CPU in gate_check.VARIANTS[name]]
    assert emulated == ["qemu-haswell", "qemu-epyc-rome"]
    # 30 to 110 times slower than the machine itself: benchmarks only, never the default list.
    assert not set(emulated) & set(gate_check.DEFAULT_VARIANTS)
    monkeypatch.setattr(gate_check.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(gate_check.shutil, "which", lambda name: None)
    assert "apt-get install qemu-user" in gate_check.why_not_runnable("qemu-haswell", {})
    assert gate_check.why_not_runnable("omp1", {}) is None
    monkeypatch.setattr(gate_check.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(gate_check, "qemu_version", lambda: (7, 2))  # crashes in numpy's AVX2 argsort
    assert "older than 8.0" in gate_check.why_not_runnable("qemu-haswell", {})
    monkeypatch.setattr(gate_check, "qemu_version", lambda: (10, 0))
    assert gate_check.why_not_runnable("qemu-haswell", {}) is None
    monkeypatch.setattr(gate_check.platform, "machine", lambda: "aarch64")
    assert "x86-64" in gate_check.why_not_runnable("qemu-epyc-rome", {})

    # The child runs under the emulator, the CPU model in its environment (which QEMU reads and
    # passes on, so the records name it); any other variant runs the interpreter itself.
    seen = []

    def fake_run(command, env, **kwargs):
        seen.append((command, env))
        (Path(command[command.index("--json") + 1])).write_text("[]")
        return gate_check.subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(gate_check.subprocess, "run", fake_run)
    grid = load_grid(Path(__file__).parents[1] / "benchmarks" / "grids" / "ci.toml")
    gate_check.run_cells(grid, ["bm25"], ["document-retrieval"], tmp_path / "q", gate_check.VARIANTS["qemu-haswell"])
    gate_check.run_cells(grid, ["bm25"], ["document-retrieval"], tmp_path / "n", gate_check.VARIANTS["omp1"])
    (emulated_command, emulated_env), (native_command, _) = seen
    assert emulated_command[:2] == ["/usr/bin/qemu-x86_64", sys.executable]
    assert emulated_env["QEMU_CPU"] == "Haswell-v4"
    assert native_command[0] == sys.executable
    assert emulated_command[1:] == [part.replace(str(tmp_path / "n"), str(tmp_path / "q")) for part in native_command]


def test_emulator_fidelity_counts_ulps_from_the_correct_sqrt_and_reads_its_child(monkeypatch, capsys):
    import numpy as np

    fidelity = _benchmark_module("emulator_fidelity", imports=("gate_check",))
    x = np.array([0.0, 1e-30, 0.3, 2.0, 3.14159, 7.5e4, 3e38], dtype=np.float32)
    exact = np.sqrt(x.astype(np.float64)).astype(np.float32)
    assert fidelity.ulps_off_correct_sqrt(x, exact).tolist() == [0] * 7
    assert fidelity.ulps_off_correct_sqrt(x, np.sqrt(x)).tolist() == [0] * 7  # numpy's sqrt is IEEE
    moved = exact.copy()
    moved[2] = np.nextafter(moved[2], np.float32(1))  # one step up
    moved[4] = np.nextafter(np.nextafter(moved[4], np.float32(0)), np.float32(0))  # two steps down
    assert fidelity.ulps_off_correct_sqrt(x, moved).tolist() == [0, 0, 1, 0, 2, 0, 0]

    # The parent reads back what a child prints (here the native child, through a fake subprocess).
    assert fidelity.main(["--child"]) == 0
    printed = capsys.readouterr().out
    monkeypatch.setattr(fidelity.subprocess, "run",
                        lambda command, **kwargs: fidelity.subprocess.CompletedProcess(command, 0, printed, ""))
    hashes, sqrt = fidelity.run_child({})
    assert {"matmul", "sqrt", "cdist"} <= set(hashes) and all(len(h) == 12 for h in hashes.values())
    assert sqrt["elements"] == 256 * 768 and 0 <= sqrt["off"] <= sqrt["elements"] and sqrt["max_ulps"] <= 1
