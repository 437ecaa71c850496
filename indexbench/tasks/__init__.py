"""The built-in tasks. Each module holds one task: its split protocol and its metrics."""

from __future__ import annotations


def all_tasks() -> list:
    from .document_retrieval import DocumentRetrievalTask
    from .id_quality import IdQualityTask
    from .product_search import ProductSearchTask
    from .recommendation import RecommendationTask

    return [DocumentRetrievalTask(), ProductSearchTask(), RecommendationTask(), IdQualityTask()]
