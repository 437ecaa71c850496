"""Text → padded token-id tensors, with a choice of which end of a long text to keep.

Hugging Face tokenizers truncate one side per tokenizer object; indexbench needs both per call
(recommendation histories keep their most recent, final items; documents keep their beginning)
while always keeping the special tokens. `TextTokenizer` wraps any HF tokenizer to do that.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

Truncation = Literal["right", "left"]


def special_template(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The special tokens a tokenizer puts before and after a single text ([CLS] … [SEP], … </s>)."""
    plain = tokenizer("a", add_special_tokens=False)["input_ids"]
    full = tokenizer("a", add_special_tokens=True)["input_ids"]
    for i in range(len(full) - len(plain) + 1):
        if full[i : i + len(plain)] == plain:
            return list(full[:i]), list(full[i + len(plain):])
    return [], []


def token_idf(doc_tokens: Sequence[Sequence[int]], size: int | None = None):
    """A numpy array of each token id's inverse document frequency log(N / df) over the
    tokenised documents (0 for a token in every document; log N for one in none). ``size``:
    the array's length, tokens at or beyond it ignored (default: the largest id + 1)."""
    import numpy as np

    if size is None:
        size = 1 + max((max(doc) for doc in doc_tokens if len(doc)), default=-1)
    df = np.zeros(size, dtype=np.float64)
    for doc in doc_tokens:
        ids = np.unique(np.asarray(doc, dtype=np.int64))
        df[ids[ids < size]] += 1.0
    return np.log(max(1, len(doc_tokens)) / np.maximum(df, 1.0))


class TextTokenizer:
    def __init__(self, tokenizer: Any, max_positions: int = 512):
        self.tokenizer = tokenizer
        self.max_positions = max_positions
        self.prefix, self.suffix = special_template(tokenizer)
        pad = getattr(tokenizer, "pad_token_id", None)
        self.pad_id = 0 if pad is None else int(pad)

    def tokenize(self, texts: Sequence[str], *, max_length: int,
                 truncation: Truncation = "right") -> list[list[int]]:
        """Token ids per text (special tokens included), at most ``max_length`` of them.

        ``truncation="right"`` keeps the beginning of a long text, ``"left"`` its end.
        """
        if truncation not in ("right", "left"):
            raise ValueError(f"truncation must be 'right' or 'left', got {truncation!r}")
        max_length = min(int(max_length), self.max_positions)
        budget = max_length - len(self.prefix) - len(self.suffix)
        if budget < 1:
            raise ValueError(f"max_length {max_length} leaves no room for text")
        if not texts:
            return []
        raw = self.tokenizer(list(texts), add_special_tokens=False, truncation=False,
                             verbose=False)["input_ids"]
        out = []
        for ids in raw:
            if len(ids) > budget:
                ids = ids[:budget] if truncation == "right" else ids[len(ids) - budget:]
            out.append(self.prefix + list(ids) + self.suffix)
        return out

    def tokenize_text_only(self, texts: Sequence[str], *, max_length: int,
                           truncation: Truncation = "right") -> list[list[int]]:
        """`tokenize` without the special tokens: the same text tokens (room for the special
        tokens is still left in ``max_length``), for what holds text alone -- an index of the
        corpus's n-grams, target spans."""
        head, tail = len(self.prefix), len(self.suffix)
        return [ids[head : len(ids) - tail]
                for ids in self.tokenize(texts, max_length=max_length, truncation=truncation)]

    def collate(self, batch: Sequence[Sequence[int]], device: str = "cpu"):
        """Right-pad token-id lists into (input_ids, attention_mask) long tensors on ``device``."""
        import torch

        width = max(len(ids) for ids in batch)
        input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            mask[row, : len(ids)] = 1
        return input_ids.to(device), mask.to(device)


__all__ = ["TextTokenizer", "Truncation", "special_template", "token_idf"]
