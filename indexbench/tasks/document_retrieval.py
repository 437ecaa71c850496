"""document-retrieval (paper §5.3, Table 6) on BEIR-layout data.

Train qrels supervise fine-tuning, test qrels are the evaluation; a "dev" split is used when the
dataset ships one. Generative systems additionally train on document-as-query ("indexing") pairs;
that is the generative engine's business, since it depends on the model, not on the protocol.
"""

from __future__ import annotations

from ..data import Dataset
from ..protocols import QuerySet, RetrievalProblem
from .ranking import RankingTask


def _query_set(dataset: Dataset, split: str) -> QuerySet:
    qrels = {q: dict(docs) for q, docs in dataset.qrels.get(split, {}).items()
             if any(rel > 0 for rel in docs.values())}
    return QuerySet(queries={q: dataset.queries[q] for q in qrels}, qrels=qrels)


class DocumentRetrievalTask(RankingTask):
    name = "document-retrieval"
    description = "Rank a document collection for natural-language queries (BEIR layout)."
    metrics = ("recall@1", "recall@10", "ndcg@10", "mrr@10", "recall@100")
    reference = "Jin et al. 2024 §5.3; BEIR (Thakur et al. 2021)"

    def dataset_skip_reason(self, dataset: Dataset) -> str | None:
        if not dataset.qrels.get("test"):
            return f"dataset {dataset.name} has no test qrels"
        return None

    def no_test_queries_cause(self, dataset: Dataset) -> str:
        return "no query of its test qrels has a relevance above 0 for a document of the corpus"

    def split(self, dataset: Dataset) -> tuple[RetrievalProblem, QuerySet]:
        train = _query_set(dataset, "train")
        pairs = [(train.queries[q], doc) for q, docs in train.qrels.items()
                 for doc, rel in sorted(docs.items()) if rel > 0]
        problem = RetrievalProblem(task=self.name, corpus=dataset.corpus, train_pairs=pairs,
                                   dev=_query_set(dataset, "dev"), documents_as_queries=True)
        return problem, _query_set(dataset, "test")
