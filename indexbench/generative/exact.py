"""Exact scoring of a whole catalogue of IDs: log P(ID | input) of every item for one input,
the reference a constrained beam search is checked against (`benchmarks/beam_vs_exact.py`).

Scoring 12k IDs against one input is a batch of 12k teacher-forced decoder rows that all attend
to the same encoder states. Two things make it cheap, and neither changes a score:

* the input's cross-attention keys and values are computed once (one decoder step on the start
  token) and handed to every row through the decoder cache with a batch of 1, instead of
  projecting the same encoder states once per row;
* while scoring, the model's attention runs through `shared_input_attention`, registered with
  transformers' ``AttentionInterface``: against keys/values of batch 1 it computes one product per
  head over all the rows, where the stock kernels first copy the keys and values to every row
  (about 1 MB a row for TIGER's model: 12 GB of copying per user). Every other call -- the
  decoder's self-attention, the encoder -- goes to transformers' SDPA function unchanged.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

from .backbones import Seq2SeqBackbone
from .decoding import decoder_inputs, id_log_probs, score_ids

SHARED_INPUT_ATTENTION = "indexbench_shared_input"
"""The name `shared_input_attention` is registered under (attention and mask interfaces)."""


def score_all_ids(backbone: Seq2SeqBackbone, input_ids, attention_mask, codes, chunk: int = 4096,
                  shared: bool | None = None):
    """log P(ID | input) of every row of ``codes`` (N, T) under every input: (B, N).

    ``shared``: attend to each input's keys/values once for all rows (the default where this
    transformers offers what that needs, `can_share_input_attention`), or with the model's own
    attention on per-row copies -- the same scores, a few times slower."""
    import torch

    if shared is None:
        shared = can_share_input_attention()
    encoded = backbone.encode(input_ids, attention_mask)
    codes = torch.as_tensor(codes, dtype=torch.long, device=encoded.device)
    out = torch.empty((encoded.shape[0], codes.shape[0]), device=encoded.device)
    start = torch.full((1, 1), backbone.decoder_start_token_id, dtype=torch.long, device=encoded.device)
    with attention_over_one_input(backbone.model) if shared else nullcontext():
        for q in range(encoded.shape[0]):
            row_encoded, row_mask = encoded[q : q + 1], attention_mask[q : q + 1]
            if shared:
                _, filled = backbone.decode(start, row_encoded, row_mask, backbone.new_cache())
            for lo in range(0, codes.shape[0], chunk):
                part = codes[lo : lo + chunk]
                n = part.shape[0]
                if not shared:
                    out[q, lo : lo + n] = score_ids(backbone, None, row_mask.expand(n, -1), part,
                                                    encoded=row_encoded.expand(n, -1, -1))
                    continue
                hidden, _ = backbone.decode(decoder_inputs(backbone, part), row_encoded.expand(n, -1, -1),
                                            row_mask.expand(n, -1), shared_cross_attention(filled))
                out[q, lo : lo + n] = id_log_probs(backbone, hidden, part)
    return out


def can_share_input_attention() -> bool:
    """Whether this transformers has what the shared path needs: attention functions and masks
    registered by name and per-layer caches (transformers from mid-2025 on)."""
    try:
        from transformers import AttentionInterface  # noqa: F401
        from transformers.cache_utils import DynamicLayer  # noqa: F401
        from transformers.masking_utils import AttentionMaskInterface  # noqa: F401
    except ImportError:
        return False
    return True


def shared_cross_attention(filled):
    """A fresh decoder cache whose cross-attention keys/values are those of ``filled`` (a cache
    after one decoder step on one input), batch 1, for any number of rows of that input."""
    from transformers import DynamicCache, EncoderDecoderCache

    layers = [(layer.keys, layer.values) for layer in filled.cross_attention_cache.layers]
    return EncoderDecoderCache(DynamicCache(), DynamicCache(layers))


def shared_input_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Attention of many query rows to keys/values of batch 1 without copying them per row;
    any other call goes to transformers' SDPA function. The shared case assumes every row
    attends under the first row's mask -- true in `score_all_ids`, where all rows read one input."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    rows, heads, length, dim = query.shape
    if key.shape[0] != 1 or rows == 1 or key.shape[1] != heads:
        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling,
                                      dropout=dropout, **kwargs)
    flat = query.transpose(0, 1).reshape(heads, rows * length, dim)
    scores = torch.matmul(flat, key[0].transpose(-1, -2)).view(heads, rows, length, -1)
    scores = scores * (dim ** -0.5 if scaling is None else scaling)
    position_bias = kwargs.get("position_bias")
    if position_bias is not None:
        scores = scores + position_bias[0].unsqueeze(1)
    if attention_mask is not None:
        mask = attention_mask[0]
        if mask.dtype == torch.bool:
            mask = torch.zeros(mask.shape, dtype=scores.dtype, device=mask.device).masked_fill(
                ~mask, torch.finfo(scores.dtype).min)
        scores = scores + mask.unsqueeze(1)
    weights = torch.softmax(scores, dim=-1).view(heads, rows * length, -1)
    out = torch.matmul(weights, value[0]).view(heads, rows, length, dim)
    return out.permute(1, 2, 0, 3).contiguous(), None


@contextmanager
def attention_over_one_input(model):
    """Run ``model``'s attention through `shared_input_attention` inside the block (eval only)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

    if SHARED_INPUT_ATTENTION not in ALL_MASK_ATTENTION_FUNCTIONS:
        AttentionInterface.register(SHARED_INPUT_ATTENTION, shared_input_attention)
        AttentionMaskInterface.register(SHARED_INPUT_ATTENTION, ALL_MASK_ATTENTION_FUNCTIONS["sdpa"])
    original = model.config._attn_implementation
    model.set_attn_implementation(SHARED_INPUT_ATTENTION)
    try:
        yield
    finally:
        model.set_attn_implementation(original)


__all__ = ["SHARED_INPUT_ATTENTION", "attention_over_one_input", "can_share_input_attention", "score_all_ids", "shared_cross_attention",
           "shared_input_attention"]
