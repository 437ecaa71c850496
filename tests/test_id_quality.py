"""The id-quality task end to end, on a toy dataset and toy indexers."""

from __future__ import annotations

import pytest

from indexbench.data import Corpus, Dataset, Document, SemanticIds
from indexbench.protocols import RunContext, Task
from indexbench.tasks.id_quality import IdQualityTask, id_quality_task

# Root "Sci"; level 2 Lab / Tools; the level-3 name "Misc" exists under both parents and must
# count as two different categories. "t3" stops at level 2, "r1" at the root, "n1" has none.
PATHS = {
    "a1": ("Sci", "Lab", "Glass"),
    "a2": ("Sci", "Lab", "Glass"),
    "a3": ("Sci", "Lab", "Misc"),
    "a4": ("Sci", "Lab", "Misc", "Deeper"),
    "t1": ("Sci", "Tools", "Misc"),
    "t2": ("Sci", "Tools", "Misc"),
    "t4": ("Sci", "Tools", "Hand"),
    "t3": ("Sci", "Tools"),
    "r1": ("Sci",),
    "n1": (),
}


def toy_dataset(with_categories: bool = True) -> Dataset:
    docs = [Document(id=d, text=f"text of {d}", categories=p if with_categories else ())
            for d, p in PATHS.items()]
    return Dataset(name="toy", corpus=Corpus(docs))


class CategoryIndexer:
    """IDs copied from the category path: (level-2 code, level-3 code, de-duplicating counter)."""

    name = "category-ids"

    def __init__(self):
        self.calls = 0

    def assign_ids(self, corpus: Corpus, ctx: RunContext) -> SemanticIds:
        self.calls += 1
        codes: dict[tuple, int] = {}
        ids, used = {}, {}
        for doc in corpus:
            l2 = codes.setdefault(doc.categories[:2], len(codes)) if len(doc.categories) >= 2 else 9
            l3 = codes.setdefault(doc.categories[:3], len(codes)) if len(doc.categories) >= 3 else 9
            used[(l2, l3)] = used.get((l2, l3), -1) + 1
            ids[doc.id] = (l2, l3, used[(l2, l3)])
        return SemanticIds(ids, codebook_sizes=(10, 10, 4))


class BadIndexer(CategoryIndexer):
    name = "bad"

    def assign_ids(self, corpus, ctx):
        return SemanticIds({d.id: (0, 0, 0) for d in corpus}, codebook_sizes=(1, 1, 1))


class Bm25Like:
    name = "bm25"

    def build_retriever(self, problem, ctx):
        raise AssertionError("not called")


def test_task_protocol_and_instance():
    assert isinstance(id_quality_task, Task)
    assert id_quality_task.name == "id-quality"
    assert "ami_l2" in id_quality_task.metrics


def test_ids_copied_from_categories_score_ami_one():
    indexer = CategoryIndexer()
    result = IdQualityTask().evaluate(indexer, toy_dataset(), RunContext())
    m = result.metrics
    assert indexer.calls == 1
    # The first code is the level-2 category (over the 8 items that have one).
    assert m["ami_l2@1"] == pytest.approx(1.0)
    # The 2-prefix is the level-3 category, "Misc" under Lab != "Misc" under Tools.
    assert m["ami_l3@2"] == pytest.approx(1.0)
    assert m["ami_l3@1"] < 0.999  # level 2 alone cannot tell Glass from Misc
    assert m["ami_l2@2"] < 0.999  # the 2-prefix splits level-2 categories further
    assert m["ami_l2"] == m["ami_l2@1"]  # the headline is the first position (paper Table 1)
    assert m["ami_l3"] == m["ami_l3@1"]
    assert {"ami_path@1", "ami_path@2", "perplexity@1", "utilization@3", "diff_ratio@2",
            "collision_rate", "max_docs_per_prefix"} <= set(m)
    assert "ami_l2@3" not in m  # the de-duplicating position is not compared
    # Collisions on (l2, l3): a1/a2, t1/t2, a3/a4 (the level-4 item shares its level-3 node) and
    # r1/n1 (both lack level 2, so both get the filler prefix (9, 9)): 8 of 10 documents.
    assert m["collision_rate"] == pytest.approx(8 / 10)
    assert m["max_docs_per_prefix"] == 2.0
    assert result.timings["index_s"] >= 0.0
    assert result.details == {
        "id_length": 3, "codebook_sizes": [10, 10, 4], "n_documents": 10,
        "n_documents_l2": 8, "n_documents_l3": 7, "n_documents_path": 9,
        "indexer": {},  # what the indexer reports in its `details` (this one reports nothing)
        # Documents per used code, largest first, per position (a report's rank-frequency plot).
        "code_usage": [[4, 4, 2], [3, 2, 2, 2, 1], [6, 4]],
        # Level-2 category -> first code -> documents (the paper's Fig. 3); r1/n1 have no level 2.
        "first_code_categories": {"Sci > Lab": {"0": 4}, "Sci > Tools": {"3": 4}},
    }


