"""The SASRec network (Kang & McAuley, ICDM 2018, §III): item embeddings scaled by sqrt(d) plus
learned absolute positions, pre-norm self-attention blocks with a causal mask, a final layer norm,
and scores as dot products with the same item embeddings (shared input/output table).

Sequences are right-aligned in a window of ``max_len`` (the most recent item at the last
position, padding = item 0 on the left), as in the authors' code, so an item's position
embedding says how far back it is. Padded positions are zeroed after the embedding and are
masked as attention keys; each position may always attend to itself, so no row of the mask is
empty (an all-masked row would give NaN).
"""

from __future__ import annotations

import math

import torch
from torch import nn


class SASRecModel(nn.Module):
    def __init__(self, n_items: int, hidden: int, blocks: int, heads: int, max_len: int, dropout: float):
        super().__init__()
        self.max_len = max_len
        self.heads = heads
        self.items = nn.Embedding(n_items + 1, hidden, padding_idx=0)
        self.positions = nn.Embedding(max_len, hidden)
        self.dropout = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(hidden, heads, dim_feedforward=hidden, dropout=dropout,
                                           activation="relu", batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, blocks, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(hidden)
        # The authors' initialisation (Xavier normal); torch's N(0, 1) embeddings times sqrt(d)
        # would start the attention logits far out of range.
        for param in self.parameters():
            if param.dim() > 1:
                nn.init.xavier_normal_(param)
        with torch.no_grad():
            self.items.weight[0].zero_()

    def forward(self, sequences: torch.Tensor) -> torch.Tensor:
        """(B, L) right-aligned item indexes (0 = padding), L <= max_len -> (B, L, hidden)."""
        batch, length = sequences.shape
        padding = sequences == 0
        positions = torch.arange(self.max_len - length, self.max_len, device=sequences.device)
        x = self.items(sequences) * math.sqrt(self.items.embedding_dim) + self.positions(positions)
        x = self.dropout(x) * (~padding).unsqueeze(-1)
        future = torch.ones(length, length, dtype=torch.bool, device=sequences.device).triu(1)
        blocked = future.unsqueeze(0) | padding.unsqueeze(1)
        blocked &= ~torch.eye(length, dtype=torch.bool, device=sequences.device).unsqueeze(0)
        mask = blocked.repeat_interleave(self.heads, dim=0)
        return self.norm(self.blocks(x, mask=mask))

    def item_scores(self, states: torch.Tensor) -> torch.Tensor:
        """(..., hidden) -> (..., n_items): column i scores item index i + 1."""
        return states @ self.items.weight[1:].T
