"""Grid files: a committed TOML file that says which cells a run has and how far their numbers
may move before `indexbench compare` calls it a regression.

    indexers = ["bm25", "bm25:k1=0.9", "hc:backbone=tiny:max_steps=20"]
    tasks = ["document-retrieval", "id-quality"]     # default: every task
    datasets = ["sample"]                            # default: sample
    seeds = [0, 1, 2]                                # default: [0]
    baseline_seeds = [0, 1, 2, 3, 4]                 # what `indexbench baseline` records; default: seeds
    data_dir = "../shared/data"                      # relative to this file; optional
    device = "cpu"                                   # optional
    threads = 2                                      # torch's threads in every cell; optional

    [tolerance]           # of every metric (higher is better): pass when the drop is within
    absolute = 0.001      # this much, or within this fraction of the baseline value
    relative = 0.0
    timings = 0.5         # optional: timings (lower is better) may grow by 50 %; off when absent
    seeds = "mean"        # several seeds: gate on their mean, not on each seed's cell (default "each")
    rule = "spread"       # judge each cell against the baseline's spread over its seeds (below)
    k = 5.0               # spread rule: a drop fails beyond k x the noise of the difference

    [tolerance.metrics."ndcg@10"]   # per-metric overrides
    absolute = 0.01

The ``spread`` rule (`indexbench.compare`, README "Use it as a CI gate") takes each cell's
baseline over several seeds: a metric that varies by seed fails when its drop exceeds
``k`` standard deviations of the difference of the two sides' means (and ``absolute``); a metric
the same at every baseline seed is deterministic and fails when it drops beyond ``absolute``.

Every problem in the file (a wrong key, a wrong type) is one line naming the file and the key.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

GRID_KEYS = {"indexers", "tasks", "datasets", "seeds", "baseline_seeds", "data_dir", "device", "threads",
             "tolerance"}
TOLERANCE_KEYS = {"absolute", "relative", "timings", "metrics", "seeds", "rule", "k"}
SEED_GATES = ("each", "mean")
RULES = ("fixed", "spread")
DEFAULT_K = 5.0
"""Spread rule: how many standard deviations of the difference a drop may reach (README, "Use it
as a CI gate", says how it was chosen)."""

DEFAULT_ABSOLUTE = 1e-3
"""A metric may drop by this much before it fails (same seed gives the same metrics on one
machine; another CPU or BLAS build can move the last digits)."""


@dataclass(frozen=True)
class Tolerance:
    absolute: float = DEFAULT_ABSOLUTE
    relative: float = 0.0

    def allowed(self, baseline: float) -> float:
        return max(self.absolute, self.relative * abs(baseline))


@dataclass
class Tolerances:
    default: Tolerance = field(default_factory=Tolerance)
    metrics: dict[str, Tolerance] = field(default_factory=dict)
    timings: float | None = None  # relative growth allowed; None = timings not compared
    seeds: str = "each"  # each: every seed's cell must hold; mean: the mean across seeds must
    rule: str = "fixed"  # fixed: absolute/relative per seed; spread: against the baseline's seed spread
    k: float = DEFAULT_K

    def of(self, metric: str) -> Tolerance:
        return self.metrics.get(metric, self.default)


@dataclass
class Grid:
    path: Path
    indexers: list[str]
    tasks: list[str] = field(default_factory=list)
    datasets: list[str] = field(default_factory=lambda: ["sample"])
    seeds: list[int] = field(default_factory=lambda: [0])
    baseline_seeds: list[int] | None = None  # None: the same as seeds
    data_dir: Path | None = None
    device: str | None = None
    threads: int | None = None
    tolerances: Tolerances = field(default_factory=Tolerances)


def read_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such grid file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a grid file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not valid UTF-8") from None


def _unknown(path: Path, where: str, keys: set[str], valid: set[str]) -> None:
    extra = sorted(keys - valid)
    if extra:
        raise ConfigError(f"{path}: unknown key {extra[0]!r}{where}; valid keys: {', '.join(sorted(valid))}")


def _strings(path: Path, data: dict[str, Any], key: str) -> list[str] | None:
    if key not in data:
        return None
    value = data[key]
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value) or not value:
        raise ConfigError(f"{path}: {key!r} must be a non-empty list of strings, got {value!r}")
    return value


