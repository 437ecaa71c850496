"""`indexbench verify`: run the cells of a reference matrix of published numbers (TOML; the one
shipped with the package is `shipped_references`, also at ``benchmarks/references.toml``) whose data
is present, and say how close each came.

A reference is judged by its ``check``: ``within`` (the default) is ``ok`` when our value is within
``tolerance`` of the published one, ``near`` within twice that, else ``fail``; ``at-least`` is
``ok`` when ours is no more than ``tolerance`` below it (a baseline we must reach, not match),
``near`` within twice that; ``beside`` is shown next to it and not judged (the published setting
differs from ours, and ``note`` says how). A reference whose dataset is absent, or whose indexer
is not installed (a published method indexbench does not implement), is ``skipped`` with the
reason. A reference with ``device = "gpu"`` is a cell at a budget only a GPU finishes (a
published recipe's full step count): it runs when verify's device is a GPU and is ``skipped``,
saying so, on a CPU. Each cell runs once, however many of its metrics are referenced.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .gridfile import read_toml

REQUIRED = {"name": str, "indexer": str, "task": str, "dataset": str, "metric": str, "value": float,
            "tolerance": float}
OPTIONAL = {"check": "within", "source": "", "note": "", "device": "any"}
CHECKS = ("within", "at-least", "beside")
DEVICES = ("any", "gpu")


@dataclass(frozen=True)
class Reference:
    name: str
    indexer: str
    task: str
    dataset: str
    metric: str
    value: float
    tolerance: float
    check: str = "within"
    source: str = ""
    note: str = ""
    device: str = "any"


@dataclass
class Verdict:
    reference: Reference
    status: str  # ok | near | fail | beside | skipped | error
    ours: float | None = None
    reason: str = ""


@dataclass
class PaperVsOurs:
    """One dataset × task of a verify run, pivoted as reproduction pages print it: a row per
    published method (its references share a ``name``), a column per metric."""
    dataset: str
    task: str
    metrics: list[str]
    rows: list[tuple[str, str, dict[str, Verdict]]]  # (name, indexer, metric -> verdict)


def paper_vs_ours(verdicts: list[Verdict]) -> list[PaperVsOurs]:
    """Group verdicts by dataset (its name: a cell on ``amazon-beauty:category_text=true`` is in
    Beauty's table) and task, in the order they come, then by reference name;
    metrics by cutoff (R@5, N@5 before R@10, N@10), then in their first order of appearance."""
    tables: dict[tuple[str, str], PaperVsOurs] = {}
    for verdict in verdicts:
        ref = verdict.reference
        dataset = dataset_name(ref.dataset)
        table = tables.setdefault((dataset, ref.task), PaperVsOurs(dataset, ref.task, [], []))
        if ref.metric not in table.metrics:
            table.metrics.append(ref.metric)
        row = next((r for r in table.rows if r[:2] == (ref.name, ref.indexer)), None)
        if row is None:
            row = (ref.name, ref.indexer, {})
            table.rows.append(row)
        row[2][ref.metric] = verdict
    for table in tables.values():
        table.metrics.sort(key=lambda m: int(m.rsplit("@", 1)[1]) if m.rsplit("@", 1)[-1].isdigit() else 0)
    return list(tables.values())


def dataset_name(dataset: str) -> str:
    """The registered name of a reference's dataset spec (``amazon-beauty:category_text=true`` →
    ``amazon-beauty``)."""
    from .specs import DatasetSpec

    return DatasetSpec.parse(dataset).name


def shipped_references() -> Path:
    """The reference matrix installed with indexbench (found outside a source checkout too)."""
    return Path(__file__).with_name("references.toml")


def load_references(path: str | Path) -> list[Reference]:
    path = Path(path)
    data = read_toml(path)
    if set(data) - {"reference"} or not isinstance(data.get("reference"), list):
        raise ConfigError(f"{path}: expected [[reference]] tables only")
    refs = []
    for i, entry in enumerate(data["reference"], start=1):
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}: reference {i} is not a table")
        extra = set(entry) - set(REQUIRED) - set(OPTIONAL)
        if extra:
            raise ConfigError(f"{path}: reference {i}: unknown key {sorted(extra)[0]!r}; "
                              f"valid keys: {', '.join([*REQUIRED, *OPTIONAL])}")
        values: dict[str, Any] = {}
        for key, kind in REQUIRED.items():
            if key not in entry:
                raise ConfigError(f"{path}: reference {i}: missing key {key!r}")
            value = entry[key]
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) if kind is float \
                else isinstance(value, str) and value.strip()
            if not ok:
                raise ConfigError(f"{path}: reference {i}: {key!r} must be a {'number' if kind is float else 'string'}, "
                                  f"got {value!r}")
            values[key] = float(value) if kind is float else value
        for key, default in OPTIONAL.items():
            value = entry.get(key, default)
            if not isinstance(value, str):
                raise ConfigError(f"{path}: reference {i}: {key!r} must be a string, got {value!r}")
            values[key] = value
        if values["check"] not in CHECKS:
            raise ConfigError(f"{path}: reference {i}: check must be one of {', '.join(CHECKS)}, "
                              f"got {values['check']!r}")
        if values["device"] not in DEVICES:
            raise ConfigError(f"{path}: reference {i}: device must be one of {', '.join(DEVICES)}, "
                              f"got {values['device']!r}")
        refs.append(Reference(**values))
    return refs


def judge(reference: Reference, ours: float) -> str:
    if reference.check == "beside":
        return "beside"
    gap = reference.value - ours if reference.check == "at-least" else abs(ours - reference.value)
    if gap <= reference.tolerance + 1e-12:
        return "ok"
    return "near" if gap <= 2 * reference.tolerance + 1e-12 else "fail"


def verify(references: list[Reference], *, data_dir: Any = None, **run_options: Any) -> list[Verdict]:
    """Run every reference cell whose dataset is present and indexer installed (each cell once)
    and judge each reference."""
    from . import paths
    from .datasets import dataset_status
    from .registry import get_registry
    from .runner import run_grid
    from .specs import IndexerSpec

    registry = get_registry()
    root = paths.data_dir(data_dir)
    verdicts: list[Verdict] = []
    cells: dict[tuple[str, str, str], list[Reference]] = {}
    on_gpu: bool | None = None  # resolved once, when a GPU-only reference asks
    for ref in references:
        entry = registry.datasets.get(dataset_name(ref.dataset))
        status, message = dataset_status(entry, root) if entry is not None else ("missing", "not a registered dataset")
        if ref.device == "gpu" and on_gpu is None and status in ("ok", "built-in"):
            from .environment import resolve_device

            on_gpu = resolve_device(run_options.get("device", "auto")) == "cuda"
        if IndexerSpec.parse(ref.indexer).name not in registry.indexers:
            verdicts.append(Verdict(ref, "skipped", reason=f"indexbench has no indexer {ref.indexer!r} "
                                                           "(published for comparison)"))
        elif ref.device == "gpu" and status in ("ok", "built-in") and not on_gpu:
            verdicts.append(Verdict(ref, "skipped", reason="runs at the published budget, which needs a GPU "
                                                           "(verify --device cuda)"))
        elif status in ("ok", "built-in"):
            cells.setdefault((ref.indexer, ref.task, ref.dataset), []).append(ref)
        else:
            verdicts.append(Verdict(ref, "skipped", reason=f"dataset {ref.dataset} {status}: {message}"))
    for (indexer, task, dataset), refs in cells.items():
        (record,) = run_grid([indexer], [task], [dataset], data_dir=data_dir, **run_options)
        for ref in refs:
            if record.status != "ok":
                verdicts.append(Verdict(ref, "error", reason=f"{record.status}: {record.reason}"))
            elif ref.metric not in record.metrics:
                verdicts.append(Verdict(ref, "error", reason=f"the cell reports no {ref.metric}"))
            else:
                ours = record.metrics[ref.metric]
                verdicts.append(Verdict(ref, judge(ref, ours), ours))
    order = {id(ref): i for i, ref in enumerate(references)}
    return sorted(verdicts, key=lambda v: order[id(v.reference)])
