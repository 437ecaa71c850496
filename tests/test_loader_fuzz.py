"""Property-based tests of the data loaders: whatever bytes or JSON a file holds, loading it
either succeeds or raises one `DataError` -- one line, naming the file -- never a traceback of
another exception."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from indexbench.datasets.amazon import load_lcrec
from indexbench.datasets.beir import load_beir
from indexbench.errors import DataError

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
# Objects shaped like the real records, so the fuzzing reaches past the first type check.
corpus_like = st.dictionaries(st.sampled_from(["_id", "text", "title", "metadata", "x"]), json_values, max_size=4)
item_like = st.dictionaries(st.sampled_from(["title", "description", "brand", "categories", "y"]),
                            json_values | st.text(alphabet="AB, ", max_size=8), max_size=4)

GOOD_CORPUS = b'{"_id": "d1", "text": "a"}\n{"_id": "d2", "text": "b"}\n'
GOOD_QUERIES = b'{"_id": "q1", "text": "a"}\n'
GOOD_QRELS = b"query-id\tcorpus-id\tscore\nq1\td1\t1\n"


def _load_beir(corpus: bytes = GOOD_CORPUS, queries: bytes = GOOD_QUERIES, qrels: bytes = GOOD_QRELS) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "qrels").mkdir()
        (root / "corpus.jsonl").write_bytes(corpus)
        (root / "queries.jsonl").write_bytes(queries)
        (root / "qrels" / "test.tsv").write_bytes(qrels)
        _loads_or_one_line(lambda: load_beir(root), root)


def _load_lcrec(items: bytes, inters: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "Tiny.item.json").write_bytes(items)
        (root / "Tiny.inter.json").write_bytes(inters)
        _loads_or_one_line(lambda: load_lcrec(root), root)


def _loads_or_one_line(load, root: Path) -> None:
    try:
        load()
    except DataError as exc:
        message = str(exc)
        assert "\n" not in message, message
        assert message.startswith(str(root)), message


def _jsonl(rows) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


@FUZZ
@given(st.binary(max_size=300))
def test_beir_corpus_of_any_bytes(data):
    _load_beir(corpus=data)


@FUZZ
@given(st.lists(corpus_like | json_values, min_size=1, max_size=5))
def test_beir_corpus_of_any_json_lines(rows):
    _load_beir(corpus=_jsonl(rows))


@FUZZ
@given(st.binary(max_size=200), st.binary(max_size=200))
def test_beir_queries_and_qrels_of_any_bytes(queries, qrels):
    _load_beir(queries=queries, qrels=qrels)


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(["q1", "q2", "", "d1"]), st.sampled_from(["d1", "d3", ""]),
                          st.text(alphabet="-0129.x", max_size=3)), max_size=4))
def test_beir_qrels_of_any_rows(rows):
    _load_beir(qrels=("query-id\tcorpus-id\tscore\n" + "".join("\t".join(r) + "\n" for r in rows)).encode())


@FUZZ
@given(st.binary(max_size=300), st.binary(max_size=100))
def test_lcrec_of_any_bytes(items, inters):
    _load_lcrec(items, inters)


@FUZZ
@given(st.dictionaries(st.text(alphabet="0123ab", max_size=3), item_like | json_values, max_size=4) | json_values,
       st.dictionaries(st.text(alphabet="0123", max_size=2),
                       st.lists(st.integers(-2, 4) | st.text(alphabet="0123", max_size=2) | json_values, max_size=4)
                       | json_values, max_size=3) | json_values)
@example({"0\n": None}, {})  # an id holding a newline once broke the message over two lines
def test_lcrec_of_any_json(items, inters):
    _load_lcrec(json.dumps(items).encode(), json.dumps(inters).encode())
