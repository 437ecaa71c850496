"""Run records and the SQLite results store.

One row per grid cell, append-only: re-running a cell adds a new row, and the leaderboard shows
the latest row per (dataset, task, indexer). Nested values (metrics, timings, config, versions)
are stored as JSON text so the schema never has to change when a plugin reports something new.

A computed result is never lost to the store: `ResultStore.check` runs before the first cell
(the file opens, is SQLite, takes the schema and a write), the database runs in WAL mode so
readers never block the writer, a locked database is waited on (``BUSY_TIMEOUT_S``) and retried,
and a record that still cannot be written goes to a JSON-lines recovery file beside the store
(or in the temp directory), which ``indexbench import`` reads back.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import time
import zlib
from collections.abc import Collection
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from .errors import IndexbenchError

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
    # A ranking cell's per-query results: each test query's metric values, its top-k ranking
    # ([document id, score] pairs, best first) and its judgements. Stored compressed; a
    # records listing leaves them out unless asked (`ResultStore.records(results=True)`).
    per_query: dict[str, dict[str, float]] = field(default_factory=dict)
    rankings: dict[str, list[list[Any]]] = field(default_factory=dict)
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_JSON_COLUMNS = {"metrics", "timings", "details", "config", "versions"}
_BLOB_COLUMNS = {"per_query", "rankings", "qrels"}  # zlib-compressed JSON
_COLUMNS = [f.name for f in fields(RunRecord)]
_IDENTITY_COLUMNS = {"id", "indexer", "task", "dataset", "status"}
"""Columns every store ever had: a records table without them belongs to another program."""


def _column_type(column: str) -> str:
    if column in _BLOB_COLUMNS:
        return "BLOB"
    return "REAL" if column == "duration_s" else "INTEGER" if column == "seed" else "TEXT"


def _encode(column: str, value: Any) -> Any:
    if column in _BLOB_COLUMNS:
        return zlib.compress(json.dumps(value, sort_keys=True, separators=(",", ":")).encode(), 6)
    return json.dumps(value, sort_keys=True) if column in _JSON_COLUMNS else value


def _decode(column: str, value: Any) -> Any:
    if column in _BLOB_COLUMNS:
        return json.loads(zlib.decompress(value)) if value else {}
    if column in _JSON_COLUMNS:
        return json.loads(value) if value else {}
    return value


_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    {", ".join(f"{c} {_column_type(c)}" for c in _COLUMNS)}
);
CREATE INDEX IF NOT EXISTS records_cell ON records (dataset, task, indexer);
"""


BUSY_TIMEOUT_S = 60.0
"""How long one write waits for another connection's lock before it counts as failed."""

WRITE_ATTEMPTS = 3
"""Writes tried (each with the full busy timeout) before a record goes to the recovery file."""


class StoreError(IndexbenchError):
    """The results store cannot be opened or written."""


