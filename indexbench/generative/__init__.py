"""The generative-retrieval engine: turns any ID indexer's semantic IDs into a retriever.

An ID indexer only says which ID each document gets (`IdIndexer.assign_ids`). The engine does the
rest, once for every such indexer: it loads a seq2seq backbone (`backbones`), gives it one new
token per (position, code) (`id_tokens`), fine-tunes it to map query text to the relevant
document's ID (`training`), and decodes with a beam search constrained to the corpus's valid IDs
(`decoding`), ranking documents by the score of their ID (`retriever`).

What other methods build on (the public engine API; each name is loaded on first use, so
importing this package stays cheap -- modules import torch and transformers lazily too):

* `GenerativeOptions` -- the engine's options, for an ID indexer's config to inherit;
  `cache_key_options` -- the options a trained model's cache key holds; `PRESETS` -- the named
  recipes (``preset=tiger``).
* `load_backbone(name, device=, seed=, decoder_layers=)` -- a registered backbone or a local
  checkpoint, as a `Seq2SeqBackbone`.
* `train_seq2seq` -- the training loop (AdamW, warm-up and decay, length-split batches, sharded
  across processes under torchrun); `cached_training` -- run it once per cache key and load the
  weights back after; `dev_check` -- recall@10 on dev queries during training.
* `decoder_features`, `prefix_states`, `group_means`, `set_code_rows` -- the decoder's state at
  an ID position, and writing code rows into the ID-token embeddings (the first-position warm
  start; LMIndexer's codebooks).
* `score_all_ids` -- exact log P(ID | input) of a whole catalogue of IDs, each input encoded and
  its cross-attention computed once: the reference a beam search is checked against.
* `HistoryInput`, `user_bucket` -- a recommendation history as ID tokens (``input=ids``/``both``)
  and the stable hash of a user into token buckets (`history_input`).
* `search_ngrams_batched`, `text_batch_loss`, `lexical_text_head` -- generation constrained to
  the corpus's n-grams, its training loss, and a text head warm-started from the encoder's
  lexical map (SEAL's engine, for any method that generates corpus text).
"""

from importlib import import_module

_API = {
    "GenerativeOptions": "options", "cache_key_options": "options", "PRESETS": "presets",
    "Seq2SeqBackbone": "backbones", "load_backbone": "backbones",
    "train_seq2seq": "training", "cached_training": "engine", "dev_check": "engine",
    "decoder_features": "id_init", "prefix_states": "id_init", "group_means": "id_init", "set_code_rows": "id_init",
    "score_all_ids": "exact",
    "HistoryInput": "history_input", "user_bucket": "history_input",
    "search_ngrams_batched": "ngram_decoding", "text_batch_loss": "ngram_decoding", "lexical_text_head": "text_head",
}

__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        return getattr(import_module(f"{__name__}.{_API[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
