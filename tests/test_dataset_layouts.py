"""The P5 and RecBole layouts load to the same dataset as the LC-Rec layout of the same data, and
dataset identity tells a known split from a copy that differs."""

from __future__ import annotations

import dataclasses
import gzip
import json
import random
from pathlib import Path

import pytest

from indexbench.datasets import detect_format, load_path
from indexbench.datasets.identity import canonical_sequences, identify, known_splits
from indexbench.errors import DataError

ITEMS = [  # title, brand, category path
    ("Nail Lacquer Red", "OPI", ["Beauty", "Makeup", "Nails"]),
    ("Shatter Polish", "OPI", ["Beauty", "Makeup", "Nails"]),
    ("BB Cream", "SKIN79", ["Beauty", "Skin Care", "Face"]),
    ("Eyeshadow Palette", "", ["Beauty", "Makeup", "Eyes"]),
    ("Paraffin Bath", "Dr. Scholl's", ["Beauty", "Tools", "Spa"]),
]
USERS = [[0, 1, 2, 3], [4, 1, 0, 2, 3], [2, 3, 4, 0], [1, 1, 4, 2]]  # item indexes, oldest first


def write_lcrec(directory: Path) -> Path:
    directory.mkdir()
    items = {str(i): {"title": t, "description": "", "brand": b, "categories": ",".join(c)}
             for i, (t, b, c) in enumerate(ITEMS)}
    (directory / "Toy.item.json").write_text(json.dumps(items))
    (directory / "Toy.inter.json").write_text(json.dumps({str(u): seq for u, seq in enumerate(USERS)}))
    return directory


def write_p5(directory: Path, with_metadata: bool = True) -> Path:
    """P5 numbers users and items from 1; metadata is Amazon's Python-literal lines, gzipped."""
    directory.mkdir()
    lines = [" ".join([str(u + 1), *(str(i + 1) for i in seq)]) for u, seq in enumerate(USERS)]
    (directory / "user_sequence.txt").write_text("\n".join(lines) + "\n")
    if with_metadata:
        (directory / "datamaps.json").write_text(json.dumps({"id2item": {str(i + 1): f"B{i:04d}" for i in range(len(ITEMS))}}))
        meta = [repr({"asin": f"B{i:04d}", "title": t, **({"brand": b} if b else {}), "categories": [c]})
                for i, (t, b, c) in enumerate(ITEMS)]
        with gzip.open(directory / "meta.json.gz", "wt", encoding="utf-8") as f:
            f.write("\n".join(meta) + "\n")
    return directory


def write_recbole(directory: Path, ids=lambda i: f"item{i}") -> Path:
    """Rows shuffled: the loader must order each user's items by timestamp."""
    directory.mkdir()
    rows = [(f"{u}", ids(i), 1000 + 10 * t) for u, seq in enumerate(USERS) for t, i in enumerate(seq)]
    random.Random(0).shuffle(rows)
    inter = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    inter += [f"{u}\t{i}\t5.0\t{t}" for u, i, t in rows]
    (directory / "toy.inter").write_text("\n".join(inter) + "\n")
    item = ["item_id:token\ttitle:token_seq\tbrand:token\tcategories:token_seq"]
    item += [f"{ids(i)}\t{t}\t{b}\t{','.join(c)}" for i, (t, b, c) in enumerate(ITEMS)]
    (directory / "toy.item").write_text("\n".join(item) + "\n")
    return directory


def canonical(dataset):
    """The dataset up to the names of users and items: sequences, and each item's content in
    order of first appearance."""
    users, sequences = canonical_sequences(dataset.interactions)
    first_seen = list(dict.fromkeys(i for u in users for i in dataset.interactions[u]))
    docs = [(d.title, d.text, d.categories) for d in map(dataset.corpus.get, first_seen)]
    return sequences, docs, len(dataset.corpus)


def test_the_three_layouts_load_to_the_same_dataset(tmp_path):
    lcrec = load_path(write_lcrec(tmp_path / "lcrec"))
    p5 = load_path(write_p5(tmp_path / "p5"))
    recbole = load_path(write_recbole(tmp_path / "recbole"))
    assert [detect_format(tmp_path / n) for n in ("lcrec", "p5", "recbole")] == ["lc-rec", "p5", "recbole"]
    assert canonical(p5) == canonical(lcrec) == canonical(recbole)
    assert lcrec.corpus.get("4").text == "Paraffin Bath. Dr. Scholl's"
    assert p5.identity["fingerprint"] == lcrec.identity["fingerprint"] == recbole.identity["fingerprint"]
    # With the LC-Rec ids as RecBole tokens, the datasets are equal byte for byte.
    same_ids = load_path(write_recbole(tmp_path / "recbole-ids", ids=str))
    assert dataclasses.replace(same_ids, name="lcrec").fingerprint == lcrec.fingerprint


