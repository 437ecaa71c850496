"""A recommendation history as the encoder's input: its items' titles (the LMIndexer paper's
format, the default), their semantic IDs (TIGER's), or both, with TIGER's optional user token.

``input=ids`` feeds the ID tokens of the user's last `HISTORY_ITEMS` items, oldest first, each
item as its T code tokens -- the same (position, code) tokens the decoder generates. Where the
backbone's encoder shares its token embeddings with the decoder (T5) those are the very rows the
decoder scores, as in TIGER's single vocabulary; otherwise (a BERT encoder-decoder such as
``minilm-encdec``) the encoder gets rows of its own for them (`ExtraTokenEmbedding`, trained at
``fresh_lr``). ``input=both`` puts each item's title tokens after its ID tokens. A user token,
``user_buckets > 0``, is the user id hashed into that many buckets (TIGER: 2,000) and put first.

The hash is SHA-256 of the user id, not Python's ``hash`` (salted per process), so a user keeps
its bucket from run to run and machine to machine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from ..data import Corpus, SemanticIds

HISTORY_ITEMS = 20
"""Items of a history the input keeps, the most recent ones (TIGER's cap; the text input's too)."""

TITLE_TOKENS = 16
"""Title tokens kept per item under ``input=both``."""

EXTRA_TOKENS = "extra_input_tokens"
"""Name fragment of the encoder-only token rows (`ExtraTokenEmbedding`): they start untrained."""

INPUTS = ("text", "ids", "both")
"""The values of the engine's ``input`` option."""


def user_bucket(user: str, buckets: int) -> int:
    """The user's token bucket in [0, buckets): stable across runs, processes and machines."""
    digest = hashlib.sha256(str(user).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % int(buckets)


def _extra_token_embedding_class():
    import torch

    class ExtraTokenEmbedding(torch.nn.Module):
        """An embedding table with rows appended that train apart from the original ones: ids
        below ``base`` read the original table, ids from ``base`` on the new rows."""

        def __init__(self, original: torch.nn.Embedding, extra: int, seed: int = 0):
            super().__init__()
            self.original = original
            self.base = int(original.weight.shape[0])
            weight = original.weight.detach()
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                rows = torch.randn(int(extra), weight.shape[1]) * weight.float().std().item()
            rows = rows.to(weight.device, weight.dtype)
            setattr(self, EXTRA_TOKENS, torch.nn.Parameter(rows))

        @property
        def weight(self):
            return self.original.weight

        def forward(self, input_ids):
            # Both look-ups for every token, then a select: no data-dependent branch, so no
            # device synchronisation per forward pass on a GPU.
            extra = (input_ids >= self.base).unsqueeze(-1)
            out = self.original(input_ids.clamp(max=self.base - 1))
            rows = getattr(self, EXTRA_TOKENS)[(input_ids - self.base).clamp(min=0)]
            return torch.where(extra, rows.to(out.dtype), out)

    return ExtraTokenEmbedding


def add_input_tokens(backbone: Any, user_buckets: int, seed: int = 0) -> tuple[int, int]:
    """Make ``backbone``'s encoder read the ID tokens (its vocabulary must hold them) and
    ``user_buckets`` user tokens; return (token index of (position 0, code 0), of user bucket 0)
    in the encoder's input vocabulary."""
    import torch

    vocabulary = backbone.vocabulary
    if vocabulary is None:
        raise RuntimeError("add the ID tokens (add_id_tokens) before making them an input")
    encoder = backbone.model.get_encoder()
    owner = backbone._decoder_owner()
    if encoder.get_input_embeddings() is owner.get_input_embeddings():
        # One table for encoder and decoder (T5): the input reads the decoder's own ID rows.
        first_user = int(owner.get_input_embeddings().weight.shape[0])
        if user_buckets:
            from .backbones import quiet_hf

            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                with quiet_hf():
                    owner.resize_token_embeddings(first_user + int(user_buckets))
            backbone.model.to(backbone.device)
        return vocabulary.base, first_user
    original = encoder.get_input_embeddings()
    table = _extra_token_embedding_class()(original, vocabulary.size + int(user_buckets), seed=seed)
    encoder.set_input_embeddings(table.to(backbone.device))
    backbone.fresh_parameters = (*backbone.fresh_parameters, EXTRA_TOKENS)
    return table.base, table.base + vocabulary.size


class HistoryInput:
    """Token ids of histories under one ``input`` mode, for one backbone and one set of IDs."""

    def __init__(self, backbone: Any, corpus: Corpus, ids: SemanticIds, mode: str, *,
                 user_buckets: int = 0, text_max_length: int = 64, seed: int = 0):
        if mode not in ("ids", "both"):
            raise ValueError(f"HistoryInput is for input=ids or input=both, not {mode!r}")
        self.backbone = backbone
        self.mode = mode
        self.user_buckets = int(user_buckets)
        self.text_max_length = int(text_max_length)
        self.id_base, self.user_base = add_input_tokens(backbone, self.user_buckets, seed=seed)
        offsets = [o - backbone.vocabulary.base for o in backbone.vocabulary.offsets]
        self.item_tokens = {doc: [self.id_base + offsets[t] + int(c) for t, c in enumerate(code)]
                            for doc, code in ids.ids.items()}
        self.titles: dict[str, list[int]] = {}
        if mode == "both":
            docs = list(corpus)
            texts = [d.title or d.text for d in docs]
            tokens = backbone.text.tokenize_text_only(texts, max_length=TITLE_TOKENS + len(backbone.text.prefix)
                                                      + len(backbone.text.suffix))
            self.titles = {d.id: t for d, t in zip(docs, tokens)}

    def tokens(self, history: Sequence[str], user: str | None = None) -> list[int]:
        """The encoder input of one history (item ids, oldest first): its last `HISTORY_ITEMS`
        items, the user token first when buckets are set; under ``both`` the oldest tokens go
        when the whole would exceed the ID tokens plus ``text_max_length``."""
        text = self.backbone.text
        body: list[int] = []
        for item in list(history)[-HISTORY_ITEMS:]:
            body += self.item_tokens[item]
            if self.mode == "both":
                body += self.titles.get(item, [])
        room = text.max_positions - len(text.prefix) - len(text.suffix) - (1 if self.user_buckets else 0)
        if self.mode == "both":
            ids_only = sum(len(self.item_tokens[i]) for i in list(history)[-HISTORY_ITEMS:])
            room = min(room, ids_only + self.text_max_length)
        body = body[max(0, len(body) - room):]
        user_token = [self.user_base + user_bucket(user, self.user_buckets)] if self.user_buckets and user is not None else []
        return [*text.prefix, *user_token, *body, *text.suffix]

    def batch(self, histories: Sequence[Sequence[str]], users: Sequence[str] | None = None) -> list[list[int]]:
        users = list(users) if users is not None else [None] * len(histories)
        return [self.tokens(h, u) for h, u in zip(histories, users)]


__all__ = ["EXTRA_TOKENS", "HISTORY_ITEMS", "INPUTS", "TITLE_TOKENS", "HistoryInput", "add_input_tokens",
           "user_bucket"]
