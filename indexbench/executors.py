"""Executors: what runs a grid's cells once `run_grid` has planned and checked them.

`LocalExecutor` (the default) runs them one after another in this process. `RayExecutor`
(`indexbench.ray_executor`, needs the ``ray`` extra) runs each as a task on a Ray cluster. Either
hands every finished cell's record to ``keep`` as soon as it has it -- `run_grid` stores it there
-- so a grid stopped half-way keeps what finished, and ``--resume`` picks up from it with
either executor.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from .cells import CellJob, CellResources, Keep
from .environment import resolve_device
from .errors import ConfigError

if TYPE_CHECKING:
    from .protocols import Progress, ProgressTask


class Executor(Protocol):
    def resolve_device(self, device: str) -> str:
        """``auto``, ``cpu`` or ``cuda`` -> the device the cells run on (where they run)."""
        ...

    def run(self, jobs: Sequence[CellJob], *, keep: Keep, progress: Progress, grid_bar: ProgressTask,
            show_seed: bool) -> None:
        """Run every job, call ``keep(job, record)`` for each as it finishes and advance
        ``grid_bar`` once per finished cell. A KeyboardInterrupt stops the grid: whatever is
        unfinished is dropped, nothing is kept for it."""
        ...

    def close(self) -> None:
        """Release what the executor holds (a cluster it started); called once the grid ends."""
        ...


class LocalExecutor:
    """Cells one after another, in this process, with the caller's progress bars."""

    def resolve_device(self, device: str) -> str:
        return resolve_device(device)

    def run(self, jobs: Sequence[CellJob], *, keep: Keep, progress: Progress, grid_bar: ProgressTask,
            show_seed: bool) -> None:
        for job in jobs:
            grid_bar.set_status(job.label + (f" (seed {job.seed})" if show_seed else ""))
            keep(job, job.run(progress))
            grid_bar.advance()

    def close(self) -> None:
        pass


EXECUTORS = ("local", "ray")


def make_executor(name: str, *, ray_address: str | None = None, max_parallel: int | None = None,
                  cell_cpus: float | None = None, cell_gpus: float | None = None) -> Executor:
    """The executor the CLI's ``--executor`` names, with its options checked."""
    if name not in EXECUTORS:
        raise ConfigError(f"unknown executor {name!r}; valid executors: {', '.join(EXECUTORS)}")
    ray_only = {"--ray-address": ray_address, "--max-parallel": max_parallel, "--cell-cpus": cell_cpus,
                "--cell-gpus": cell_gpus}
    if name == "local":
        given = [flag for flag, value in ray_only.items() if value is not None]
        if given:
            raise ConfigError(f"{', '.join(given)} only apply to --executor ray")
        return LocalExecutor()
    if max_parallel is not None and max_parallel < 1:
        raise ConfigError(f"--max-parallel must be at least 1, got {max_parallel}")
    for flag, value in (("--cell-cpus", cell_cpus), ("--cell-gpus", cell_gpus)):
        if value is not None and value < 0:
            raise ConfigError(f"{flag} must not be negative, got {value}")
    from .ray_executor import RayExecutor

    return RayExecutor(address=ray_address, max_parallel=max_parallel,
                       resources=CellResources(cpus=cell_cpus, gpus=cell_gpus))