def test_single_position_ids_use_prefix_length_one():
    class FlatIndexer:
        name = "flat"

        def assign_ids(self, corpus, ctx):
            return SemanticIds({d.id: (i,) for i, d in enumerate(corpus)}, codebook_sizes=(len(corpus),))

    m = IdQualityTask().evaluate(FlatIndexer(), toy_dataset(), RunContext()).metrics
    assert m["ami_l2"] == m["ami_l2@1"]
    assert "ami_l2@2" not in m


def test_skip_reasons():
    task = IdQualityTask()
    assert task.skip_reason(CategoryIndexer(), toy_dataset()) is None
    reason = task.skip_reason(Bm25Like(), toy_dataset())
    assert reason == "bm25 assigns no semantic IDs; id-quality applies to ID indexers only"
    reason = task.skip_reason(CategoryIndexer(), toy_dataset(with_categories=False))
    assert reason is not None and "no category" in reason


def test_invalid_ids_are_rejected_clearly():
    with pytest.raises(ValueError, match="bad assigned invalid semantic IDs"):
        IdQualityTask().evaluate(BadIndexer(), toy_dataset(), RunContext())


class FittingIndexer(CategoryIndexer):
    """Reports how its training fitted, as `IdIndexer` allows, once its IDs are assigned."""

    name = "fitting"

    def __init__(self, reported):
        super().__init__()
        self.reported = reported

    def assign_ids(self, corpus, ctx):
        self.fit_metrics = self.reported
        return super().assign_ids(corpus, ctx)


def test_an_indexers_fit_metrics_are_recorded_beside_the_id_metrics():
    m = IdQualityTask().evaluate(FittingIndexer({"loss_below_baseline": 0.25, "epochs": 3}), toy_dataset(),
                                 RunContext()).metrics
    assert m["fit_loss_below_baseline"] == 0.25
    assert m["fit_epochs"] == 3.0 and isinstance(m["fit_epochs"], float)
    assert m["ami_l2"] == pytest.approx(1.0)  # the ID metrics are untouched
    assert not any(name.startswith("fit_") for name in
                   IdQualityTask().evaluate(CategoryIndexer(), toy_dataset(), RunContext()).metrics)


@pytest.mark.parametrize(("reported", "message"), [
    ({"loss": float("nan")}, r"fitting.fit_metrics\['loss'\] is nan, not a finite number"),
    ({"loss": "low"}, r"fitting.fit_metrics\['loss'\] is 'low', not a finite number"),
    ({"converged": True}, r"fitting.fit_metrics\['converged'\] is True, not a finite number"),
    ([0.5], r"fitting.fit_metrics is list, not a mapping of names to numbers"),
])
def test_bad_fit_metrics_are_rejected_clearly(reported, message):
    with pytest.raises((TypeError, ValueError), match=message):
        IdQualityTask().evaluate(FittingIndexer(reported), toy_dataset(), RunContext())
