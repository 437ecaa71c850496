"""LMIndexer's trainable pieces and losses (paper §3.1-3.2), on top of the engine's backbone.

* `straight_through` -- the codebook look-up of Eq. 6: the argmax code's row forward, the
  softmax-weighted rows backward, so the reconstruction loss reaches the semantic encoder.
* `Reconstructor` -- the shallow bidirectional Transformer of Eq. 4-5/7: queries are the
  normalised ID vectors, positions enter as a T5 relative-position bias, keys and values are the
  hint tokens each prediction may see (`sample_visibility`); every token is predicted through
  the (tied) token-embedding matrix W.
* `prefix_contrastive_loss` (Eq. 9) and `commitment_loss` (Eq. 10).

The codebook E^t *is* the backbone's ID-token rows of position t (the output head's rows, tied to
the decoder's input embeddings in the built-in backbones): P_s of Eq. 2 is then exactly the
distribution the engine's constrained search ranks by, and the downstream fine-tuning (Eq. 14)
starts from the learned codebooks with nothing to copy.

torch is imported at module level: only `indexbench_lmindexer._algorithm` imports this module,
inside `assign_ids`.
"""

from __future__ import annotations

import math

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


def prefix_contrastive_loss(h: torch.Tensor, positive: torch.Tensor, prefixes: torch.Tensor,
                            temperature: float) -> torch.Tensor:
    """Eq. 9, averaged over the batch, with a real positive pair: each document's h against
    ``positive`` -- the h of the same document from a second, independently dropped-out pass
    (SimCSE, as the authors' code does) -- and against the h of the other documents of the batch
    that share its ID prefix ``prefixes`` (B, t); with t = 0 all of them do.

    (Eq. 9 as printed puts h·h in the numerator: a constant for normalised h, so only its
    push-apart term would act.) ``temperature`` > 0 scores pairs by cosine / temperature; 0 by
    the raw dot product. Documents that share their prefix with no other document of the batch
    still learn from their positive pair.
    """
    h, positive = h.float(), positive.float()
    if temperature > 0:
        sim = F.normalize(h, dim=-1) @ F.normalize(positive, dim=-1).T / temperature
    else:
        sim = h @ positive.T
    same = (prefixes[:, None, :] == prefixes[None, :, :]).all(dim=-1)
    return F.cross_entropy(sim.masked_fill(~same, float("-inf")), torch.arange(len(h), device=h.device))


def commitment_loss(position_logits: list[torch.Tensor], prefixes: torch.Tensor) -> torch.Tensor:
    """Eq. 10, averaged over the batch: Σ_{j<t} -log P_s(c^j | d, c^{<j}) for the fixed earlier
    codes ``prefixes`` (B, t), ``position_logits[j]`` being position j's (B, K) logits."""
    total = prefixes.new_zeros((), dtype=torch.float32)
    for j, logits in enumerate(position_logits):
        total = total + F.cross_entropy(logits.float(), prefixes[:, j])
    return total


def sample_visibility(attention_mask: torch.Tensor, special: torch.Tensor, ratio: float,
                      generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Which tokens the reconstructor predicts, and which hints each prediction sees.

    Returns ``targets`` (B, L bool: every real token that is not special) and ``visible``
    (B, L, L bool): ``visible[b, i, j]`` says whether the prediction of token i of document b may
    read token j. Each row draws its own hints -- every other real token with probability
    ``ratio``, and the special tokens ([CLS], [SEP]) always -- and never sees its own token, as
    in the authors' collator (each token row gets its own random mask with the token itself
    hidden). ``ratio`` = 1 shows every token but the target: the reconstructor warm-up's
    context in the authors' code (their mask probability 0)."""
    real = attention_mask.bool()
    b, length = real.shape
    draw = torch.rand((b, length, length), generator=generator, device="cpu").to(real.device)
    visible = real[:, None, :] & (special[:, None, :] | (draw < ratio))
    visible &= ~torch.eye(length, dtype=torch.bool, device=real.device)
    return real & ~special, visible


def relative_position_buckets(length: int, num_buckets: int = 32, max_distance: int = 128,
                              device=None) -> torch.Tensor:
    """(L, L) bucket of the signed distance key - query, T5's bidirectional scheme: half the
    buckets per direction, exact for small distances, logarithmic up to ``max_distance``."""
    positions = torch.arange(length, device=device)
    relative = positions[None, :] - positions[:, None]
    half = num_buckets // 2
    exact = half // 2
    distance = relative.abs()
    far = exact + (torch.log(distance.clamp(min=1).float() / exact) / math.log(max_distance / exact)
                   * (half - exact)).long()
    far = far.clamp(max=half - 1)
    return (relative > 0).long() * half + torch.where(distance < exact, distance, far)


