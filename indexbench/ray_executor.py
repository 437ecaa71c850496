"""Grid cells as Ray tasks (``indexbench run --executor ray``; ``pip install "indexbench[ray]"``).

The driver (the process that called `run_grid`) plans and checks the grid as for a local run,
then submits each cell as one Ray task and keeps each record as it arrives: the store is
written only by the driver, so a cluster needs no shared store, only the plugins installed on
its nodes and, to share artifacts, a cache directory they all see (``--cache-dir`` on shared
storage). Each dataset is shipped once through Ray's object store, not once per cell.

A task is never retried: a worker that dies (killed, out of memory) turns its cell into an
``error`` record that says so, and the other cells go on. Ctrl-C cancels every queued and
running cell and keeps nothing of them.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .cells import CellJob, CellResources, Keep
from .errors import ConfigError, IndexbenchError

if TYPE_CHECKING:
    from .protocols import Progress, ProgressTask
    from .store import RunRecord

INSTALL_HINT = 'pip install "indexbench[ray]"'


class RayExecutor:
    """Runs cells on the Ray cluster at ``address``, or on a local one started in this process
    (and stopped when the grid ends) when ``address`` is None. At most ``max_parallel`` cells
    are in flight at once (None: as many as the cluster's resources admit)."""

    def __init__(self, address: str | None = None, max_parallel: int | None = None,
                 resources: CellResources | None = None, num_cpus: int | None = None):
        if importlib.util.find_spec("ray") is None:
            raise ConfigError(f"--executor ray needs Ray, which is not installed: {INSTALL_HINT}")
        self.address = address
        self.max_parallel = max_parallel
        self.resources = resources or CellResources()
        self.num_cpus = num_cpus  # of a local cluster; None: every core of this machine
        self._started = False  # whether this executor started the cluster (and so stops it)

    # ----------------------------------------------------------------------------- cluster

    def _connect(self):
        import ray

        if ray.is_initialized():
            return ray
        options: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
        if self.address is not None:
            _check_reachable(self.address)
            try:
                ray.init(address=self.address, **options)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise IndexbenchError(f"--ray-address {self.address}: cannot connect ({exc})") from None
        else:
            # A local cluster's workers see the driver's import path, so plugins registered in
            # code (a notebook's, a test's) resolve there as they do here.
            path = os.pathsep.join(p for p in sys.path if p)
            ray.init(num_cpus=self.num_cpus, include_dashboard=False,
                     runtime_env={"env_vars": {"PYTHONPATH": path}}, **options)
        self._started = True
        return ray

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    def resolve_device(self, device: str) -> str:
        """Where the cells run is the cluster, not this process: ``auto`` is cuda when the
        cluster has a GPU, and ``cuda`` needs one there."""
        if device not in {"auto", "cpu", "cuda"}:
            raise IndexbenchError(f"unknown device {device!r}; valid devices: auto, cpu, cuda")
        if device == "cpu":
            return "cpu"
        gpus = self._connect().cluster_resources().get("GPU", 0)
        if device == "cuda" and not gpus:
            raise IndexbenchError("--device cuda was asked for, but the Ray cluster has no GPU")
        return "cuda" if gpus else "cpu"

    # ----------------------------------------------------------------------------- cells

    def run(self, jobs: Sequence[CellJob], *, keep: Keep, progress: Progress, grid_bar: ProgressTask,
            show_seed: bool) -> None:
        if not jobs:
            return
        ray = self._connect()
        try:
            self._run(ray, list(jobs), keep, progress, grid_bar)
        finally:
            self.close()

    def _run(self, ray, queue: list[CellJob], keep: Keep, progress: Progress, grid_bar: ProgressTask) -> None:
        remote = ray.remote(_run_on_worker)
        datasets: dict[int, Any] = {}  # id(dataset) -> its object ref, put once
        cluster = ray.cluster_resources()  # the whole cluster's, not what is free now
        running: dict[Any, CellJob] = {}
        try:
            while queue or running:
                while queue and (self.max_parallel is None or len(running) < self.max_parallel):
                    job = queue.pop(0)
                    wanted = self.resources.for_cell(job)
                    short = _shortfall(wanted, cluster)
                    if short:
                        keep(job, _failed(job, f"cannot be scheduled: it needs {short}"))
                        grid_bar.advance()
                        continue
                    dataset = job.cell.dataset
                    if id(dataset) not in datasets:
                        datasets[id(dataset)] = ray.put(dataset)
                    shipped = dataclasses.replace(job, cell=dataclasses.replace(job.cell, dataset=None))
                    ref = remote.options(**wanted, max_retries=0, name=job.label).remote(
                        shipped, datasets[id(dataset)])
                    running[ref] = job
                if not running:
                    continue
                grid_bar.set_status(f"{len(running)} running, {len(queue)} queued on Ray")
                ready, _ = ray.wait(list(running), num_returns=1)
                for ref in ready:
                    job = running.pop(ref)
                    keep(job, _collect(ray, ref, job))
                    grid_bar.advance()
        except KeyboardInterrupt:
            for ref in running:
                ray.cancel(ref, force=True)
            raise


def _check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail in seconds, not minutes, on a head node nobody listens at: Ray itself retries its
    connection for minutes. ``auto`` (the cluster started on this machine) is left to Ray."""
    import socket

    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--ray-address {address}: expected HOST:PORT, ray://HOST:PORT or auto")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):  # [::1]
            pass
    except OSError as exc:
        raise IndexbenchError(f"--ray-address {address}: nothing answers there ({exc.strerror or exc}); "
                              "start the head with `ray start --head`, or omit --ray-address for a local "
                              "cluster") from None


def _run_on_worker(job: CellJob, dataset) -> RunRecord:
    from .protocols import SilentProgress

    job.cell.dataset = dataset  # this process's copy of the job
    return job.run(SilentProgress())


def _collect(ray, ref, job: CellJob) -> RunRecord:
    """The cell's record; an error record when the task itself failed (the worker died, or the
    job could not be unpickled there, e.g. a plugin missing on that node)."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        return _failed(job, f"failed on its Ray worker: {type(exc.cause).__name__}: {exc.cause}")
    except ray.exceptions.RayError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return _failed(job, f"its Ray worker died ({type(exc).__name__}){': ' + first if first else ''}")


def _failed(job: CellJob, reason: str) -> RunRecord:
    record = job.new_record()
    record.status, record.reason = "error", reason
    return record


def _shortfall(wanted: dict[str, float], cluster: dict[str, float]) -> str:
    """What a cell asks for beyond the whole cluster (Ray would wait for it forever)."""
    missing = []
    for key, resource in (("num_cpus", "CPU"), ("num_gpus", "GPU")):
        if wanted[key] > cluster.get(resource, 0):
            missing.append(f"{wanted[key]:g} {resource}, the cluster has {cluster.get(resource, 0):g}")
    return "; ".join(missing)
