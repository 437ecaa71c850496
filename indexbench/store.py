"""Run records and the SQLite results store.

One row per grid cell, append-only: re-running a cell adds a new row, and the leaderboard shows
the latest row per (dataset, task, indexer). Nested values (metrics, timings, config, versions)
are stored as JSON text so the schema never has to change when a plugin reports something new.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

Status = Literal["ok", "skipped", "error"]


@dataclass
class RunRecord:
    indexer: str
    task: str
    dataset: str
    status: Status
    reason: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    device: str = "cpu"
    config: dict[str, Any] = field(default_factory=dict)
    config_hash: str = ""
    dataset_fingerprint: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    git_commit: str = ""
    grid_id: str = ""
    started_at: str = ""
    duration_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_JSON_COLUMNS = {"metrics", "timings", "details", "config", "versions"}
_COLUMNS = [f.name for f in fields(RunRecord)]
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    {", ".join(f"{c} {'REAL' if c == 'duration_s' else 'INTEGER' if c == 'seed' else 'TEXT'}" for c in _COLUMNS)}
);
CREATE INDEX IF NOT EXISTS records_cell ON records (dataset, task, indexer);
"""


class ResultStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path)
        conn.executescript(_SCHEMA)
        return conn

    def add(self, record: RunRecord) -> None:
        row = record.to_dict()
        values = [json.dumps(row[c], sort_keys=True) if c in _JSON_COLUMNS else row[c] for c in _COLUMNS]
        with self._connect() as conn:  # one transaction per record: a crash never leaves half a row
            conn.execute(
                f"INSERT INTO records ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                values,
            )
        conn.close()

    def records(
        self,
        *,
        dataset: str | None = None,
        task: str | None = None,
        indexer: str | None = None,
        grid_id: str | None = None,
        latest: bool = True,
    ) -> list[RunRecord]:
        """Records matching the filters, oldest first; with ``latest`` only the newest per cell."""
        if not self.path.exists():
            return []
        where, args = [], []
        for column, value in (("dataset", dataset), ("task", task), ("indexer", indexer), ("grid_id", grid_id)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        sql = f"SELECT {', '.join(_COLUMNS)} FROM records"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id"
        with self._connect() as conn:
            rows = conn.execute(sql, args).fetchall()
        conn.close()
        records = [
            RunRecord(**{c: json.loads(v) if c in _JSON_COLUMNS else v for c, v in zip(_COLUMNS, row)})
            for row in rows
        ]
        if latest:
            newest: dict[tuple[str, str, str], RunRecord] = {}
            for rec in records:
                newest[(rec.dataset, rec.task, rec.indexer)] = rec
            records = list(newest.values())
        return records
