"""Loader for the BEIR layout: ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv``.

Every record is validated (field presence and types, unique ids, qrels pointing at known queries
and documents) so a bad file stops the run with ``path:line: problem`` instead of producing
quietly wrong metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..data import Corpus, Dataset, Document
from ..errors import DataError
from .jsonio import iter_jsonl, iter_tsv, quoted, type_name

CORPUS_FILE = "corpus.jsonl"
QUERIES_FILE = "queries.jsonl"
QRELS_DIR = "qrels"
SPLITS = ("train", "dev", "test")
_HEADER = ["query-id", "corpus-id", "score"]


def _string_field(obj: dict[str, Any], name: str, path: Path, line: int, required: bool = True) -> str:
    if name not in obj:
        if required:
            raise DataError(path, f'missing field "{name}"', line=line)
        return ""
    value = obj[name]
    if not isinstance(value, str):
        raise DataError(path, f'field "{name}" must be a string, got {type_name(value)}', line=line)
    return value


def _record_id(obj: dict[str, Any], path: Path, line: int, seen: dict[str, int], what: str) -> str:
    doc_id = _string_field(obj, "_id", path, line)
    if not doc_id.strip():
        raise DataError(path, 'field "_id" is empty', line=line)
    if doc_id in seen:
        raise DataError(path, f"duplicate {what} id {quoted(doc_id)} (first on line {seen[doc_id]})", line=line)
    seen[doc_id] = line
    return doc_id


def read_corpus(path: Path) -> Corpus:
    """``corpus.jsonl``: ``_id`` and ``text`` required, ``title`` optional; text = title + text."""
    seen: dict[str, int] = {}
    docs = []
    for line, obj in iter_jsonl(path):
        doc_id = _record_id(obj, path, line, seen, "document")
        title = _string_field(obj, "title", path, line, required=False).strip()
        body = _string_field(obj, "text", path, line).strip()
        docs.append(Document(id=doc_id, text=" ".join(p for p in (title, body) if p), title=title))
    if not docs:
        raise DataError(path, "no documents (the corpus is empty)")
    return Corpus(docs)


def read_queries(path: Path) -> dict[str, str]:
    """``queries.jsonl``: ``_id`` and ``text`` required; any other field (metadata) is ignored."""
    seen: dict[str, int] = {}
    queries: dict[str, str] = {}
    for line, obj in iter_jsonl(path):
        query_id = _record_id(obj, path, line, seen, "query")
        queries[query_id] = _string_field(obj, "text", path, line).strip()
    return queries


def read_qrels(path: Path, queries: dict[str, str], corpus: Corpus) -> dict[str, dict[str, int]]:
    """One qrels split: ``query-id<TAB>corpus-id<TAB>score`` rows after an optional header line.

    Scores are kept as given (0 = judged not relevant); consumers treat > 0 as relevant.
    """
    qrels: dict[str, dict[str, int]] = {}
    seen: dict[tuple[str, str], int] = {}
    for row, (line, cols) in enumerate(iter_tsv(path)):
        if row == 0 and [c.strip() for c in cols] == _HEADER:
            continue
        if len(cols) != 3:
            raise DataError(path, f"expected 3 tab-separated columns (query-id, corpus-id, score), "
                                  f"got {len(cols)}", line=line)
        query_id, doc_id, raw_score = (c.strip() for c in cols)
        try:
            score = int(raw_score)
        except ValueError:
            raise DataError(path, f'score "{raw_score}" is not an integer', line=line) from None
        if query_id not in queries:
            raise DataError(path, f"unknown query id {quoted(query_id)} (not in {QUERIES_FILE})", line=line)
        if doc_id not in corpus:
            raise DataError(path, f"unknown document id {quoted(doc_id)} (not in {CORPUS_FILE})", line=line)
        if (query_id, doc_id) in seen:
            raise DataError(path, f"duplicate judgement for query {quoted(query_id)} and document {quoted(doc_id)} "
                                  f"(first on line {seen[query_id, doc_id]})", line=line)
        seen[query_id, doc_id] = line
        qrels.setdefault(query_id, {})[doc_id] = score
    if not qrels:
        raise DataError(path, "no judgements (the qrels file is empty)")
    return qrels


def is_beir_dir(directory: Path) -> bool:
    return (directory / CORPUS_FILE).is_file()


def load_beir(directory: Path, name: str | None = None) -> Dataset:
    """Load a BEIR directory; the qrels splits are whichever of train/dev/test exist."""
    directory = Path(directory)
    for required in (CORPUS_FILE, QUERIES_FILE):
        if not (directory / required).is_file():
            raise DataError(directory / required, "missing (a BEIR directory needs corpus.jsonl and "
                                                  "queries.jsonl, plus qrels/<split>.tsv)")
    corpus = read_corpus(directory / CORPUS_FILE)
    queries = read_queries(directory / QUERIES_FILE)
    qrels = {
        split: read_qrels(directory / QRELS_DIR / f"{split}.tsv", queries, corpus)
        for split in SPLITS
        if (directory / QRELS_DIR / f"{split}.tsv").is_file()
    }
    return Dataset(name=name or directory.name, corpus=corpus, queries=queries, qrels=qrels,
                   source=str(directory))
