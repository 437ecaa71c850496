"""Executors: the local one and Ray (a local cluster started by the test; skipped without ray)."""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from indexbench import hookimpl
from indexbench.cells import CellJob, CellResources
from indexbench.cli import app
from indexbench.errors import ConfigError
from indexbench.executors import LocalExecutor, make_executor
from indexbench.registry import IndexerEntry, load_registry
from indexbench.runner import run_grid
from indexbench.store import ResultStore

sys.path.insert(0, str(Path(__file__).parent / "example_plugin"))
import indexbench_example  # noqa: E402

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason='ray is not installed (pip install "indexbench[ray]")')

# The grid of issue #16's "done when" on the tiny backbone (with the default one the two runs take
# 8 minutes here; benchmarks/LOG.md records that run, equal cell for cell too).
GRID = ["bm25", "random-ids:backbone=tiny:max_steps=20", "hc:backbone=tiny:max_steps=20"]
TASKS = ["product-search", "recommendation", "id-quality"]


class SuddenDeath:
    """Kills the process that builds it, as the kernel's OOM killer would: no exception, no
    cleanup. Only ever run on a Ray worker."""

    name = "sudden-death"

    def __init__(self, config):
        pass

    def build_retriever(self, problem, ctx):
        os.kill(os.getpid(), signal.SIGKILL)


class SuddenDeathPlugin:
    @staticmethod
    @hookimpl
    def register_indexers(register):
        register(IndexerEntry(name="sudden-death", factory=SuddenDeath))


@pytest.fixture(scope="module")
def registry():
    return load_registry(extra_plugins=[indexbench_example, SuddenDeathPlugin])


def test_ray_only_flags_are_refused_with_the_local_executor():
    with pytest.raises(ConfigError, match="--max-parallel, --cell-gpus only apply to --executor ray"):
        make_executor("local", max_parallel=2, cell_gpus=1)
    with pytest.raises(ConfigError, match="unknown executor 'slurm'; valid executors: local, ray"):
        make_executor("slurm")
    assert isinstance(make_executor("local"), LocalExecutor)