class ResultStore:
    def __init__(self, path: str | Path, *, busy_timeout_s: float = BUSY_TIMEOUT_S):
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self.recovered_to: Path | None = None  # set once a record had to go to the recovery file
        self.recovery_problem = ""

    def _connect(self) -> sqlite3.Connection:
        if self.path.is_dir():
            raise StoreError(f"{self.path}: is a directory; --store takes a file path")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot create its folder ({exc.strerror or exc})") from None
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s)
        try:
            self._prepare(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        """Check that the file is this tool's store before changing anything in it, then create
        or migrate the schema (columns added since the store was made) and turn WAL on."""
        columns = {row[1] for row in conn.execute("PRAGMA table_info(records)")}
        if columns and not _IDENTITY_COLUMNS <= columns:
            raise StoreError(f"{self.path}: has a records table without the columns "
                             f"{', '.join(sorted(_IDENTITY_COLUMNS - columns))}; not an indexbench results store")
        for column in (c for c in _COLUMNS if columns and c not in columns):
            conn.execute(f"ALTER TABLE records ADD COLUMN {column} {_column_type(column)}")
        conn.executescript(_SCHEMA)
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode=WAL")  # readers (leaderboard) never block a grid's writes

    def check(self) -> None:
        """Raise `StoreError` unless records can be written: run before any work starts. A
        store that does not exist yet is not created here (a run refused later for bad input
        leaves nothing behind); its folder must be creatable and writable."""
        if not self.path.exists():
            from .paths import check_writable_file

            try:
                check_writable_file(self.path, "--store")
            except IndexbenchError as exc:
                raise StoreError(str(exc)) from None
            return
        try:
            conn = self._connect()
            try:
                conn.execute("BEGIN IMMEDIATE")  # takes the write lock, as a record's insert will
                conn.execute("ROLLBACK")
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {_explain(exc)}") from None

    def add(self, record: RunRecord) -> Path | None:
        """Store one record. If the store cannot take it after `WRITE_ATTEMPTS` tries, the record
        is appended to the recovery file instead and that file's path returned (None when stored)."""
        row = record.to_dict()
        values = [_encode(c, row[c]) for c in _COLUMNS]
        problem = ""
        for attempt in range(WRITE_ATTEMPTS):
            try:
                conn = self._connect()
                try:
                    with conn:  # one transaction per record: a crash never leaves half a row
                        conn.execute(
                            f"INSERT INTO records ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                            values,
                        )
                finally:
                    conn.close()
                return None
            except (sqlite3.Error, StoreError) as exc:
                problem = _explain(exc) if isinstance(exc, sqlite3.Error) else str(exc)
                time.sleep(min(2.0 ** attempt, 5.0) * 0.1)
        self.recovered_to = write_recovery(record, self.recovery_path())
        self.recovery_problem = problem
        return self.recovered_to

    def recovery_path(self) -> Path:
        """Where records go that the store cannot take: beside it when that folder is writable."""
        beside = self.path.with_name(self.path.name + ".recovered.jsonl")
        if beside.parent.is_dir() and os.access(beside.parent, os.W_OK):
            return beside
        return _last_resort_recovery_path()

    def import_file(self, path: str | Path) -> int:
        """Add every record of a recovery (JSON-lines) file; returns how many."""
        path = Path(path)
        records = read_records(path)
        for record in records:
            if self.add(record) is not None:
                raise StoreError(f"{self.path}: cannot be written ({self.recovery_problem}); "
                                 f"{path} is left as it was")
        return len(records)

    def records(
        self,
        *,
        dataset: str | None = None,
        task: str | None = None,
        indexer: str | None = None,
        grid_id: str | None = None,
        latest: bool = True,
        results: bool | Collection[str] = False,
    ) -> list[RunRecord]:
        """Records matching the filters, oldest first; with ``latest`` only the newest per cell
        (dataset, task, indexer, seed). ``results`` also reads the per-query results: True for
        all of them, or a collection of the ones wanted (``{"per_query"}`` skips the rankings)."""
        if not self.path.exists():
            return []
        where, args = [], []
        for column, value in (("dataset", dataset), ("task", task), ("indexer", indexer), ("grid_id", grid_id)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        wanted = _BLOB_COLUMNS if results is True else set(results or ())
        try:
            # Read-only: reading a store changes nothing in it, so a store on a read-only mount
            # (or another user's) still lists; a store made by an older version lacks some
            # columns, which read as their defaults.
            conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True,
                                   timeout=self.busy_timeout_s)
            try:
                present = {row[1] for row in conn.execute("PRAGMA table_info(records)")}
                if not present:
                    return []
                if not _IDENTITY_COLUMNS <= present:
                    raise StoreError(f"{self.path}: has a records table without the columns "
                                     f"{', '.join(sorted(_IDENTITY_COLUMNS - present))}; "
                                     "not an indexbench results store")
                columns = [c for c in _COLUMNS if c in present and (c not in _BLOB_COLUMNS or c in wanted)]
                sql = f"SELECT {', '.join(columns)} FROM records"
                if where:
                    sql += " WHERE " + " AND ".join(where)
                sql += " ORDER BY id"
                rows = conn.execute(sql, args).fetchall()
            finally:
                conn.close()
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {_explain(exc)}") from None
        records = [RunRecord(**{c: _decode(c, v) for c, v in zip(columns, row)}) for row in rows]
        if latest:
            newest: dict[tuple[str, str, str, int], RunRecord] = {}
            for rec in records:
                newest[cell_key(rec)] = rec
            records = list(newest.values())
        return records


def cell_key(record: RunRecord) -> tuple[str, str, str, int]:
    """What identifies a cell across runs: (dataset, task, indexer label, seed)."""
    return (record.dataset, record.task, record.indexer, int(record.seed or 0))


def _explain(exc: sqlite3.Error) -> str:
    text = str(exc)
    if "not a database" in text:
        return "is not an SQLite database (corrupt, or another kind of file)"
    if "locked" in text or "busy" in text:
        return "is locked by another process (waited too long for it)"
    if "unable to open" in text:
        return "cannot be opened (check the path and its permissions)"
    if "readonly" in text:
        return "is read-only"
    return text


def _last_resort_recovery_path() -> Path:
    return Path(tempfile.gettempdir()) / f"indexbench-recovered-{os.getpid()}.jsonl"


def write_recovery(record: RunRecord, path: Path) -> Path:
    """Append ``record`` as one JSON line to ``path`` (flushed to disk) and return the path."""
    line = json.dumps(record.to_dict(), sort_keys=True)
    try:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    except OSError:  # the chosen folder failed too: the temp directory is the last resort
        path = _last_resort_recovery_path()
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
    return path


def read_records(path: Path) -> list[RunRecord]:
    """The records of a JSON-lines file written by `write_recovery` (or ``run --json``'s list)."""
    from .errors import DataError

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(path, f"cannot be read ({exc})") from None
    stripped = text.lstrip()
    try:
        rows = json.loads(stripped) if stripped.startswith("[") else \
            [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise DataError(path, f"not JSON lines of records ({exc.msg})") from None
    known = set(_COLUMNS)
    records = []
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict) or not {"indexer", "task", "dataset", "status"} <= row.keys():
            raise DataError(path, "not a run record (needs indexer, task, dataset and status)", number)
        records.append(RunRecord(**{k: v for k, v in row.items() if k in known}))
    return records
