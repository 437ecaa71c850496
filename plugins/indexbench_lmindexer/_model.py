"""LMIndexer's trainable pieces and losses (paper §3.1-3.2), on top of the engine's backbone.

* `straight_through` -- the codebook look-up of Eq. 6: the argmax code's row forward, the
  softmax-weighted rows backward, so the reconstruction loss reaches the semantic encoder.
* `Reconstructor` -- the shallow bidirectional Transformer of Eq. 4-5/7: queries are the ID
  vectors (plus a position embedding per document token), keys and values the visible hint
  tokens; the masked tokens are predicted through the (tied) token-embedding matrix W.
* `prefix_contrastive_loss` (Eq. 9) and `commitment_loss` (Eq. 10).

The codebook E^t *is* the backbone's ID-token rows of position t (the output head's rows, tied to
the decoder's input embeddings in the built-in backbones): P_s of Eq. 2 is then exactly the
distribution the engine's constrained search ranks by, and the downstream fine-tuning (Eq. 14)
starts from the learned codebooks with nothing to copy.

torch is imported at module level: only `indexbench_lmindexer._schedule` imports this module,
inside `assign_ids`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def straight_through(logits: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Eq. 6: ``codebook[argmax(logits)]`` in the forward pass; in the backward pass the gradient
    of ``softmax(logits) @ codebook`` (to the logits, hence h, and to the codebook)."""
    probs = torch.softmax(logits.float(), dim=-1)
    soft = probs @ codebook.float()
    hard = codebook[logits.argmax(dim=-1)].float()
    return soft + (hard - soft).detach()


def prefix_contrastive_loss(h: torch.Tensor, prefixes: torch.Tensor, temperature: float) -> torch.Tensor:
    """Eq. 9, averaged over the batch: each document's h against the h of the other documents
    of the batch that share its ID prefix ``prefixes`` (B, t); with t = 0 all of them do.

    ``temperature`` > 0 scores pairs by cosine / temperature; 0 by the raw dot product, as
    written in the paper. (Raw dot products of 384-d features have self-similarities in the
    hundreds, far above any other pair's, so the loss is ~0 and teaches nothing: hence the
    cosine default, see `LMIndexerConfig.contrastive_temperature`.) A document that shares its
    prefix with no other document of the batch contributes exactly 0.
    """
    h = h.float()
    if temperature > 0:
        h = F.normalize(h, dim=-1)
        sim = h @ h.T / temperature
    else:
        sim = h @ h.T
    same = (prefixes[:, None, :] == prefixes[None, :, :]).all(dim=-1)
    denominator = torch.logsumexp(sim.masked_fill(~same, float("-inf")), dim=1)
    return (denominator - sim.diagonal()).mean()


def commitment_loss(position_logits: list[torch.Tensor], prefixes: torch.Tensor) -> torch.Tensor:
    """Eq. 10, averaged over the batch: Σ_{j<t} -log P_s(c^j | d, c^{<j}) for the fixed earlier
    codes ``prefixes`` (B, t), ``position_logits[j]`` being position j's (B, K) logits."""
    total = prefixes.new_zeros((), dtype=torch.float32)
    for j, logits in enumerate(position_logits):
        total = total + F.cross_entropy(logits.float(), prefixes[:, j])
    return total


def sample_hints(attention_mask: torch.Tensor, special: torch.Tensor, ratio: float,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Which tokens the reconstructor sees (B, L bool): every special token ([CLS], [SEP]), and
    each other real token with probability ``ratio``. The others are the tokens to predict."""
    draw = torch.rand(attention_mask.shape, generator=generator, device="cpu").to(attention_mask.device)
    return attention_mask.bool() & (special | (draw < ratio))


class ReconstructorLayer(nn.Module):
    """Cross-attention from the query stream to the hints, then a feed-forward block (post-norm,
    as in BERT)."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.norm1 = nn.LayerNorm(dim)
        self.feed_forward = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.norm2 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, queries, keys_values, ignore):
        attended, _ = self.attention(queries, keys_values, keys_values, key_padding_mask=ignore,
                                     need_weights=False)
        x = self.norm1(queries + self.dropout(attended))
        return self.norm2(x + self.dropout(self.feed_forward(x)))


