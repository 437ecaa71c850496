"""Generating n-grams of the corpus with a seq2seq backbone: a beam search whose every step may
only continue an n-gram that occurs in the corpus (`CorpusIndex.children`), and the teacher-forced
text-token loss that trains the decoder for it.

An n-gram's score is log P(n | query) = Σ_t log P(n_t | n_<t, query), each P a softmax over the
whole text vocabulary (as SEAL: the constraint masks the candidates, it does not renormalise
them), so the score is the model's probability of writing that n-gram. Every beam prefix at every
step is a candidate n-gram: a 10-step search with 15 beams proposes up to 150 n-grams a query, the
short frequent ones and the long specific ones.

The batching is the ID search's (`decoding`): the query is encoded once, the decoder's self- and
cross-attention states are cached and carried from parent beam to child beam (`carry_beams`),
and every query of a batch advances in one decoder call a step. Only the constraint differs: a
beam's valid continuations come from the corpus index (memoised per n-gram), not from an ID trie.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..ngram_index import CorpusIndex, Node
from .backbones import Seq2SeqBackbone
from .decoding import beam_rows, carry_beams


@dataclass
class NgramSearch:
    ngrams: list[dict[tuple[int, ...], float]]
    """Per query: every n-gram its beams held at some step, with log P(n-gram | query)."""
    first_step_log_probs: Any = None
    """(queries, V) log-probabilities of the first token, when asked for (unigram evidence)."""


def input_token_bias(backbone: Seq2SeqBackbone, input_ids, attention_mask, strength: float):
    """(B, V) additive logits: ``strength`` on every text token that occurs in input row b
    (special tokens and padding excluded), 0 elsewhere -- or None when ``strength`` is 0.

    A copy prior: the decoder's distribution becomes softmax(logits + strength·[w in input]),
    in training and in search alike, so the model learns what to write beyond the input's own
    words instead of first having to learn to copy them."""
    import torch

    if not strength:
        return None
    vocab = backbone.text_vocabulary_size
    special = [t for t in backbone.tokenizer.all_special_ids if t is not None and t < vocab]
    ids = torch.where(attention_mask.bool(), input_ids, special[0] if special else 0).clamp(max=vocab - 1)
    bias = torch.zeros(input_ids.shape[0], vocab, device=input_ids.device)
    bias.scatter_(1, ids, strength)
    if special:
        bias[:, special] = 0.0
    return bias


def ngram_beam_search(backbone: Seq2SeqBackbone, index: CorpusIndex, input_ids, attention_mask,
                      num_beams: int, max_ngram: int, *, keep_first_step: bool = False,
                      copy_bias: float = 0.0) -> NgramSearch:
    """Beam search over corpus n-grams of up to ``max_ngram`` tokens for a batch of queries
    (``copy_bias``: see `input_token_bias`)."""
    import numpy as np
    import torch

    device = input_ids.device
    n_queries = input_ids.shape[0]
    bias = input_token_bias(backbone, input_ids, attention_mask, copy_bias)
    encoded = backbone.encode(input_ids, attention_mask)
    rows_encoded, rows_mask = encoded, attention_mask
    cache = backbone.new_cache()
    width = 1
    prefixes: list[tuple[int, ...]] = [()] * n_queries  # row r = (query r // width, beam r % width)
    nodes: list[Node | None] = [index.root] * n_queries
    scores = torch.zeros(n_queries, device=device)
    pad = backbone.tokenizer.pad_token_id if backbone.tokenizer.pad_token_id is not None else 0
    tokens = torch.full((n_queries, 1), backbone.decoder_start_token_id, dtype=torch.long, device=device)
    found: list[dict[tuple[int, ...], float]] = [{} for _ in range(n_queries)]
    first_step = None
    for step in range(max_ngram):
        hidden, cache = backbone.decode(tokens, rows_encoded, rows_mask, cache)
        logits = backbone.text_logits(hidden[:, -1]).float()
        if bias is not None:  # rows are query-major: add each query's row to its beams in place
            logits.view(n_queries, width, -1).add_(bias.unsqueeze(1))
        log_probs = torch.log_softmax(logits, dim=-1)
        if step == 0 and keep_first_step:
            first_step = log_probs.cpu()
        # Every valid (beam, token) continuation, flattened.
        cand_rows, cand_tokens, cand_nodes = [], [], []
        live = torch.isfinite(scores).tolist()
        for row, node in enumerate(nodes):
            if node is None or not live[row]:
                continue
            following, children = index.children(node)
            cand_rows.append(np.full(len(following), row))
            cand_tokens.append(following)
            cand_nodes.extend(children)
        if not cand_nodes:
            break
        rows = torch.as_tensor(np.concatenate(cand_rows), device=device)
        toks = torch.as_tensor(np.concatenate(cand_tokens), device=device)
        values = scores[rows] + log_probs[rows, toks]
        query = rows // width
        # The best num_beams continuations of each query: sort by score, then (stably) by query.
        order = torch.argsort(values, descending=True, stable=True)
        order = order[torch.argsort(query[order], stable=True)]
        grouped = query[order]
        rank = torch.arange(len(order), device=device) - torch.searchsorted(grouped, grouped)
        kept = rank < num_beams
        chosen, rank = order[kept], rank[kept]
        new_width = int(rank.max()) + 1
        slots = query[chosen] * new_width + rank
        # Slots a query could not fill stay dead: score -inf, parent its first row, no node.
        new_scores = torch.full((n_queries * new_width,), float("-inf"), device=device)
        new_scores[slots] = values[chosen]
        parent = torch.arange(n_queries, device=device).repeat_interleave(new_width) * width
        parent[slots] = rows[chosen]
        new_tokens = torch.full((n_queries * new_width,), pad, dtype=torch.long, device=device)
        new_tokens[slots] = toks[chosen]
        new_prefixes: list[tuple[int, ...]] = [()] * (n_queries * new_width)
        new_nodes: list[Node | None] = [None] * (n_queries * new_width)
        row_of, token_of = rows[chosen].tolist(), toks[chosen].tolist()
        for slot, cand, row, token, value in zip(slots.tolist(), chosen.tolist(), row_of, token_of,
                                                 values[chosen].tolist()):
            ngram = prefixes[row] + (token,)
            new_prefixes[slot], new_nodes[slot] = ngram, cand_nodes[cand]
            found[slot // new_width][ngram] = value
        if step + 1 == max_ngram:
            break
        if new_width != width:
            rows_encoded, rows_mask = beam_rows(encoded, attention_mask, new_width)
        carry_beams(cache, parent, n_queries, width, new_width)
        tokens, scores, prefixes, nodes, width = new_tokens.unsqueeze(1), new_scores, new_prefixes, new_nodes, new_width
    return NgramSearch(found, first_step)


def search_ngrams_batched(backbone: Seq2SeqBackbone, index: CorpusIndex, tokens: list[list[int]], num_beams: int,
                          max_ngram: int, batch_size: int, *, keep_first_step: bool = False,
                          copy_bias: float = 0.0, progress=None,
                          description: str = "decoding n-grams") -> NgramSearch:
    """`ngram_beam_search` over many tokenised queries, in batches of similar length; results
    come back in the input order."""
    import torch

    order = sorted(range(len(tokens)), key=lambda i: len(tokens[i]))
    found: list[dict[tuple[int, ...], float]] = [{} for _ in tokens]
    first: list[Any] = [None] * len(tokens)
    batches = list(range(0, len(order), batch_size))
    iterator = progress.track(batches, description, total=len(batches)) if progress is not None else batches
    for lo in iterator:
        rows = order[lo : lo + batch_size]
        ids, mask = backbone.text.collate([tokens[i] for i in rows], backbone.device)
        result = ngram_beam_search(backbone, index, ids, mask, num_beams, max_ngram,
                                   keep_first_step=keep_first_step, copy_bias=copy_bias)
        for j, i in enumerate(rows):
            found[i] = result.ngrams[j]
            if keep_first_step:
                first[i] = result.first_step_log_probs[j]
    return NgramSearch(found, torch.stack(first) if keep_first_step and tokens else None)


def text_batch_loss(backbone: Seq2SeqBackbone, inputs: list[list[int]], targets: list[tuple[int, ...]],
                    copy_bias: float = 0.0):
    """Teacher-forced cross-entropy of target token sequences (of any lengths) given the inputs,
    over the text vocabulary: the distribution `ngram_beam_search` scores with (the same
    ``copy_bias``)."""
    import torch

    input_ids, mask = backbone.text.collate(inputs, backbone.device)
    length = max(len(t) for t in targets)
    target = torch.full((len(targets), length), -100, dtype=torch.long, device=backbone.device)
    for row, seq in enumerate(targets):
        target[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
    pad = backbone.tokenizer.pad_token_id if backbone.tokenizer.pad_token_id is not None else 0
    # The decoder reads the start token, then the target shifted right; positions past a target's
    # end read padding, which the causal mask keeps from every position that is scored.
    shifted = torch.where(target[:, :-1] < 0, pad, target[:, :-1])
    start = torch.full((len(targets), 1), backbone.decoder_start_token_id, dtype=torch.long, device=backbone.device)
    decoder_in = torch.cat([start, shifted], dim=1)
    hidden, _ = backbone.decode(decoder_in, backbone.encode(input_ids, mask), mask)
    logits = backbone.text_logits(hidden).float()
    bias = input_token_bias(backbone, input_ids, mask, copy_bias)
    if bias is not None:
        logits = logits + bias.unsqueeze(1)
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                             ignore_index=-100)


def reference_ngram_search(backbone: Seq2SeqBackbone, index: CorpusIndex, query_tokens: list[int], num_beams: int,
                           max_ngram: int, copy_bias: float = 0.0) -> dict[tuple[int, ...], float]:
    """The same search for one query as a plain loop: every beam's whole prefix decoded afresh,
    no cache, no batching. The reference `ngram_beam_search` is tested against, and the baseline
    its speed is measured against (benchmarks/decoding.py)."""
    import torch

    ids, mask = backbone.text.collate([query_tokens], backbone.device)
    encoded = backbone.encode(ids, mask)
    bias = input_token_bias(backbone, ids, mask, copy_bias)
    beams: list[tuple[tuple[int, ...], float, Node]] = [((), 0.0, index.root)]
    found: dict[tuple[int, ...], float] = {}
    for _ in range(max_ngram):
        candidates = []
        for prefix, score, node in beams:
            decoder_in = torch.tensor([[backbone.decoder_start_token_id, *prefix]], device=backbone.device)
            hidden, _ = backbone.decode(decoder_in, encoded, mask)
            logits = backbone.text_logits(hidden[:, -1]).float()
            log_probs = torch.log_softmax(logits if bias is None else logits + bias, dim=-1)[0]
            following, children = index.children(node)
            for token, child in zip(following.tolist(), children):
                candidates.append((prefix + (token,), score + float(log_probs[token]), child))
        if not candidates:
            break
        candidates.sort(key=lambda c: -c[1])
        beams = candidates[:num_beams]
        for prefix, score, _ in beams:
            found[prefix] = score
    return found


__all__ = ["NgramSearch", "ngram_beam_search", "reference_ngram_search", "search_ngrams_batched", "text_batch_loss"]
