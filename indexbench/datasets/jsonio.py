"""Strict readers for JSON, JSON Lines and TSV files that fail with a file-and-line `DataError`.

The standard library's json module silently keeps the last of two duplicate keys and reports
errors without a file name; these helpers close both gaps so every loader can promise that a
malformed file is reported as ``path:line: problem`` and never half-loaded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import DataError

_TYPE_NAMES = {
    dict: "object", list: "array", str: "string", int: "integer", float: "number",
    bool: "boolean", type(None): "null",
}


def type_name(value: Any) -> str:
    """The JSON name of a parsed value's type, for messages."""
    return _TYPE_NAMES.get(type(value), type(value).__name__)


class _DuplicateKey(Exception):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


def _decode(raw: bytes, path: Path, line: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(path, f"not valid UTF-8 ({exc.reason})", line=line) from None


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise DataError(path, f"cannot read file ({exc.strerror or exc})") from None


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, object)`` for every non-blank line of a JSON Lines file."""
    for lineno, raw in enumerate(_read_bytes(path).splitlines(), 1):
        if not raw.strip():
            continue
        text = _decode(raw, path, lineno)
        try:
            obj = json.loads(text, object_pairs_hook=_no_duplicates)
        except json.JSONDecodeError as exc:
            raise DataError(path, f"invalid JSON: {exc.msg} (column {exc.colno})", line=lineno) from None
        except _DuplicateKey as exc:
            raise DataError(path, f'duplicate key "{exc.key}"', line=lineno) from None
        if not isinstance(obj, dict):
            raise DataError(path, f"expected a JSON object, got {type_name(obj)}", line=lineno)
        yield lineno, obj


class JsonDocument:
    """A whole-file JSON value plus enough of its text to point at the line of a top-level key."""

    def __init__(self, path: Path, text: str, value: Any):
        self.path = path
        self.text = text
        self.value = value

    def line_of(self, key: str, occurrences: int = 1) -> int | None:
        """The line on which ``key`` is defined, when that can be told for certain.

        Pretty-printed files put each key at the start of its own line, and a JSON string can
        hold no raw newline, so a line that starts with ``"key":`` really is that key. The line
        is only trusted when exactly ``occurrences`` such lines exist (2 when pointing at a
        duplicate); otherwise (one-line files, nested keys of the same name) it is None and the
        message names the key alone. Only called on the error path, so its cost does not matter.
        """
        quoted = re.escape(json.dumps(key, ensure_ascii=False))
        hits = list(re.finditer(rf"^[ \t]*{quoted}[ \t]*:", self.text, flags=re.MULTILINE))
        if len(hits) != occurrences:
            return None
        return self.text.count("\n", 0, hits[-1].start()) + 1

    def error(self, key: str, problem: str) -> DataError:
        """A `DataError` about the entry under top-level ``key`` (which ``problem`` must name)."""
        return DataError(self.path, problem, line=self.line_of(key))


def quoted(value: Any) -> str:
    """An id or key as an error message shows it: in double quotes, JSON-escaped, so that one
    holding a newline or a quote still makes a one-line, unambiguous message."""
    return json.dumps(str(value), ensure_ascii=False)


def load_json(path: Path) -> JsonDocument:
    """Parse a whole JSON file strictly: UTF-8, no duplicate keys, errors with line numbers."""
    raw = _read_bytes(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise DataError(path, f"not valid UTF-8 ({exc.reason})", line=line) from None
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as exc:
        raise DataError(path, f"invalid JSON: {exc.msg} (column {exc.colno})", line=exc.lineno) from None
    except _DuplicateKey as exc:
        doc = JsonDocument(path, text, None)
        raise DataError(path, f'duplicate key "{exc.key}"', line=doc.line_of(exc.key, 2)) from None
    return JsonDocument(path, text, value)


def iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield ``(line number, text)`` for every non-blank line of a UTF-8 text file."""
    for lineno, raw in enumerate(_read_bytes(path).splitlines(), 1):
        if raw.strip():
            yield lineno, _decode(raw, path, lineno)


def iter_tsv(path: Path) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line number, tab-separated columns)`` for every non-blank line of a TSV file."""
    for lineno, line in iter_lines(path):
        yield lineno, line.split("\t")


def first_line(path: Path) -> str | None:
    """The first non-blank line of a text file, read without loading the rest (for cheap checks)."""
    with open(path, "rb") as f:
        for raw in f:
            if raw.strip():
                return raw.decode("utf-8", errors="replace")
    return None
