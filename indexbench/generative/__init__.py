"""The generative-retrieval engine: turns any ID indexer's semantic IDs into a retriever.

An ID indexer only says which ID each document gets (`IdIndexer.assign_ids`). The engine does the
rest, once for every such indexer: it loads a seq2seq backbone (`backbones`), gives it one new
token per (position, code) (`id_tokens`), fine-tunes it to map query text to the relevant
document's ID (`training`), and decodes with a beam search constrained to the corpus's valid IDs
(`decoding`), ranking documents by the score of their ID (`retriever`).

Modules import torch and transformers lazily; importing this package is cheap.
"""

from .options import GenerativeOptions

__all__ = ["GenerativeOptions"]