def test_p5_without_metadata_still_has_every_item(tmp_path):
    p5 = load_path(write_p5(tmp_path / "p5", with_metadata=False))
    assert p5.corpus.ids == ["1", "2", "3", "4", "5"] and not p5.corpus.get("1").text
    assert p5.interactions["2"] == ["5", "2", "1", "3", "4"]


@pytest.mark.parametrize("layout, file, content, message", [
    ("p5", "user_sequence.txt", "1 1 2\n2\n", "user_sequence.txt:2: user \"2\" has no items"),
    ("p5", "user_sequence.txt", "1 1 2\n1 3 4\n", "user_sequence.txt:2: user \"1\" appears twice"),
    ("p5", "meta.json.gz", None, "meta.json.gz:1: neither a JSON object nor a Python dict literal"),
    ("recbole", "toy.inter", "user_id:token\titem_id\n", "toy.inter:1: header column \"item_id\" is not name:type"),
    ("recbole", "toy.inter", "user_id:token\titem_id:token\n0\titem9\n", "toy.inter:2: unknown item \"item9\""),
    ("recbole", "toy.inter", "user_id:token\titem_id:token\n0\n", "toy.inter:2: 1 columns, the header has 2"),
    ("recbole", "toy.inter", "user_id:token\titem_id:token\ttimestamp:float\n0\titem1\tnoon\n",
     "toy.inter:2: timestamp \"noon\" is not a number"),
])
def test_a_bad_file_is_one_line_naming_file_and_line(tmp_path, layout, file, content, message):
    directory = write_p5(tmp_path / "d") if layout == "p5" else write_recbole(tmp_path / "d")
    if content is None:
        with gzip.open(directory / file, "wt") as f:
            f.write("{'asin': 'B0000', 'title': \n")
    else:
        (directory / file).write_text(content)
    with pytest.raises(DataError) as caught:
        load_path(directory)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_identity_of_a_copy_that_differs_names_how(tmp_path):
    lcrec = load_path(write_lcrec(tmp_path / "lcrec"))
    assert lcrec.identity["status"] == "unknown"
    beauty = next(s for s in known_splits() if s.key == "amazon-beauty-p5")
    assert (beauty.users, beauty.items, beauty.interactions) == (22363, 12101, 198502)
    # Registered as amazon-beauty but not that split: compared with it, difference by difference.
    found = identify(lcrec, registered_as="amazon-beauty")
    assert found.status == "differs" and found.split == "amazon-beauty-p5"
    assert "users 4 against 22,363 (-22,359)" in found.summary
    assert "first differing user: '0' (the 1st in order)" in found.summary


def test_known_split_statistics_match_the_published_ones():
    stats = {s.key: (s.users, s.items, s.interactions) for s in known_splits()}
    assert stats["amazon-sports-p5"] == (35598, 18357, 296337)
    assert stats["amazon-toys-p5"] == (19412, 11924, 167597)


def test_amazon_beauty_is_the_canonical_split_and_a_copy_missing_one_interaction_is_not(shared_data, tmp_path):
    from indexbench.datasets import load_dataset
    from indexbench.registry import get_registry

    beauty = load_dataset(get_registry().dataset("amazon-beauty"), shared_data)
    assert beauty.identity["status"] == "canonical" and beauty.identity["split"] == "amazon-beauty-p5"
    copy = tmp_path / "beauty-copy"
    copy.mkdir()
    (copy / "Beauty.item.json").write_bytes((shared_data / "amazon-beauty" / "Beauty.item.json").read_bytes())
    inter = json.loads((shared_data / "amazon-beauty" / "Beauty.inter.json").read_text())
    inter["100"] = inter["100"][:-1]
    (copy / "Beauty.inter.json").write_text(json.dumps(inter))
    found = load_path(copy).identity
    assert found["status"] == "differs" and found["split"] == "amazon-beauty-p5"
    assert found["summary"].endswith("interactions 198,501 against 198,502 (-1); "
                                     "first differing user: '100' (the 101st in order)")


def test_a_split_known_by_its_statistics_only_is_said_to_match_them(tmp_path, monkeypatch):
    from indexbench.datasets import identity

    lcrec = load_path(write_lcrec(tmp_path / "lcrec"))
    toy = identity.KnownSplit(key="toy", title="the toy split", source="here", users=4, items=5, interactions=17,
                              datasets=("toy",))
    monkeypatch.setattr(identity, "known_splits", lambda: (toy,))
    found = identity.identify(lcrec)
    assert (found.status, found.split) == ("same-statistics", "toy")
    assert found.summary == "has the statistics of the toy split (its sequences are not on record to compare)"