def _number(path: Path, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(f"{path}: {key!r} must be a number >= 0, got {value!r}")
    return float(value)


def _tolerance(path: Path, data: Any, where: str, base: Tolerance) -> Tolerance:
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: {where!r} must be a table, got {data!r}")
    _unknown(path, f" in [{where}]", set(data), {"absolute", "relative"})
    return Tolerance(
        absolute=_number(path, f"{where}.absolute", data["absolute"]) if "absolute" in data else base.absolute,
        relative=_number(path, f"{where}.relative", data["relative"]) if "relative" in data else base.relative,
    )


def parse_tolerances(path: Path, data: Any) -> Tolerances:
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: 'tolerance' must be a table, got {data!r}")
    _unknown(path, " in [tolerance]", set(data), TOLERANCE_KEYS)
    default = _tolerance(path, {k: v for k, v in data.items() if k in ("absolute", "relative")}, "tolerance",
                         Tolerance())
    metrics_table = data.get("metrics", {})
    if not isinstance(metrics_table, dict):
        raise ConfigError(f"{path}: 'tolerance.metrics' must be a table of metric names, got {metrics_table!r}")
    metrics = {name: _tolerance(path, value, f"tolerance.metrics.{name}", default)
               for name, value in metrics_table.items()}
    timings = _number(path, "tolerance.timings", data["timings"]) if "timings" in data else None
    seeds = data.get("seeds", "each")
    if seeds not in SEED_GATES:
        raise ConfigError(f"{path}: 'tolerance.seeds' must be one of {', '.join(SEED_GATES)}, got {seeds!r}")
    rule = data.get("rule", "fixed")
    if rule not in RULES:
        raise ConfigError(f"{path}: 'tolerance.rule' must be one of {', '.join(RULES)}, got {rule!r}")
    k = _number(path, "tolerance.k", data["k"]) if "k" in data else DEFAULT_K
    return Tolerances(default=default, metrics=metrics, timings=timings, seeds=seeds, rule=rule, k=k)


def _seeds(path: Path, data: dict[str, Any], key: str) -> list[int]:
    seeds = data[key]
    seeds = [seeds] if isinstance(seeds, int) and not isinstance(seeds, bool) else seeds
    if (not isinstance(seeds, list) or not seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)):
        raise ConfigError(f"{path}: {key!r} must be a non-empty list of integers, got {data[key]!r}")
    return seeds


def load_grid(path: str | Path) -> Grid:
    """Read and check a grid file (names are checked later, with the rest of the run's input)."""
    path = Path(path)
    data = read_toml(path)
    _unknown(path, "", set(data), GRID_KEYS)
    indexers = _strings(path, data, "indexers")
    if not indexers:
        raise ConfigError(f"{path}: 'indexers' is required (a list of indexer names with options)")
    grid = Grid(path=path, indexers=indexers)
    grid.tasks = _strings(path, data, "tasks") or []
    grid.datasets = _strings(path, data, "datasets") or ["sample"]
    if "seeds" in data:
        grid.seeds = _seeds(path, data, "seeds")
    if "baseline_seeds" in data:
        grid.baseline_seeds = _seeds(path, data, "baseline_seeds")
    if "threads" in data:
        threads = data["threads"]
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ConfigError(f"{path}: 'threads' must be an integer >= 1, got {threads!r}")
        grid.threads = threads
    for key in ("data_dir", "device"):
        if key in data and not isinstance(data[key], str):
            raise ConfigError(f"{path}: {key!r} must be a string, got {data[key]!r}")
    if "data_dir" in data:
        grid.data_dir = (path.parent / Path(data["data_dir"]).expanduser()).resolve()
    grid.device = data.get("device")
    if "tolerance" in data:
        grid.tolerances = parse_tolerances(path, data["tolerance"])
    return grid
