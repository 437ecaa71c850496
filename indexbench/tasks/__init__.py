"""The built-in tasks. Each module holds one task: its split protocol and its metrics.

This package is a built-in plugin: the registry loads it by name and calls its hook like any
plugin's."""

from __future__ import annotations

from ..hookspecs import hookimpl


def all_tasks() -> list:
    from .document_retrieval import DocumentRetrievalTask
    from .id_quality import IdQualityTask
    from .product_search import ProductSearchTask
    from .recommendation import RecommendationTask

    return [DocumentRetrievalTask(), ProductSearchTask(), RecommendationTask(), IdQualityTask()]


@hookimpl
def register_tasks(register):
    for task in all_tasks():
        register(task)