def locality_bias(num_buckets: int, heads: int, max_distance: int) -> torch.Tensor:
    """(buckets, heads) start of the relative-position bias: -slope_h * log(1 + distance), the
    slopes halving from head to head (4, 2, 1, ...; ALiBi's idea in a log scale). A fresh
    reconstructor then already weights a target's neighbours above far tokens, differently per
    head (the last heads nearly uniform: a bag of words), so its positions differ from the first
    step whatever the ID; T5 starts the bias near zero and has to learn all of that."""
    distances = torch.arange(max_distance * 2 + 1) - max_distance
    buckets = relative_position_buckets(2 * max_distance + 1, num_buckets, max_distance)[max_distance]
    nearest = torch.full((num_buckets,), float(max_distance))
    for bucket, distance in zip(buckets.tolist(), distances.abs().tolist()):
        nearest[bucket] = min(nearest[bucket], distance)
    slopes = 4.0 * 0.5 ** torch.arange(heads, dtype=torch.float32)
    return -torch.log1p(nearest)[:, None] * slopes[None, :]


class ReconstructorLayer(nn.Module):
    """Cross-attention from the query stream to the hints under an additive bias (relative
    positions and visibility), then a feed-forward block (post-norm, as in BERT)."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.output = nn.Linear(dim, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.feed_forward = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.norm2 = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def _split(self, x):
        n, length, dim = x.shape
        return x.view(n, length, self.heads, dim // self.heads).transpose(1, 2)

    def forward(self, queries, keys_values, bias):
        n, length, dim = queries.shape
        attended = F.scaled_dot_product_attention(
            self._split(self.query(queries)), self._split(self.key(keys_values)),
            self._split(self.value(keys_values)), attn_mask=bias.to(queries.dtype),
            dropout_p=self.dropout.p if self.training else 0.0)
        attended = self.output(attended.transpose(1, 2).reshape(n, length, dim))
        x = self.norm1(queries + self.dropout(attended))
        return self.norm2(x + self.dropout(self.feed_forward(x)))


QUERY_POSITIONS = ("relative", "absolute")


class Reconstructor(nn.Module):
    """Predict a document's tokens from its ID vectors and the hint tokens each one may see.

    Eq. 5/7: for each ID vector c^s the layers attend from a query stream to the hints (token
    embeddings), and the streams are summed over s (z_w = Σ_t Trans(q = c^t, k = d_h, v = d_h)).
    The query of token i is the *normalised* ID vector -- LayerNorm(proj(c)) -- so that the ID's
    scale (a codebook row of norm 32 at position 1) cannot drown where the query is:

    * ``query_positions="relative"`` (default, as the authors' T5 reconstructor): no position is
      added to the query; a learned bias per head and T5 relative-distance bucket between token i
      and hint j tells the attention where it is.
    * ``"absolute"``: a learned position embedding P[i] (unit scale) is added after the
      normalisation, and P[j] to the normalised hints.

    With no ID vectors a learned vector stands in for them. z is scored against the
    token-embedding matrix W, which the caller passes in (the backbone's encoder embeddings).
    """

    def __init__(self, dim: int, id_dim: int, vocab_size: int, *, layers: int = 1, heads: int = 0,
                 max_length: int = 512, dropout: float = 0.1, predictable=None,
                 query_positions: str = "relative", buckets: int = 32, max_distance: int = 128):
        super().__init__()
        if query_positions not in QUERY_POSITIONS:
            raise ValueError(f"query_positions must be one of {QUERY_POSITIONS}, got {query_positions!r}")
        heads = heads or max(1, dim // 64)
        self.query_positions = query_positions
        self.max_length = max_length
        self.buckets, self.max_distance = buckets, max_distance
        self.project = nn.Identity() if id_dim == dim else nn.Linear(id_dim, dim)
        self.query_norm = nn.LayerNorm(dim)
        self.no_id = nn.Parameter(torch.zeros(dim))
        self.embed_norm = nn.LayerNorm(dim)
        if query_positions == "absolute":
            # Unit scale, like the normalised ID and hint vectors they are added to (BERT's 0.02
            # would leave positions 2 % of the query: a codebook row's scale problem again).
            self.positions = nn.Embedding(max_length, dim)
            nn.init.normal_(self.positions.weight, std=1.0)
        else:
            self.relative_bias = nn.Embedding(buckets, heads)
            with torch.no_grad():
                self.relative_bias.weight.copy_(locality_bias(buckets, heads, max_distance))
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

    def streams(self, id_vectors: torch.Tensor, token_ids: torch.Tensor, visible: torch.Tensor,
                word_embeddings: torch.Tensor) -> torch.Tensor:
        """z (B, L, dim): the summed output of every stream at every token position."""
        b, length = token_ids.shape
        s = max(id_vectors.shape[1], 1)
        if id_vectors.shape[1]:
            queries = self.query_norm(self.project(id_vectors.to(word_embeddings.dtype)))  # (B, S, dim)
        else:
            queries = self.no_id.expand(b, 1, -1)
        queries = queries[:, :, None, :].expand(b, s, length, -1)
        # F.embedding, not word_embeddings[token_ids]: on the CPU the backward of advanced indexing
        # accumulates repeated rows in a thread-dependent order (index_put_ with accumulate), so
        # two runs with one seed drifted apart from the first phase that trains W on.
        keys_values = self.embed_norm(F.embedding(token_ids, word_embeddings))
        # Hidden hints get a large finite penalty, not -inf: a row with nothing visible (padding)
        # then attends uniformly instead of producing NaN, and it is never a target.
        bias = torch.zeros(visible.shape, dtype=torch.float32, device=token_ids.device)
        bias = bias.masked_fill(~visible, -1e9)[:, None]  # (B, 1, L, L)
        if self.query_positions == "absolute":
            positions = self.positions.weight[:length]
            queries = queries + positions
            keys_values = keys_values + positions
        else:
            buckets = relative_position_buckets(length, self.buckets, self.max_distance, token_ids.device)
            bias = bias + self.relative_bias(buckets).permute(2, 0, 1)[None].float()  # (B, H, L, L)
        x = queries.reshape(b * s, length, -1)
        keys_values = keys_values.repeat_interleave(s, dim=0)
        bias = bias.repeat_interleave(s, dim=0)
        for layer in self.layers:
            x = layer(x, keys_values, bias)
        return x.reshape(b, s, length, -1).sum(dim=1)

    def forward(self, id_vectors: torch.Tensor, token_ids: torch.Tensor, targets: torch.Tensor,
                visible: torch.Tensor, word_embeddings: torch.Tensor):
        """Logits (M, V') over the predictable tokens for the M ``targets`` (row-major), and each
        one's index among the predictable tokens (M,) -- its token id when all are predictable.

        ``id_vectors`` (B, S, id_dim), S >= 0; ``token_ids``/``targets`` (B, L); ``visible``
        (B, L, L) from `sample_visibility`; ``word_embeddings`` (V, dim), V the ``vocab_size``
        given at construction.
        """
        if not bool(targets.any()):
            return word_embeddings.new_zeros((0, len(self.predictable))), token_ids.new_zeros((0,))
        z = self.streams(id_vectors, token_ids, visible, word_embeddings)
        logits = self.out_norm(z[targets]) @ word_embeddings.index_select(0, self.predictable).T + self.out_bias
        return logits, self.lookup[token_ids[targets]]


def init_from_bert(reconstructor: Reconstructor, encoder) -> bool:
    """Start the reconstructor from a BERT encoder's first layers (and, with absolute query
    positions, its position embeddings) when the shapes allow (the built-in minilm-encdec);
    return whether it did.

    Its job -- contextual token prediction from visible tokens -- is what the encoder's first
    layers already do, so their self-attention weights become its cross-attention (queries: the
    ID stream, keys/values: the hints). It still trains from there. Not the default: on
    amazon-scientific the IDs collapsed during train@1 with it (benchmarks/LOG.md).
    """
    embeddings = getattr(encoder, "embeddings", None)
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    positions = getattr(embeddings, "position_embeddings", None)
    if positions is None or layers is None or len(layers) < len(reconstructor.layers):
        return False
    ours_positions = getattr(reconstructor, "positions", None)
    if ours_positions is not None and (positions.weight.shape[1] != ours_positions.weight.shape[1]
                                       or ours_positions.weight.shape[0] > positions.weight.shape[0]):
        return False
    for ours, theirs in zip(reconstructor.layers, layers):
        if ours.heads != getattr(encoder.config, "num_attention_heads", None) \
                or ours.feed_forward[0].weight.shape != theirs.intermediate.dense.weight.shape:
            return False
    with torch.no_grad():
        if ours_positions is not None:
            rows = ours_positions.weight.shape[0]
            token_type = embeddings.token_type_embeddings.weight[0] if hasattr(embeddings, "token_type_embeddings") else 0
            ours_positions.weight.copy_(positions.weight[:rows] + token_type)
        reconstructor.embed_norm.load_state_dict(embeddings.LayerNorm.state_dict())
        for ours, theirs in zip(reconstructor.layers, layers):
            attention = theirs.attention
            ours.query.load_state_dict(attention.self.query.state_dict())
            ours.key.load_state_dict(attention.self.key.state_dict())
            ours.value.load_state_dict(attention.self.value.state_dict())
            ours.output.load_state_dict(attention.output.dense.state_dict())
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
           "relative_position_buckets", "sample_visibility", "straight_through"]
