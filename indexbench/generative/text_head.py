"""Warm-starting a fresh text head so that the decoder starts out writing its input's words.

all-MiniLM-L6-v2 ships no masked-LM head, so minilm-encdec's output head has a random
transform in front of MiniLM's word embeddings: untrained, it writes the same words
('quiet', 'happiness', 'television') for any input. A model that generates text -- SEAL's
n-grams -- then has to learn conditioning from scratch, and in a few hundred CPU steps it only
learns the targets' marginal distribution (benchmarks/LOG.md, SEAL section). BART, which
SEAL fine-tunes, starts as a pretrained denoiser that copies its input.

Yet the decoder's states already carry the input's meaning: with the cross-attention started
as mean pooling, a linear map takes them to the input's mean-pooled MiniLM embedding almost
exactly, and that embedding, dotted with MiniLM's word embeddings, ranks the input's own words
and their neighbours first ("garden outdoor" → garden, gardening, outdoor, backyard, ...).
So the head's transform is set to that linear map, fitted by ridge regression on the corpus's
own documents (self-supervised: input → its pooled embedding), and its scale chosen by the
held-out, IDF-weighted likelihood of the documents' own tokens. The model then starts as a
lexical generator of the input's neighbourhood, and training refines from there (at the
pretrained weights' rate: the head is no longer marked fresh).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..tokenization import token_idf
from .backbones import Seq2SeqBackbone

MAX_DOCUMENTS = 2_000
"""Documents read for the fit (a seeded sample beyond that)."""

SPAN_TOKENS = 1
"""Decoder steps fitted per document: the start token, then a span of the document's own tokens.
One (the first step only): fitted over 8 steps as well, the map explained less of the pooled
embedding on held-out documents (R² 0.36 against 0.54 on `sample`) and the untrained model
ranked nothing (ndcg@5 0 against 0.27 on sample product search)."""

SCALES = tuple(2.0 ** (e / 2) for e in range(-6, 9))
"""Candidate feature scales (times the unit-variance LayerNorm output); the likeliest wins."""

RIDGE = 1e-2
"""Ridge penalty of the fit, relative to the mean diagonal of the states' Gram matrix."""


def lexical_text_head(backbone: Seq2SeqBackbone, doc_tokens: Sequence[list[int]], *, seed: int = 0,
                      batch_size: int = 32, progress: Any = None) -> dict[str, Any]:
    """Set a fresh BERT text head's transform to the map decoder state → pooled input embedding.

    ``doc_tokens`` are encoder inputs (special tokens included), e.g. the corpus's documents.
    Does nothing (``applied: False``) for a head that came pretrained (T5, BART, a checkpoint)
    or that has no transform to set. Returns what was done: documents and states read, the fit's
    held-out R², the chosen scale and its held-out cross-entropy against the untouched head's.
    """
    import numpy as np
    import torch

    transform = _fresh_transform(backbone)
    if transform is None:
        return {"applied": False, "reason": "the text head is pretrained or has no transform"}
    rng = np.random.default_rng([seed, 29])
    rows = [i for i in range(len(doc_tokens)) if len(doc_tokens[i]) > 2]
    if len(rows) > MAX_DOCUMENTS:
        rows = sorted(rng.choice(rows, MAX_DOCUMENTS, replace=False).tolist())
    if len(rows) < 8:
        return {"applied": False, "reason": f"too few documents to fit ({len(rows)})"}
    states, pooled, targets, owner = _collect(backbone, [doc_tokens[i] for i in rows], rng, batch_size, progress)

    # Fit on half of the documents, measure on the other half, then refit on all.
    held = torch.from_numpy(rng.permutation(len(rows)) % 2 == 0)[owner]
    weight = _ridge(states[~held], pooled[owner][~held])
    predicted = _affine(states[held], weight)
    truth = pooled[owner][held]
    r2 = 1 - float(((predicted - truth) ** 2).sum() / ((truth - truth.mean(0)) ** 2).sum())

    head = backbone.output_head()
    vocab = backbone.text_vocabulary_size
    table = head.weight[:vocab].detach().float().cpu()
    bias = head.bias[:vocab].detach().float().cpu() if getattr(head, "bias", None) is not None else 0.0
    # Each target counts by its IDF: what the head must get right is the input's distinctive
    # words -- the ones an n-gram's weight rewards -- not its stopwords, which the plain
    # likelihood is dominated by (and which pull the scale down to a near-uniform head).
    idf = torch.from_numpy(token_idf(doc_tokens, vocab)).float()[targets[held]]

    def cross_entropy(features):
        logits = features @ table.T + bias
        each = torch.nn.functional.cross_entropy(logits, targets[held], reduction="none")
        return float((each * idf).sum() / idf.sum())

    with torch.no_grad():
        before = cross_entropy(backbone.head_features(states[held].to(backbone.device)).float().cpu())
    unit = _layer_norm(predicted)
    losses = [cross_entropy(unit * s) for s in SCALES]
    best = int(np.argmin(losses))

    weight = _ridge(states, pooled[owner])
    # gelu(x) = x for x >~ 3: shift the pre-activation above that, and the LayerNorm that
    # follows removes the shift again (it subtracts each row's mean).
    shift = max(0.0, 4.0 - float(_affine(states, weight).min()))
    dense, norm = transform.dense, transform.LayerNorm
    with torch.no_grad():
        dense.weight.copy_(weight[:-1].T.to(dense.weight.dtype))
        dense.bias.copy_((weight[-1] + shift).to(dense.bias.dtype))
        norm.weight.fill_(SCALES[best])
        norm.bias.zero_()
    # No longer untrained: training gives the head the pretrained weights' rate from here on
    # (the fresh rate wiped the warm start out within the first epoch on the sample data).
    backbone.fresh_parameters = tuple(f for f in backbone.fresh_parameters if not f.startswith("decoder.cls"))
    return {"applied": True, "documents": len(rows), "states": int(len(states)), "held_out_r2": r2,
            "scale": SCALES[best], "held_out_cross_entropy": losses[best],
            "untouched_head_cross_entropy": before}


