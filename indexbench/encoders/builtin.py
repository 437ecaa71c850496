"""The core's encoders -- ``minilm`` (the packaged all-MiniLM-L6-v2) and ``tiny`` (a randomly
initialised 2-layer BERT built in code, for fast tests) -- their hook, and `make_encoder`, which
builds any registered encoder by name. An encoder factory has the signature
``factory(device: str = "cpu") -> TextEncoder`` and returns a fresh, independent model each call
(fine-tuning one never affects another)."""

from __future__ import annotations

from ..entries import EncoderEntry
from ..hookspecs import hookimpl
from .loading import MINILM_SOURCE, load_model, minilm_path, offline_hub
from .precision import resolve_precision
from .text_encoder import TextEncoder


def load_minilm(device: str = "cpu") -> TextEncoder:
    """all-MiniLM-L6-v2 from the packaged copy: mean pooling, L2-normalised (as the model card)."""
    offline_hub()
    from transformers import AutoTokenizer

    path = str(minilm_path())
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = load_model(path)
    return TextEncoder(model, tokenizer, name="minilm", source=MINILM_SOURCE, device=device,
                       pooling="mean", normalize=True, weights="pretrained")


TINY_CONFIG = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
               "intermediate_size": 64, "max_position_embeddings": 512}


def build_tiny_encoder(device: str = "cpu", *, seed: int = 0) -> TextEncoder:
    """A randomly initialised 2-layer, 32-wide BERT with the MiniLM tokenizer; no weights on disk.

    Initialisation uses its own RNG state (the global one is left untouched), so the same seed
    gives the same weights. Meant for tests: fast, and meaningless as a retriever.
    """
    offline_hub()
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_path()), local_files_only=True)
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
    from ..registry import get_registry

    resolve_precision(precision, device)  # a bad value fails before the model loads
    encoder = get_registry().encoder(name).factory(device=device)
    encoder.precision = precision
    return encoder


__all__ = ["TINY_CONFIG", "build_tiny_encoder", "builtin_encoders", "load_minilm", "make_encoder", "register_encoders"]
