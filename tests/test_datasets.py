"""Dataset loaders: happy paths on tiny fixtures, one test per kind of bad input, real data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from indexbench.datasets import (
    builtin_datasets,
    dataset_status,
    detect_format,
    load_dataset,
    load_path,
)
from indexbench.datasets.amazon import load_lcrec, product_text, split_categories
from indexbench.datasets.beir import load_beir
from indexbench.errors import DataError

# --------------------------------------------------------------------------- fixtures

CORPUS = [
    {"_id": "d1", "title": "Aspirin", "text": "Aspirin lowers fever."},
    {"_id": "d2", "title": "", "text": "Statins lower cholesterol.", "metadata": {}},
    {"_id": "d3", "text": "Sleep improves memory."},
]
QUERIES = [
    {"_id": "q1", "text": "what lowers fever"},
    {"_id": "q2", "text": "cholesterol drugs", "metadata": {"source": "x"}},
    {"_id": "q3", "text": "memory and sleep"},
]
TEST_QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\nq2\td3\t0\n"
TRAIN_QRELS = "query-id\tcorpus-id\tscore\nq3\td3\t1\n"


def jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def write_beir(root: Path, corpus: str | None = None, queries: str | None = None,
               qrels: dict[str, str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "corpus.jsonl").write_text(jsonl(CORPUS) if corpus is None else corpus, encoding="utf-8")
    (root / "queries.jsonl").write_text(jsonl(QUERIES) if queries is None else queries, encoding="utf-8")
    (root / "qrels").mkdir(exist_ok=True)
    for split, text in ({"test": TEST_QRELS, "train": TRAIN_QRELS} if qrels is None else qrels).items():
        (root / "qrels" / f"{split}.tsv").write_text(text, encoding="utf-8")
    return root


ITEMS = {
    "0": {"title": " Hex Bolt ", "description": "Zinc plated.", "brand": "Acme",
          "categories": "Industrial & Scientific,Fasteners,Bolts"},
    "1": {"title": "Duct Tape", "description": "", "brand": "TapeCo",
          "categories": "Industrial & Scientific,Tapes, Adhesives & Sealants,Tapes"},
    "2": {"title": "Mystery Part", "description": "Unknown use", "brand": "", "categories": ""},
}
INTERS = {"0": [0, 1, 2], "1": [2, 0]}


def write_lcrec(root: Path, items: object = None, inters: object = None, raw_items: str | None = None,
                raw_inters: str | None = None, name: str = "Tiny") -> Path:
    """Pretty-printed like the real files, so line numbers of top-level keys can be checked."""
    root.mkdir(parents=True, exist_ok=True)
    item_text = raw_items if raw_items is not None else json.dumps(ITEMS if items is None else items, indent=2)
    inter_text = raw_inters if raw_inters is not None else json.dumps(INTERS if inters is None else inters,
                                                                       indent=2)
    (root / f"{name}.item.json").write_text(item_text, encoding="utf-8")
    (root / f"{name}.inter.json").write_text(inter_text, encoding="utf-8")
    return root


def assert_data_error(info: pytest.ExceptionInfo, path: Path, line: int | None, fragment: str) -> None:
    """The error names the file and (when given) the line, on one line, and says what is wrong."""
    err = info.value
    message = str(err)
    assert err.path == str(path)
    assert err.line == line
    where = f"{path}:{line}: " if line is not None else f"{path}: "
    assert message.startswith(where), message
    assert fragment in message, message
    assert "\n" not in message


# --------------------------------------------------------------------------- BEIR


def test_beir_happy_path(tmp_path):
    ds = load_beir(write_beir(tmp_path / "tiny"))
    assert ds.name == "tiny"
    assert ds.corpus.ids == ["d1", "d2", "d3"]
    d1 = ds.corpus.get("d1")
    assert (d1.title, d1.text, d1.categories) == ("Aspirin", "Aspirin Aspirin lowers fever.", ())
    assert ds.corpus.get("d2").text == "Statins lower cholesterol."
    assert ds.corpus.get("d3").title == ""
    assert ds.queries == {"q1": "what lowers fever", "q2": "cholesterol drugs", "q3": "memory and sleep"}
    assert ds.qrels == {"test": {"q1": {"d1": 1}, "q2": {"d2": 2, "d3": 0}}, "train": {"q3": {"d3": 1}}}
    assert ds.interactions is None


def test_beir_qrels_header_is_optional_and_blank_lines_are_skipped(tmp_path):
    root = write_beir(tmp_path / "b", corpus=jsonl(CORPUS) + "\n\n", qrels={"dev": "q1\td1\t1\n\nq3\td3\t1\n"})
    ds = load_beir(root, name="custom")
    assert ds.name == "custom"
    assert ds.qrels == {"dev": {"q1": {"d1": 1}, "q3": {"d3": 1}}}


def bad_corpus(line2: str) -> str:
    return json.dumps(CORPUS[0]) + "\n" + line2 + "\n" + json.dumps(CORPUS[2]) + "\n"


@pytest.mark.parametrize(
    "line2, fragment",
    [
        ('{"_id": "d2", "text": "unterminated}', "invalid JSON"),
        ('["d2", "text"]', "expected a JSON object, got array"),
        ('{"text": "no id"}', 'missing field "_id"'),
        ('{"_id": "d2"}', 'missing field "text"'),
        ('{"_id": 2, "text": "x"}', 'field "_id" must be a string, got integer'),
        ('{"_id": "d2", "text": null}', 'field "text" must be a string, got null'),
        ('{"_id": "d2", "title": ["a"], "text": "x"}', 'field "title" must be a string, got array'),
        ('{"_id": " ", "text": "x"}', 'field "_id" is empty'),
        ('{"_id": "d1", "text": "again"}', 'duplicate document id "d1" (first on line 1)'),
        ('{"_id": "d2", "text": "a", "text": "b"}', 'duplicate key "text"'),
    ],
)
def test_beir_bad_corpus_line(tmp_path, line2, fragment):
    root = write_beir(tmp_path, corpus=bad_corpus(line2), qrels={})
    with pytest.raises(DataError) as info:
        load_beir(root)
    assert_data_error(info, root / "corpus.jsonl", 2, fragment)


def test_beir_invalid_utf8_names_the_line(tmp_path):
    root = write_beir(tmp_path, qrels={})
    (root / "corpus.jsonl").write_bytes(jsonl(CORPUS[:2]).encode() + b'{"_id": "d3", "text": "\xff"}\n')
    with pytest.raises(DataError) as info:
        load_beir(root)
    assert_data_error(info, root / "corpus.jsonl", 3, "not valid UTF-8")


def test_beir_empty_corpus(tmp_path):
    root = write_beir(tmp_path, corpus="\n", qrels={})
    with pytest.raises(DataError) as info:
        load_beir(root)
    assert_data_error(info, root / "corpus.jsonl", None, "corpus is empty")


@pytest.mark.parametrize(
    "line3, fragment",
    [
        ('{"_id": "q3"}', 'missing field "text"'),
        ('{"_id": "q1", "text": "dup"}', 'duplicate query id "q1" (first on line 1)'),
        ('{"_id": "q3", "text": 7}', 'field "text" must be a string, got integer'),
        ("not json", "invalid JSON"),
    ],
)
def test_beir_bad_queries_line(tmp_path, line3, fragment):
    queries = jsonl(QUERIES[:2]) + line3 + "\n"
    root = write_beir(tmp_path, queries=queries, qrels={})
    with pytest.raises(DataError) as info:
        load_beir(root)
    assert_data_error(info, root / "queries.jsonl", 3, fragment)


@pytest.mark.parametrize(
    "row, fragment",
    [
        ("q1\td1", "expected 3 tab-separated columns (query-id, corpus-id, score), got 2"),
        ("q1\td1\t1\textra", "got 4"),
        ("q1 d1 1", "got 1"),
        ("q1\td1\t1.0", 'score "1.0" is not an integer'),
        ("q1\td1\thigh", 'score "high" is not an integer'),
        ("q1\t123\t1", 'unknown document id "123" (not in corpus.jsonl)'),
        ("q9\td1\t1", 'unknown query id "q9" (not in queries.jsonl)'),
        ("q1\td1\t1", 'duplicate judgement for query "q1" and document "d1" (first on line 2)'),
    ],
)
def test_beir_bad_qrels_row(tmp_path, row, fragment):
    root = write_beir(tmp_path, qrels={"test": f"query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n{row}\n"})
    with pytest.raises(DataError) as info:
        load_beir(root)
    assert_data_error(info, root / "qrels" / "test.tsv", 4, fragment)


def test_beir_header_only_qrels_is_an_error(tmp_path):
    root = write_beir(tmp_path, qrels={"train": "query-id\tcorpus-id\tscore\n"})
    with pytest.raises(DataError) as info:
        load_beir(root)
    assert_data_error(info, root / "qrels" / "train.tsv", None, "no judgements")


def test_beir_missing_queries_file(tmp_path):
    root = write_beir(tmp_path)
    (root / "queries.jsonl").unlink()
    with pytest.raises(DataError) as info:
        load_beir(root)
    assert_data_error(info, root / "queries.jsonl", None, "missing")


# --------------------------------------------------------------------------- LC-Rec Amazon


def test_split_categories_keeps_names_with_comma_space():
    assert split_categories("A,Tapes, Adhesives & Sealants,B") == ("A", "Tapes, Adhesives & Sealants", "B")
    assert split_categories("") == ()
    assert split_categories("  ") == ()


def test_product_text_joins_sentences():
    assert product_text("Bolt.", "Acme", " Zinc plated ") == "Bolt. Acme. Zinc plated"
    assert product_text("", "Acme", "") == "Acme"
    assert product_text("", "", "") == ""


def test_lcrec_happy_path(tmp_path):
    ds = load_lcrec(write_lcrec(tmp_path / "tiny"))
    assert ds.name == "tiny"
    assert ds.corpus.ids == ["0", "1", "2"]
    bolt = ds.corpus.get("0")
    assert bolt.title == "Hex Bolt"
    assert bolt.text == "Hex Bolt. Acme. Zinc plated."
    assert "Fasteners" not in bolt.text  # categories are ground truth, never model input
    assert bolt.categories == ("Industrial & Scientific", "Fasteners", "Bolts")
    assert ds.corpus.get("1").categories[1] == "Tapes, Adhesives & Sealants"
    assert ds.corpus.get("1").text == "Duct Tape. TapeCo"
    assert ds.corpus.get("2").categories == ()
    assert ds.interactions == {"0": ["0", "1", "2"], "1": ["2", "0"]}
    assert ds.queries == {} and ds.qrels == {}


def test_lcrec_optional_fields_and_string_item_ids(tmp_path):
    ds = load_lcrec(write_lcrec(tmp_path, items={"a": {"title": "Only a title"}}, inters={"u": ["a"]}))
    doc = ds.corpus.get("a")
    assert (doc.text, doc.categories) == ("Only a title", ())
    assert ds.interactions == {"u": ["a"]}


def item_line(key: str, items: dict) -> int:
    """The line of a top-level key in ``json.dumps(items, indent=2)``."""
    lines = json.dumps(items, indent=2).splitlines()
    return next(i for i, text in enumerate(lines, 1) if text.startswith(f'  "{key}":'))


@pytest.mark.parametrize(
    "item, fragment",
    [
        ({"description": "no title"}, 'item "1": missing field "title"'),
        ({"title": 5}, 'item "1": field "title" must be a string, got integer'),
        ({"title": "t", "brand": None}, 'item "1": field "brand" must be a string, got null'),
        ({"title": "t", "description": ["a", "b"]}, 'item "1": field "description" must be a string, got array'),
        ({"title": "t", "categories": ["A", "B"]}, 'item "1": field "categories" must be a string, got array'),
        ({"title": "t", "categories": "A,,B"}, 'item "1": category path "A,,B" has an empty level'),
        ("just a string", 'item "1": expected an object, got string'),
    ],
)
def test_lcrec_bad_item(tmp_path, item, fragment):
    items = {**ITEMS, "1": item}
    root = write_lcrec(tmp_path, items=items)
    with pytest.raises(DataError) as info:
        load_lcrec(root)
    assert_data_error(info, root / "Tiny.item.json", item_line("1", items), fragment)


def test_lcrec_malformed_json_uses_the_parser_line(tmp_path):
    text = json.dumps(ITEMS, indent=2).replace('"brand": "TapeCo",', '"brand": "TapeCo"')
    bad_line = next(i for i, t in enumerate(text.splitlines(), 1) if '"categories"' in t and "Tapes" in t)
    root = write_lcrec(tmp_path, raw_items=text)
    with pytest.raises(DataError) as info:
        load_lcrec(root)
    assert_data_error(info, root / "Tiny.item.json", bad_line, "invalid JSON")


def test_lcrec_duplicate_item_points_at_second_definition(tmp_path):
    text = json.dumps(ITEMS, indent=2)
    text = text[:-2] + ',\n  "0": {"title": "again"}\n}'
    root = write_lcrec(tmp_path, raw_items=text)
    with pytest.raises(DataError) as info:
        load_lcrec(root)
    assert_data_error(info, root / "Tiny.item.json", len(text.splitlines()) - 1, 'duplicate key "0"')


def test_lcrec_duplicate_user_in_one_line_file_names_the_key(tmp_path):
    root = write_lcrec(tmp_path, raw_inters='{"0": [0, 1], "1": [2], "0": [1]}')
    with pytest.raises(DataError) as info:
        load_lcrec(root)
    assert_data_error(info, root / "Tiny.inter.json", None, 'duplicate key "0"')


@pytest.mark.parametrize(
    "items, fragment",
    [
        ([1, 2], "expected a JSON object mapping item ids to items, got array"),
        ({}, "no entries"),
    ],
)
def test_lcrec_bad_item_file_shape(tmp_path, items, fragment):
    root = write_lcrec(tmp_path, items=items, inters={"0": [0]})
    with pytest.raises(DataError) as info:
        load_lcrec(root)
    assert_data_error(info, root / "Tiny.item.json", 1 if items == [1, 2] else None, fragment)


@pytest.mark.parametrize(
    "sequence, fragment",
    [
        ([0, 7], 'user "1": unknown item id "7" (not in Tiny.item.json)'),
        ([0, "x"], 'user "1": unknown item id "x" (not in Tiny.item.json)'),
        ([0, 1.5], 'user "1": entry 1 must be an item id (integer or string), got number'),
        ([True], 'user "1": entry 0 must be an item id (integer or string), got boolean'),
        ([[0]], 'user "1": entry 0 must be an item id (integer or string), got array'),
        ({"0": 1}, 'user "1": expected an array of item ids, got object'),
        ([], 'user "1": has no interactions'),
    ],
)
def test_lcrec_bad_interactions(tmp_path, sequence, fragment):
    inters = {"0": [0, 1], "1": sequence, "2": [2]}
    root = write_lcrec(tmp_path, inters=inters)
    with pytest.raises(DataError) as info:
        load_lcrec(root)
    assert_data_error(info, root / "Tiny.inter.json", item_line("1", inters), fragment)


def test_lcrec_bad_interaction_file_shape(tmp_path):
    root = write_lcrec(tmp_path, raw_inters="[\n  [0, 1]\n]")
    with pytest.raises(DataError) as info:
        load_lcrec(root)
    assert_data_error(info, root / "Tiny.inter.json", 1, "expected a JSON object mapping user ids")


def test_lcrec_needs_exactly_one_file_pair(tmp_path):
    write_lcrec(tmp_path, name="A")
    write_lcrec(tmp_path, name="B")
    with pytest.raises(DataError) as info:
        load_lcrec(tmp_path)
    assert_data_error(info, tmp_path, None, "found A, B")
    assert load_lcrec(tmp_path, prefix="B").corpus.ids == ["0", "1", "2"]


# --------------------------------------------------------------------------- registry entries, status, paths


def entry(name: str):
    return next(e for e in builtin_datasets() if e.name == name)


def test_builtin_entries():
    entries = {e.name: e for e in builtin_datasets()}
    assert list(entries) == ["sample", "scifact", "amazon-beauty", "amazon-sports", "amazon-toys", "amazon-scientific"]
    assert entries["amazon-toys"].files == ("Toys.item.json", "Toys.inter.json")
    assert entries["amazon-beauty"].files == ("Beauty.item.json", "Beauty.inter.json")
    assert entries["sample"].generated and entries["sample"].files == ()
    assert entries["scifact"].subdir == "scifact"
    assert entries["scifact"].files == ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv")
    assert entries["scifact"].tasks == ("document-retrieval",)
    assert entries["amazon-scientific"].files == ("Scientific.item.json", "Scientific.inter.json")
    assert entries["amazon-scientific"].tasks == ("id-quality", "product-search", "recommendation")


def test_load_dataset_reports_missing_file_and_where_it_looked(tmp_path):
    with pytest.raises(DataError) as info:
        load_dataset(entry("scifact"), tmp_path)
    message = str(info.value)
    assert message.startswith(str(tmp_path / "scifact" / "corpus.jsonl") + ": ")
    assert f"looked in {tmp_path / 'scifact'}" in message
    assert "--data-dir" in message and "INDEXBENCH_DATA" in message


def test_load_dataset_by_entry(tmp_path):
    write_beir(tmp_path / "scifact")
    write_lcrec(tmp_path / "amazon-scientific", name="Scientific")
    assert load_dataset(entry("scifact"), tmp_path).name == "scifact"
    amazon = load_dataset(entry("amazon-scientific"), tmp_path)
    assert amazon.name == "amazon-scientific" and len(amazon.corpus) == 3
    assert load_dataset(entry("sample"), tmp_path / "nowhere").name == "sample"


def test_dataset_status(tmp_path):
    assert dataset_status(entry("sample"), tmp_path)[0] == "built-in"
    status, message = dataset_status(entry("scifact"), tmp_path)
    assert status == "missing" and "corpus.jsonl" in message and "INDEXBENCH_DATA" in message
    root = write_beir(tmp_path / "scifact")
    assert dataset_status(entry("scifact"), tmp_path) == ("ok", str(root))
    (root / "queries.jsonl").write_text("{oops\n", encoding="utf-8")
    status, message = dataset_status(entry("scifact"), tmp_path)
    assert status == "invalid" and "queries.jsonl" in message
    write_lcrec(tmp_path / "amazon-scientific", name="Scientific", raw_inters="[]")
    status, message = dataset_status(entry("amazon-scientific"), tmp_path)
    assert status == "invalid" and "Scientific.inter.json" in message


def test_detect_format_and_load_path(tmp_path):
    beir = write_beir(tmp_path / "my-beir")
    lcrec = write_lcrec(tmp_path / "my-shop")
    assert detect_format(beir) == "beir"
    assert detect_format(lcrec) == "lc-rec"
    assert detect_format(tmp_path) is None
    assert detect_format(beir / "corpus.jsonl") is None
    assert load_path(beir).name == "my-beir"
    assert load_path(lcrec, name="shop").name == "shop"
    with pytest.raises(DataError, match="not a dataset directory"):
        load_path(tmp_path)
    with pytest.raises(DataError, match="no such dataset directory"):
        load_path(tmp_path / "absent")


def test_package_import_is_light():
    code = (
        "import sys, indexbench.datasets as d; d.builtin_datasets(); "
        "heavy = {'torch', 'numpy', 'transformers', 'sklearn', 'faiss'} & set(sys.modules); "
        "lazy = {'indexbench.datasets.beir', 'indexbench.datasets.amazon', 'indexbench.datasets.sample'}; "
        "print(sorted(heavy | (lazy & set(sys.modules))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- real data


@pytest.mark.realdata
def test_real_scifact(shared_data):
    ds = load_dataset(entry("scifact"), shared_data)
    assert len(ds.corpus) == 5183
    assert set(ds.qrels) == {"train", "test"}
    assert len(ds.qrels["test"]) == 300
    assert sum(len(v) for v in ds.qrels["test"].values()) == 339
    assert len(ds.qrels["train"]) == 809
    assert sum(len(v) for v in ds.qrels["train"].values()) == 919
    assert all(score > 0 for split in ds.qrels.values() for docs in split.values() for score in docs.values())
    assert dataset_status(entry("scifact"), shared_data)[0] == "ok"


@pytest.mark.realdata
def test_real_amazon_scientific(shared_data):
    ds = load_dataset(entry("amazon-scientific"), shared_data)
    assert len(ds.corpus) == 4344
    assert ds.interactions is not None
    assert len(ds.interactions) == 8317
    assert sum(len(seq) for seq in ds.interactions.values()) == 58492
    assert min(len(seq) for seq in ds.interactions.values()) >= 5
    docs = list(ds.corpus)
    assert sum(1 for d in docs if not d.categories) == 131
    assert {d.categories[0] for d in docs if d.categories} == {"Industrial & Scientific"}
    level2 = [d.categories[1] for d in docs if len(d.categories) > 1]
    level3 = [d.categories[2] for d in docs if len(d.categories) > 2]
    assert (len(set(level2)), len(level2)) == (25, 4213)
    assert (len(set(level3)), len(level3)) == (191, 4107)
    assert "Tapes, Adhesives & Sealants" in level2
    assert dataset_status(entry("amazon-scientific"), shared_data)[0] == "ok"


def test_the_category_path_joins_the_item_text_only_when_asked(tmp_path):
    """``amazon-scientific:category_text=true`` (the LMIndexer authors' item texts): the path is
    id-quality's ground truth, so it stays out of the text by default."""
    from indexbench.errors import ConfigError
    from indexbench.registry import get_registry
    from indexbench.runner import load_datasets

    write_lcrec(tmp_path / "amazon-scientific", name="Scientific")
    registry = get_registry()
    plain, leaky = load_datasets(["amazon-scientific", "amazon-scientific:category_text=true"], registry, tmp_path)
    assert "Fasteners" not in plain.corpus[0].text
    assert leaky.corpus[0].text == "Hex Bolt. Acme. Zinc plated. category: Industrial & Scientific, Fasteners, Bolts"
    assert leaky.corpus[2].text == plain.corpus[2].text  # no path, nothing added
    assert leaky.corpus[0].categories == plain.corpus[0].categories
    # filed under its own name, with a fingerprint of its own (no cached artifact is shared)
    assert (plain.name, leaky.name) == ("amazon-scientific", "amazon-scientific:category_text=true")
    assert plain.fingerprint != leaky.fingerprint
    with pytest.raises(ConfigError, match="has no option 'categories'"):
        load_datasets(["amazon-scientific:categories=1"], registry, tmp_path)
    with pytest.raises(ConfigError, match="takes no options"):
        load_datasets(["sample:category_text=true"], registry, tmp_path)
