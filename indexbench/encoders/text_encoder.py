"""`TextEncoder`: a Hugging Face tokenizer + encoder model that maps texts to embedding rows.

``encode(texts)`` returns L2-normalised float32 rows (mean pooling over the attention mask by
default). Texts are sorted by token length before batching, so a batch pads to similar lengths,
and the original order is restored. Its ``identity`` (model, pooling, weights fingerprint) keys
every cache. Nothing heavy is imported at module level.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ..protocols import Progress, SilentProgress
from ..tokenization import TextTokenizer, Truncation
from .loading import load_model, offline_hub, quiet_loading
from .precision import int8_copy, resolve_precision

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

META_FILE = "indexbench-encoder.json"


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
        self.text = TextTokenizer(tokenizer, max_positions=self.max_positions)
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
        """Token ids (special tokens included) per text, at most ``max_length`` of them:
        `TextTokenizer.tokenize` ("right" keeps the beginning of a long text, "left" its end)."""
        return self.text.tokenize(texts, max_length=max_length, truncation=truncation)

    # ----------------------------------------------------------------- forward

    def collate(self, batch: Sequence[Sequence[int]]):
        """Pad a batch of token-id lists into (input_ids, attention_mask) tensors on the device."""
        return self.text.collate(batch, self.device)

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
        with quiet_loading():  # transformers would draw its own "Writing model shards" bar
            self.model.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        meta = {"name": self.name, "source": self.source, "pooling": self.pooling,
                "normalize": self.normalize, "weights": self.weights_fingerprint}
        (directory / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")

    def load_weights(self, directory: str | Path) -> None:
        """Replace the model's weights with those saved in ``directory`` (by `save`)."""
        model = load_model(directory)
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
        offline_hub()
        from transformers import AutoTokenizer

        path = Path(path)
        meta: dict[str, Any] = {}
        if (path / META_FILE).exists():
            meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        model = load_model(path)
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


__all__ = ["META_FILE", "TextEncoder"]