def test_without_ray_the_ray_executor_is_one_line_saying_how_to_install_it(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    result = CliRunner().invoke(app, ["run", "-i", "bm25", "-t", "product-search", "--executor", "ray",
                                      "--store", str(tmp_path / "r.sqlite")])
    assert result.exit_code != 0
    assert 'needs Ray, which is not installed: pip install "indexbench[ray]"' in result.output
    assert not (tmp_path / "r.sqlite").exists()


def test_a_cell_asks_for_a_gpu_only_on_cuda_and_only_if_its_indexer_uses_the_device(registry):
    from indexbench.datasets.sample import load_sample
    from indexbench.runner import plan_grid

    cells = plan_grid(["bm25", "hc"], ["product-search"], [load_sample()], registry)

    def job(cell, device):
        return CellJob(0, cell, 0, None, device=device, versions={}, git_commit="", grid_id="")

    derived = CellResources()
    assert [derived.for_cell(job(c, "cuda"))["num_gpus"] for c in cells] == [0.0, 1.0]
    assert [derived.for_cell(job(c, "cpu"))["num_gpus"] for c in cells] == [0.0, 0.0]
    assert CellResources(cpus=4, gpus=0.5).for_cell(job(cells[0], "cpu")) == {"num_cpus": 4, "num_gpus": 0.5}


def _metrics(records):
    return {(r.indexer, r.task, r.dataset): (r.status, r.metrics) for r in records}


@needs_ray
def test_ray_gives_the_local_runs_metrics_cell_for_cell_and_stores_as_cells_finish(tmp_path):
    local = run_grid(GRID, TASKS, ["sample"], cache_dir=tmp_path / "local-cache", store=False, device="cpu")
    store = tmp_path / "ray.sqlite"
    # Through the CLI, with its own cache: nothing the local run computed is reused.
    result = CliRunner().invoke(app, [
        "run", "-i", ",".join(GRID), "-t", ",".join(TASKS), "--executor", "ray", "--max-parallel", "2",
        "--device", "cpu", "--store", str(store), "--cache-dir", str(tmp_path / "ray-cache"), "-q"])
    assert result.exit_code == 0, result.output
    on_ray = ResultStore(store).records()
    assert len(on_ray) == len(local) == 9
    assert all(r.status != "error" for r in on_ray), [(r.indexer, r.task, r.reason) for r in on_ray]
    assert _metrics(on_ray) == _metrics(local)
    assert len({r.grid_id for r in on_ray}) == 1
    # --resume with the Ray executor reuses every cell, the skipped one too: nothing is added
    again = CliRunner().invoke(app, [
        "run", "-i", ",".join(GRID), "-t", ",".join(TASKS), "--executor", "ray", "--resume",
        "--device", "cpu", "--store", str(store), "--cache-dir", str(tmp_path / "ray-cache"), "-q"])
    assert again.exit_code == 0, again.output
    assert len(ResultStore(store).records(latest=False)) == 9


@needs_ray
def test_a_worker_killed_mid_cell_is_an_error_record_and_the_grid_goes_on(registry, tmp_path):
    from indexbench.ray_executor import RayExecutor

    store = ResultStore(tmp_path / "r.sqlite")
    records = run_grid(["sudden-death", "bm25", "word-overlap"], ["product-search"], ["sample"],
                       cache_dir=tmp_path / "cache", store=store, registry=registry, device="cpu",
                       executor=RayExecutor(num_cpus=2))
    status = {r.indexer: (r.status, r.reason) for r in records}
    assert status["bm25"][0] == status["word-overlap"][0] == "ok"
    assert status["sudden-death"][0] == "error"
    assert status["sudden-death"][1].startswith("its Ray worker died (")
    assert {r.indexer: r.status for r in store.records()} == {k: v[0] for k, v in status.items()}


@needs_ray
def test_ray_refuses_a_cell_the_cluster_can_never_run_and_runs_the_rest(registry, tmp_path):
    from indexbench.ray_executor import RayExecutor

    records = run_grid(["bm25", "word-overlap"], ["product-search"], ["sample"], store=False, device="cpu",
                       registry=registry,
                       cache_dir=tmp_path / "cache",
                       executor=RayExecutor(num_cpus=2, resources=CellResources(cpus=3)))
    assert [(r.status, r.reason) for r in records] == [
        ("error", "cannot be scheduled: it needs 3 CPU, the cluster has 2")] * 2


@needs_ray
def test_ctrl_c_cancels_the_queue_keeps_what_finished_and_stops_the_cluster(registry, tmp_path):
    import ray

    from indexbench.protocols import SilentProgress
    from indexbench.ray_executor import RayExecutor

    class InterruptAfterFirstCell(SilentProgress):
        def log(self, message, level="info"):
            if level == "ok":
                raise KeyboardInterrupt

    store = ResultStore(tmp_path / "r.sqlite")
    with pytest.raises(KeyboardInterrupt):
        run_grid(["bm25", "word-overlap", "title-letters"], ["product-search", "id-quality"], ["sample"],
                 store=store, device="cpu", cache_dir=tmp_path / "cache", progress=InterruptAfterFirstCell(),
                 registry=registry,
                 executor=RayExecutor(num_cpus=2, max_parallel=1))
    assert [r.status for r in store.records()] == ["ok"]  # stored before it was reported
    assert not ray.is_initialized()


@needs_ray
@pytest.mark.parametrize("address, message", [
    ("127.0.0.1:1", "--ray-address 127.0.0.1:1: nothing answers there"),
    ("nonsense", "--ray-address nonsense: expected HOST:PORT, ray://HOST:PORT or auto"),
])
def test_a_ray_address_nobody_answers_at_fails_at_once_and_writes_nothing(tmp_path, address, message):
    result = CliRunner().invoke(app, ["run", "-i", "bm25", "-t", "product-search", "--executor", "ray",
                                      "--ray-address", address, "--store", str(tmp_path / "r.sqlite")])
    assert result.exit_code == 2 and message in result.output
    assert not (tmp_path / "r.sqlite").exists()
