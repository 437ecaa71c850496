"""Scoring IDs with a seq2seq backbone: teacher-forced (training, exhaustive scoring) and by a
beam search constrained to the valid IDs of a trie.

An ID's score is Σ_t log P(c_t | c_<t, query), where P at position t is a softmax over that
position's K code tokens only (not the whole text vocabulary). Training optimises exactly this
(`id_losses`), so the score the search ranks by is the quantity the model was trained on.

Why the search is fast, compared with ``generate(prefix_allowed_tokens_fn=...)``:

* the query is encoded once, and the decoder's self- and cross-attention states are cached; the
  cross-attention keys/values are computed for one row per query, copied to its beams once, and
  never reordered (a beam's parent is always a beam of the same query);
* each step scores only the K rows of the current position (a 384×K product, not 384×30k);
* the valid continuations of every beam in the batch come from the trie's CSR arrays with a few
  tensor operations, instead of a Python callback per beam per step.
"""

from __future__ import annotations

from typing import Any

from .backbones import Seq2SeqBackbone
from .id_tokens import IdTrie


def decoder_inputs(backbone: Seq2SeqBackbone, codes):
    """Teacher-forcing decoder inputs for ID ``codes`` (B, T): the start token, then the tokens
    of every code but the last."""
    import torch

    vocabulary = backbone.vocabulary
    assert vocabulary is not None
    start = torch.full((codes.shape[0], 1), backbone.decoder_start_token_id, dtype=torch.long,
                       device=codes.device)
    return torch.cat([start, vocabulary.tokens(codes[:, :-1])], dim=1)


def id_logits(backbone: Seq2SeqBackbone, input_ids, attention_mask, codes, encoded=None) -> list[Any]:
    """Per position t, the logits (B, K_t) of position t's codes given the true prefix.
    ``encoded``: the inputs' encoder states when the caller has them (many IDs scored against
    one input encoded once)."""
    if encoded is None:
        encoded = backbone.encode(input_ids, attention_mask)
    hidden, _ = backbone.decode(decoder_inputs(backbone, codes), encoded, attention_mask)
    return [backbone.position_logits(hidden[:, t], t) for t in range(codes.shape[1])]


def id_losses(backbone: Seq2SeqBackbone, input_ids, attention_mask, codes):
    """Cross-entropy per position (a (T,) tensor, each averaged over the batch)."""
    import torch

    logits = id_logits(backbone, input_ids, attention_mask, codes)
    return torch.stack([torch.nn.functional.cross_entropy(lg.float(), codes[:, t])
                        for t, lg in enumerate(logits)])


def score_ids(backbone: Seq2SeqBackbone, input_ids, attention_mask, codes, encoded=None):
    """log P(ID | input) for each row: the exhaustive reference the beam search must agree with
    (``encoded`` as in `id_logits`)."""
    if encoded is None:
        encoded = backbone.encode(input_ids, attention_mask)
    hidden, _ = backbone.decode(decoder_inputs(backbone, codes), encoded, attention_mask)
    return id_log_probs(backbone, hidden, codes)


def id_log_probs(backbone: Seq2SeqBackbone, hidden, codes):
    """Σ_t log P(c_t | c_<t) of each row from teacher-forced decoder states (B, T, D)."""
    import torch

    total = torch.zeros(codes.shape[0], device=codes.device)
    for t in range(codes.shape[1]):
        log_probs = torch.log_softmax(backbone.position_logits(hidden[:, t], t).float(), dim=-1)
        total = total + log_probs.gather(1, codes[:, t : t + 1]).squeeze(1)
    return total


def constrained_beam_search(backbone: Seq2SeqBackbone, trie: IdTrie, input_ids, attention_mask,
                            num_beams: int):
    """The best ``num_beams`` valid IDs per query, best first.

    Returns (docs, scores), both (B, W) with W = min(num_beams, number of valid IDs): ``docs``
    are indices into the trie's documents (-1 where a query has fewer valid IDs than W, with
    score -inf). Full IDs are unique, so a query's documents are distinct.
    """
    import torch

    device = input_ids.device
    n_queries = input_ids.shape[0]
    encoded = backbone.encode(input_ids, attention_mask)
    cache = backbone.new_cache()
    width = 1  # beams per query so far
    nodes = torch.zeros(n_queries, dtype=torch.long, device=device)  # trie node of each beam
    scores = torch.zeros(n_queries, device=device)
    tokens = torch.full((n_queries, 1), backbone.decoder_start_token_id, dtype=torch.long, device=device)
    rows_encoded, rows_mask = encoded, attention_mask
    for t in range(trie.length):
        hidden, cache = backbone.decode(tokens, rows_encoded, rows_mask, cache)
        log_probs = torch.log_softmax(backbone.position_logits(hidden[:, -1], t).float(), dim=-1)
        k = log_probs.shape[1]
        # Scores of every valid (beam, code) continuation; everything else stays -inf.
        row, code, child = trie.children(t, nodes)
        candidates = torch.full((len(nodes), k), float("-inf"), device=device)
        candidates[row, code] = scores[row] + log_probs[row, code]
        children = torch.full((len(nodes), k), -1, dtype=torch.long, device=device)
        children[row, code] = child
        new_width = min(num_beams, width * k)
        scores, flat = candidates.view(n_queries, width * k).topk(new_width, dim=1)
        parent = flat // k + torch.arange(n_queries, device=device).unsqueeze(1) * width  # beam row
        chosen = flat % k
        nodes = children.view(-1)[(parent * k + chosen).view(-1)]
        scores = scores.view(-1)
        if t + 1 == trie.length:
            break
        if new_width != width:
            rows_encoded, rows_mask = beam_rows(encoded, attention_mask, new_width)
        carry_beams(cache, parent.view(-1), n_queries, width, new_width)
        tokens = (chosen.view(-1) + trie_offset(backbone, t)).unsqueeze(1)
        nodes = nodes.clamp(min=0)  # dead beams (-inf) point at node 0; their score keeps them dead
        width = new_width
    _, _, _, leaf_doc = trie.tensors(str(device))
    docs = torch.where(nodes >= 0, leaf_doc[nodes.clamp(min=0)], torch.full_like(nodes, -1))
    docs = docs.view(n_queries, -1)
    scores = scores.view(n_queries, -1)
    docs[~torch.isfinite(scores)] = -1
    return docs, scores