class Reconstructor(nn.Module):
    """Predict a document's masked tokens from its ID vectors and the visible hint tokens.

    For each document token position i and each ID vector c^s: query = proj(c^s) + P[i]; the
    layers attend from the queries to the hints (token embedding + P), and the streams are summed
    over s (Eq. 5: z_w = Σ_t Trans(q = c^t, k = d_h, v = d_h)). With no ID vectors (the warm-up
    of Eq. 12) the single stream is P[i] alone. z is scored against the token-embedding matrix W,
    which the caller passes in (the backbone's encoder embeddings, so they stay tied).
    """

    def __init__(self, dim: int, id_dim: int, vocab_size: int, *, layers: int = 1, heads: int = 0,
                 max_length: int = 512, dropout: float = 0.1, predictable=None):
        super().__init__()
        heads = heads or max(1, dim // 64)
        self.positions = nn.Embedding(max_length, dim)
        self.embed_norm = nn.LayerNorm(dim)  # over token + position, as BERT's embeddings do
        self.project = nn.Identity() if id_dim == dim else nn.Linear(id_dim, dim)
        self.layers = nn.ModuleList(ReconstructorLayer(dim, heads, dropout) for _ in range(layers))
        self.out_norm = nn.LayerNorm(dim)
        # The output vocabulary: every token, or only ``predictable`` (the token ids that occur in
        # the corpus -- no other can ever be a target, and on amazon-scientific they are a third
        # of MiniLM's 30,522, so the softmax costs a third).
        if predictable is None:
            predictable = torch.arange(vocab_size)
        predictable = torch.as_tensor(predictable, dtype=torch.long).unique()
        lookup = torch.full((vocab_size,), -1, dtype=torch.long)
        lookup[predictable] = torch.arange(len(predictable))
        self.register_buffer("predictable", predictable, persistent=False)
        self.register_buffer("lookup", lookup, persistent=False)
        self.out_bias = nn.Parameter(torch.zeros(len(predictable)))
        nn.init.normal_(self.positions.weight, std=0.02)

    def forward(self, id_vectors: torch.Tensor, token_ids: torch.Tensor, attention_mask: torch.Tensor,
                hints: torch.Tensor, word_embeddings: torch.Tensor):
        """Logits (M, V') over the predictable tokens for the M tokens to predict, and each
        one's index among the predictable tokens (M,) -- its token id when all are predictable.

        ``id_vectors`` (B, S, id_dim), S >= 0; ``token_ids``/``attention_mask``/``hints`` (B, L);
        ``word_embeddings`` (V, dim), V the ``vocab_size`` given at construction.
        """
        b, length = token_ids.shape
        targets = attention_mask.bool() & ~hints
        counts = targets.sum(dim=1)
        m = int(counts.max()) if b else 0
        if m == 0:
            return word_embeddings.new_zeros((0, len(self.predictable))), token_ids.new_zeros((0,))
        # Queries never attend to each other, so only the tokens to predict need one: their
        # positions, row by row in order, padded to the longest row (valid marks the real ones).
        order = torch.argsort((~targets).to(torch.int8), dim=1, stable=True)[:, :m]
        valid = torch.arange(m, device=token_ids.device)[None, :] < counts[:, None]
        streams = max(id_vectors.shape[1], 1)
        keys_values = self.embed_norm(word_embeddings[token_ids] + self.positions.weight[:length])
        query_pos = self.positions(order)  # (B, m, dim)
        if id_vectors.shape[1]:
            queries = self.project(id_vectors.to(query_pos.dtype))[:, :, None, :] + query_pos[:, None]
        else:
            queries = query_pos[:, None]
        queries = self.embed_norm(queries)
        x = queries.reshape(b * streams, m, -1)
        keys_values = keys_values.repeat_interleave(streams, dim=0)
        ignore = (~hints).repeat_interleave(streams, dim=0)
        for layer in self.layers:
            x = layer(x, keys_values, ignore)
        z = x.reshape(b, streams, m, -1).sum(dim=1)
        logits = self.out_norm(z[valid]) @ word_embeddings[self.predictable].T + self.out_bias
        return logits, self.lookup[token_ids.gather(1, order)[valid]]


def init_from_bert(reconstructor: Reconstructor, encoder) -> bool:
    """Start the reconstructor from a BERT encoder's embeddings and first layers, when the shapes
    allow (the built-in minilm-encdec); return whether it did.

    A randomly initialised reconstructor learns slowly: on amazon-scientific 300 warm-up steps
    left it near unigram level (reconstruction macro-F1 < 0.01), and a collapsed reconstructor
    sends the indexer noise (paper §3.2). Its job -- contextual token prediction from visible
    tokens -- is what the encoder's first layers already do, so their self-attention weights
    become its cross-attention (queries: position [+ ID], keys/values: the hints) and its
    position embeddings MiniLM's. It still trains from there.
    """
    embeddings = getattr(encoder, "embeddings", None)
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    positions = getattr(embeddings, "position_embeddings", None)
    if positions is None or layers is None or len(layers) < len(reconstructor.layers):
        return False
    if positions.weight.shape[1] != reconstructor.positions.weight.shape[1] \
            or reconstructor.positions.weight.shape[0] > positions.weight.shape[0]:
        return False
    for ours, theirs in zip(reconstructor.layers, layers):
        if ours.attention.num_heads != getattr(encoder.config, "num_attention_heads", None) \
                or ours.feed_forward[0].weight.shape != theirs.intermediate.dense.weight.shape:
            return False
    with torch.no_grad():
        rows = reconstructor.positions.weight.shape[0]
        token_type = embeddings.token_type_embeddings.weight[0] if hasattr(embeddings, "token_type_embeddings") else 0
        reconstructor.positions.weight.copy_(positions.weight[:rows] + token_type)
        reconstructor.embed_norm.load_state_dict(embeddings.LayerNorm.state_dict())
        for ours, theirs in zip(reconstructor.layers, layers):
            attention = theirs.attention
            ours.attention.in_proj_weight.copy_(torch.cat([attention.self.query.weight, attention.self.key.weight,
                                                           attention.self.value.weight]))
            ours.attention.in_proj_bias.copy_(torch.cat([attention.self.query.bias, attention.self.key.bias,
                                                         attention.self.value.bias]))
            ours.attention.out_proj.load_state_dict(attention.output.dense.state_dict())
            ours.norm1.load_state_dict(attention.output.LayerNorm.state_dict())
            ours.feed_forward[0].load_state_dict(theirs.intermediate.dense.state_dict())
            ours.feed_forward[2].load_state_dict(theirs.output.dense.state_dict())
            ours.norm2.load_state_dict(theirs.output.LayerNorm.state_dict())
    return True


def reconstruction_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Eq. 4 / 8 as a mean over the predicted tokens (0 when the batch has none)."""
    if targets.numel() == 0:
        return logits.new_zeros(())
    return F.cross_entropy(logits.float(), targets)


__all__ = ["Reconstructor", "commitment_loss", "init_from_bert", "prefix_contrastive_loss", "reconstruction_loss",
           "sample_hints", "straight_through"]
