"""TREC run and qrels files of stored ranking cells, for trec_eval, ir-measures or ranx.

A run line is ``qid Q0 docid rank score tag``. The score written is derived from the rank
(``depth - rank``), not the retriever's own: the metrics in the store were computed from the
ranking's order alone (`indexbench.metrics`), and tools that sort by score would reorder tied
retriever scores by document id and compute something else. A judged query for which nothing
was retrieved has no run line; indexbench counts it as 0 in the mean, as ``trec_eval -c`` does
(without ``-c`` trec_eval leaves it out).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def run_tag(label: str) -> str:
    """A run tag without whitespace (the format's field separator)."""
    return re.sub(r"\s+", "_", label) or "run"


def run_lines(rankings: Mapping[str, Sequence[Sequence[Any]]], tag: str) -> list[str]:
    lines = []
    for qid in sorted(rankings):
        seen: set[str] = set()
        docs = [str(d) for d, *_ in rankings[qid] if not (str(d) in seen or seen.add(str(d)))]
        depth = len(docs)
        lines += [f"{qid} Q0 {doc} {rank} {depth - rank + 1} {tag}" for rank, doc in enumerate(docs, start=1)]
    return lines


def qrels_lines(qrels: Mapping[str, Mapping[str, int]]) -> list[str]:
    return [f"{qid} 0 {doc} {int(rel)}" for qid in sorted(qrels) for doc, rel in sorted(qrels[qid].items())]


def file_stem(record: Any) -> str:
    """``dataset.task.indexer[.seedN]``, safe as a file name."""
    parts = [record.dataset, record.task, record.indexer] + ([f"seed{record.seed}"] if record.seed else [])
    return re.sub(r"[^A-Za-z0-9._=@+-]", "_", ".".join(parts))


def export_record(record: Any, directory: Path) -> tuple[Path, Path]:
    """Write ``STEM.run`` and ``STEM.qrels`` for one ranking record; returns both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    stem = file_stem(record)
    run, qrels = directory / f"{stem}.run", directory / f"{stem}.qrels"
    run.write_text("\n".join(run_lines(record.rankings, run_tag(record.indexer))) + "\n", encoding="utf-8")
    qrels.write_text("\n".join(qrels_lines(record.qrels)) + "\n", encoding="utf-8")
    return run, qrels