def _fresh_transform(backbone: Seq2SeqBackbone):
    """The head's dense → activation → LayerNorm transform when it starts untrained, else None."""
    head = getattr(getattr(backbone.model, "decoder", None), "cls", None)
    transform = getattr(getattr(head, "predictions", None), "transform", None)
    if transform is None or not backbone.is_fresh("decoder.cls.predictions.transform.dense.weight"):
        return None
    if not all(hasattr(transform, name) for name in ("dense", "LayerNorm")):
        return None
    return transform


def _collect(backbone: Seq2SeqBackbone, docs: list[list[int]], rng, batch_size: int, progress):
    """Decoder states at every step of (start, a span of the document's tokens), each document's
    mean-pooled encoder state, each state's next span token, and each state's document."""
    import torch

    model = backbone.model
    was_training = model.training
    model.eval()
    special = {backbone.tokenizer.cls_token_id, backbone.tokenizer.sep_token_id,
               backbone.tokenizer.pad_token_id, backbone.tokenizer.bos_token_id, backbone.tokenizer.eos_token_id}
    states, pooled, targets, owner = [], [], [], []
    batches = range(0, len(docs), batch_size)
    iterator = progress.track(batches, "fitting the text head", total=len(batches)) if progress is not None else batches
    try:
        with torch.inference_mode():
            for lo in iterator:
                batch = docs[lo : lo + batch_size]
                ids, mask = backbone.text.collate(batch, backbone.device)
                encoded = backbone.encode(ids, mask)
                m = mask.unsqueeze(-1).to(encoded.dtype)
                pooled.append(((encoded * m).sum(1) / m.sum(1)).float().cpu())
                spans = []
                for doc in batch:
                    text = [t for t in doc if t not in special] or list(doc)
                    start = int(rng.integers(0, max(1, len(text) - SPAN_TOKENS + 1)))
                    spans.append(text[start : start + SPAN_TOKENS])
                steps = min(len(s) for s in spans)
                span = torch.tensor([s[:steps] for s in spans], dtype=torch.long, device=backbone.device)
                start = torch.full((len(batch), 1), backbone.decoder_start_token_id, dtype=torch.long,
                                   device=backbone.device)
                hidden, _ = backbone.decode(torch.cat([start, span[:, :-1]], dim=1), encoded, mask)
                states.append(hidden.reshape(-1, hidden.shape[-1]).float().cpu())
                targets.append(span.reshape(-1).cpu())
                owner.append((torch.arange(len(batch)) + lo).repeat_interleave(steps))
    finally:
        model.train(was_training)
    return torch.cat(states), torch.cat(pooled), torch.cat(targets), torch.cat(owner)


def _ridge(x, y):
    """(D+1, E) weights of the ridge regression y ≈ [x, 1] @ W (the bias is not penalised)."""
    import torch

    design = torch.cat([x.double(), torch.ones(len(x), 1, dtype=torch.float64)], dim=1)
    gram = design.T @ design
    penalty = RIDGE * float(gram.diagonal()[:-1].mean()) * torch.eye(len(gram), dtype=torch.float64)
    penalty[-1, -1] = 0.0
    return torch.linalg.solve(gram + penalty, design.T @ y.double()).float()


def _affine(x, weight):
    return x @ weight[:-1] + weight[-1]


def _layer_norm(x):
    centred = x - x.mean(dim=-1, keepdim=True)
    return centred / centred.pow(2).mean(dim=-1, keepdim=True).add(1e-12).sqrt()


__all__ = ["lexical_text_head"]