def free_beam_search(backbone: Seq2SeqBackbone, input_ids, attention_mask, num_beams: int):
    """The best ``num_beams`` code sequences per query with no trie: every code at every
    position, valid ID or not -- the control that shows what the constraint prevents. Returns
    (codes (B, W, T), scores (B, W)), best first."""
    import torch

    vocabulary = backbone.vocabulary
    assert vocabulary is not None
    device = input_ids.device
    n_queries = input_ids.shape[0]
    encoded = backbone.encode(input_ids, attention_mask)
    cache = backbone.new_cache()
    width = 1
    scores = torch.zeros(n_queries, device=device)
    codes = torch.zeros((n_queries, 0), dtype=torch.long, device=device)
    tokens = torch.full((n_queries, 1), backbone.decoder_start_token_id, dtype=torch.long, device=device)
    rows_encoded, rows_mask = encoded, attention_mask
    for t in range(vocabulary.length):
        hidden, cache = backbone.decode(tokens, rows_encoded, rows_mask, cache)
        log_probs = torch.log_softmax(backbone.position_logits(hidden[:, -1], t).float(), dim=-1)
        k = log_probs.shape[1]
        new_width = min(num_beams, width * k)
        candidates = (scores.unsqueeze(1) + log_probs).view(n_queries, width * k)
        top, flat = candidates.topk(new_width, dim=1)
        parent = (flat // k + torch.arange(n_queries, device=device).unsqueeze(1) * width).view(-1)
        chosen = (flat % k).view(-1)
        codes = torch.cat([codes[parent], chosen.unsqueeze(1)], dim=1)
        scores = top.view(-1)
        if t + 1 == vocabulary.length:
            break
        if new_width != width:
            rows_encoded, rows_mask = beam_rows(encoded, attention_mask, new_width)
        carry_beams(cache, parent, n_queries, width, new_width)
        tokens = (chosen + trie_offset(backbone, t)).unsqueeze(1)
        width = new_width
    return codes.view(n_queries, -1, vocabulary.length), scores.view(n_queries, -1)


def carry_beams(cache, parent, n_queries: int, width: int, new_width: int) -> None:
    """Carry each surviving beam's decoder state: rows are (query, beam), query-major, ``width``
    beams a query before the step and ``new_width`` after; ``parent`` (n_queries * new_width,) is
    the row each new beam extends. A beam's parent is always a beam of the same query, so only the
    self-attention states move; the cross-attention states are the query's, identical for all of
    its beams, and are only widened."""
    import torch

    if width == 1:  # every first-step beam extends its query's single row
        cache.batch_repeat_interleave(new_width)
        return
    cache.self_attention_cache.reorder_cache(parent)
    if new_width != width:
        query_rows = torch.arange(n_queries, device=parent.device).repeat_interleave(new_width) * width
        cache.cross_attention_cache.reorder_cache(query_rows)


def beam_rows(encoded, attention_mask, width: int):
    """The encoder states and mask repeated for ``width`` beams a query (query-major rows)."""
    return encoded.repeat_interleave(width, dim=0), attention_mask.repeat_interleave(width, dim=0)


def trie_offset(backbone: Seq2SeqBackbone, position: int) -> int:
    """Token index of code 0 at ``position``."""
    assert backbone.vocabulary is not None
    return backbone.vocabulary.offsets[position]


def search_batched(backbone: Seq2SeqBackbone, trie: IdTrie, tokens: list[list[int]], num_beams: int,
                   batch_size: int) -> tuple[list[list[int]], list[list[float]]]:
    """`constrained_beam_search` over many tokenised queries, in batches of similar length (less
    padding for the encoder to chew through); results come back in the input order."""
    order = sorted(range(len(tokens)), key=lambda i: len(tokens[i]))
    docs: list[list[int]] = [[] for _ in tokens]
    scores: list[list[float]] = [[] for _ in tokens]
    for lo in range(0, len(order), batch_size):
        rows = order[lo : lo + batch_size]
        ids, mask = backbone.text.collate([tokens[i] for i in rows], backbone.device)
        found, found_scores = constrained_beam_search(backbone, trie, ids, mask, num_beams)
        for i, d, sc in zip(rows, found.tolist(), found_scores.float().tolist()):
            docs[i], scores[i] = d, sc
    return docs, scores
