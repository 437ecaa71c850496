"""The Python API (`indexbench.api`, re-exported from `indexbench`): lookups, `evaluate` writing
nothing unless asked, and the README's example, run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import indexbench
from indexbench.errors import ConfigError, UnknownNameError
from indexbench.store import ResultStore

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.fixture
def user(user, tmp_path, monkeypatch):
    """conftest's private user folders, and temporary files under ``tmp_path/tmp`` (tempfile
    caches its folder once found, so TMPDIR alone would not move it)."""
    import tempfile

    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    return user


def test_lists_are_sorted_and_hold_the_built_ins():
    indexers = [entry.name for entry in indexbench.list_indexers()]
    assert indexers == sorted(indexers) and {"bm25", "hc", "lmindexer", "seal"} <= set(indexers)
    assert [task.name for task in indexbench.list_tasks()] == [
        "document-retrieval", "id-quality", "product-search", "recommendation"]
    assert "sample" in [entry.name for entry in indexbench.list_datasets()]
    assert [entry.name for entry in indexbench.list_encoders()] == ["minilm", "tiny"]
    assert "tiny" in [entry.name for entry in indexbench.list_backbones()]
    assert all(isinstance(entry, indexbench.IndexerEntry) for entry in indexbench.list_indexers())


def test_get_indexer_builds_it_with_checked_options():
    bm25 = indexbench.get_indexer("bm25:k1=0.5")
    assert bm25.config.k1 == 0.5
    with pytest.raises(UnknownNameError, match="unknown indexer 'bm52'"):
        indexbench.get_indexer("bm52")
    with pytest.raises(ConfigError, match="has no option 'k2'"):
        indexbench.get_indexer("bm25:k2=1")


def test_get_task_dataset_encoder_and_backbone():
    assert indexbench.get_task("id-quality").name == "id-quality"
    sample = indexbench.get_dataset("sample")
    assert sample.name == "sample" and len(sample.corpus) == 300
    vectors = indexbench.get_encoder("tiny", precision="fp32").encode(["lab gloves", "drill bits"])
    assert vectors.shape[0] == 2
    assert indexbench.get_backbone("tiny", seed=1).identity
    with pytest.raises(UnknownNameError, match="unknown dataset"):
        indexbench.get_dataset("no-such-dataset")


def test_evaluate_returns_records_and_writes_nothing(user, tmp_path):
    from indexbench.protocols import SilentProgress

    seen = []

    class Watching(SilentProgress):  # looks at the temporary folder while cells run
        def task(self, description, total=None):
            seen.append(sorted(p.name for p in (tmp_path / "tmp").iterdir()))
            return super().task(description, total)

    records = indexbench.evaluate(["bm25", "random-ids:backbone=tiny:max_steps=2"], ["product-search", "id-quality"],
                                  seeds=[0, 1], progress=Watching())
    assert seen and all(any(name.startswith("indexbench-cache-") for name in names) for names in seen)
    assert [(r.indexer, r.task, r.seed) for r in records][:2] == [
        ("bm25", "product-search", 0), ("random-ids:backbone=tiny:max_steps=2", "product-search", 0)]
    assert len(records) == 8 and {r.status for r in records} == {"ok", "skipped"}
    assert not user.exists()  # no store, cache or data folder of the user's
    assert list((tmp_path / "tmp").iterdir()) == []  # the call's own cache is gone


def test_evaluate_stores_and_caches_where_asked(user, tmp_path):
    store = tmp_path / "mine.sqlite"
    records = indexbench.evaluate("bm25", "product-search", store=store, cache_dir=tmp_path / "cache")
    assert [r.indexer for r in ResultStore(store).records()] == ["bm25"]
    assert records[0].metrics == ResultStore(store).records()[0].metrics
    assert not user.exists()


def test_evaluate_checks_its_input_before_any_cell(user):
    with pytest.raises(UnknownNameError, match="unknown task 'product-serach'"):
        indexbench.evaluate("bm25", "product-serach")
    with pytest.raises(ConfigError, match="needs one"):
        indexbench.evaluate("bm25", "product-search", resume=True)


def test_the_readmes_python_example_runs(user, capsys):
    section = README.read_text(encoding="utf-8").split("## Python API", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    exec(compile(code, "README.md (Python API)", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert "bm25" in out[0] and "product-search" in out[1]
    assert out[2].startswith("bm25 ok 0.4367") and out[3].startswith("bm25:k1=0.5 ok ")
    assert out[4].startswith("300 (")
    assert not user.exists()
