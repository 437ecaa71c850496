"""Seq2seq backbones for generative retrieval: the adapter the engine drives them through, and
`load_backbone`, which builds one by registered name or from a local checkpoint.

`Seq2SeqBackbone` wraps a Hugging Face encoder-decoder (T5, BART, or an `EncoderDecoderModel` of
BERTs) and exposes just what the engine needs: encode a batch, run the decoder body one step with a
cache, and score *only the ID tokens of one position*. Scoring K rows instead of the whole text
vocabulary (30k+ rows) is most of what makes constrained decoding fast; `check_head` verifies on
load that these restricted logits equal the model's own full logits, so an architecture whose
head the adapter does not understand fails loudly instead of ranking wrongly.

The built-in backbones are in `indexbench.generative.builtin_backbones`; any local directory
holding a Hugging Face seq2seq checkpoint and its tokenizer also works (a real t5-base unchanged):
``--indexer hc:backbone=/models/t5-base``.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..data import fingerprint_of
from ..errors import ConfigError
from ..tokenization import TextTokenizer

if TYPE_CHECKING:  # pragma: no cover
    from .id_tokens import IdVocabulary

DEFAULT_DECODER_LAYERS = 2


class Seq2SeqBackbone:
    def __init__(self, model: Any, tokenizer: Any, *, name: str, weights: str, device: str = "cpu",
                 fresh_parameters: tuple[str, ...] = ()):
        self.name = name
        self.fresh_parameters = fresh_parameters
        """Name fragments of the parameters that start untrained ("" = all of them): training
        gives them the engine's ``fresh_lr`` instead of ``lr``."""
        self.weights = weights
        """How the weights came to be (pretrained source, random-init seed, ...): part of the
        cache key of everything trained from this backbone."""
        self.device = device
        self.model = model.to(device).float().eval()
        self.tokenizer = tokenizer
        max_positions = getattr(model.config, "n_positions", None) or getattr(
            _encoder_config(model), "max_position_embeddings", None) or 512
        self.text = TextTokenizer(tokenizer, max_positions=int(max_positions))
        self.vocabulary: IdVocabulary | None = None
        self._bert_decoder = model.config.model_type == "encoder-decoder"

    # ----------------------------------------------------------------- identity

    @property
    def identity(self) -> dict[str, Any]:
        return {"backbone": self.name, "weights": self.weights,
                "config": fingerprint_of(self.model.config.to_dict())}

    def is_fresh(self, parameter_name: str) -> bool:
        """Whether a parameter starts untrained (see ``fresh_parameters``)."""
        return any(fragment in parameter_name for fragment in self.fresh_parameters)

    @property
    def on_cuda(self) -> bool:
        return str(self.device).startswith("cuda")

    def autocast(self):
        """bf16 autocast on CUDA; plain fp32 on CPU."""
        import contextlib

        import torch

        if self.on_cuda:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @property
    def decoder_start_token_id(self) -> int:
        config = self.model.config
        start = getattr(config, "decoder_start_token_id", None)
        if start is None:
            start = getattr(getattr(config, "decoder", None), "bos_token_id", None)
        if start is None:
            start = self.tokenizer.cls_token_id if self.tokenizer.cls_token_id is not None else 0
        return int(start)

    # ----------------------------------------------------------------- ID tokens

    def _decoder_owner(self):
        """The module whose token embeddings the decoder reads and whose head it writes."""
        return self.model.decoder if self._bert_decoder else self.model

    def add_id_tokens(self, codebook_sizes: tuple[int, ...]) -> IdVocabulary:
        """Append one decoder token per (position, code) after the text vocabulary."""
        if self.vocabulary is not None:
            raise RuntimeError("ID tokens were already added to this backbone")
        from .id_tokens import IdVocabulary

        owner = self._decoder_owner()
        base = owner.get_input_embeddings().weight.shape[0]
        vocabulary = IdVocabulary(base=base, codebook_sizes=tuple(int(k) for k in codebook_sizes))
        import torch

        # Recent transformers initialise new rows from the old rows' mean and covariance, which
        # keeps the new tokens' logits on the scale of the text tokens'. Seed it: same seed → same IDs'
        # start point.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            with quiet_hf():
                owner.resize_token_embeddings(base + vocabulary.size)
        self.model.to(self.device)
        self.vocabulary = vocabulary
        return vocabulary

    def id_embeddings(self, position: int):
        """The decoder input-embedding rows of position ``position``'s ID tokens (a view)."""
        assert self.vocabulary is not None
        return self._decoder_owner().get_input_embeddings().weight[self.vocabulary.rows(position)]

    # ----------------------------------------------------------------- forward pieces

    def encode(self, input_ids, attention_mask):
        """Encoder states (B, S, D) of a padded batch."""
        encoder = self.model.get_encoder()
        hidden = encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        projection = getattr(self.model, "enc_to_dec_proj", None)
        return projection(hidden) if projection is not None else hidden

    def _decoder_body(self):
        return self.model.decoder.base_model if self._bert_decoder else self.model.get_decoder()

    def decode(self, decoder_input_ids, encoder_hidden, encoder_mask, cache=None):
        """Decoder hidden states (B, L, D) for ``decoder_input_ids`` (B, L). With a ``cache``
        (`new_cache`), the call continues it and appends to it. Returns (hidden, cache)."""
        body = self._decoder_body()
        name = _cache_argument(body)
        out = body(
            input_ids=decoder_input_ids,
            encoder_hidden_states=encoder_hidden,
            encoder_attention_mask=encoder_mask,
            use_cache=cache is not None,
            **{name: cache},
        )
        return out.last_hidden_state, getattr(out, name)

    def new_cache(self):
        from transformers import DynamicCache, EncoderDecoderCache

        return EncoderDecoderCache(DynamicCache(), DynamicCache())

    def output_head(self):
        """The module whose weight rows score tokens (ID tokens included) from `head_features`."""
        return self._decoder_owner().get_output_embeddings()

    def head_features(self, hidden):
        """What the output head multiplies with its token rows, from decoder states."""
        if self._bert_decoder:
            head = getattr(self.model.decoder, "cls", None)
            transform = getattr(getattr(head, "predictions", None), "transform", None)
            return transform(hidden) if transform is not None else hidden
        if getattr(self.model.config, "scale_decoder_outputs", False):  # T5 with tied embeddings
            return hidden * (self.model.config.d_model ** -0.5)
        return hidden

    def position_logits(self, hidden, position: int):
        """Logits of position ``position``'s K ID tokens only: (..., K)."""
        return self.feature_logits(self.head_features(hidden), position)

    def feature_logits(self, features, position: int):
        """`position_logits` from what the head reads (`head_features`), e.g. cached features."""
        assert self.vocabulary is not None
        return self._row_logits(features, self.vocabulary.rows(position))

    @property
    def text_vocabulary_size(self) -> int:
        """Rows of the output head that are text tokens (the ID tokens come after them)."""
        if self.vocabulary is not None:
            return self.vocabulary.base
        return int(self.output_head().weight.shape[0])

    def text_logits(self, hidden):
        """Logits (..., V) of every text token (no ID token) from decoder states: what a decoder
        that generates text -- an n-gram retriever's -- ranks by."""
        return self._row_logits(self.head_features(hidden), slice(0, self.text_vocabulary_size))

    def _row_logits(self, features, rows):
        head = self.output_head()
        features = features.to(head.weight.device, head.weight.dtype)
        logits = features @ head.weight[rows].T
        if getattr(head, "bias", None) is not None:
            logits = logits + head.bias[rows]
        final_bias = getattr(self.model, "final_logits_bias", None)  # BART
        if final_bias is not None:
            logits = logits + final_bias[0, rows]
        return logits

    def check_head(self) -> None:
        """Verify `position_logits` against the model's own forward pass (all ID rows)."""
        import torch

        assert self.vocabulary is not None
        ids, mask = self.text.collate(self.text.tokenize(["check the head"], max_length=16), self.device)
        start = torch.tensor([[self.decoder_start_token_id, self.vocabulary.base]], device=self.device)
        with torch.no_grad():
            full = self.model(input_ids=ids, attention_mask=mask, decoder_input_ids=start).logits
            hidden, _ = self.decode(start, self.encode(ids, mask), mask)
            for t in range(self.vocabulary.length):
                ours = self.position_logits(hidden, t)
                theirs = full[..., self.vocabulary.rows(t)]
                if not torch.allclose(ours, theirs, atol=1e-3, rtol=1e-3):
                    raise ConfigError(
                        f"backbone {self.name!r}: cannot score ID tokens from the decoder states of "
                        f"a {type(self.model).__name__}; supported: T5, BART, BERT encoder-decoder")

    # ----------------------------------------------------------------- persistence

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state)
        self.model.to(self.device).eval()


_CACHE_ARGUMENT: dict[type, str] = {}


def _cache_argument(module: Any) -> str:
    """The name a decoder's forward takes its key/value cache under: ``cache`` from transformers
    5.x on (which warns on every call given the old name, and drops it in 5.40), else
    ``past_key_values``. The output attribute has the same name."""
    kind = type(module)
    if kind not in _CACHE_ARGUMENT:
        import inspect

        parameters = inspect.signature(module.forward).parameters
        _CACHE_ARGUMENT[kind] = "cache" if "cache" in parameters else "past_key_values"
    return _CACHE_ARGUMENT[kind]


def _encoder_config(model: Any) -> Any:
    return getattr(model.config, "encoder", model.config)


@contextmanager
def quiet_hf():
    """No tqdm bars and no "newly initialised weights" reports while building a backbone: a
    warm-started decoder's cross-attention is new by design, and the CLI reports progress itself."""
    from transformers.utils import logging as hf_logging

    from ..encoders.loading import quiet_loading

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        with quiet_loading():
            yield
    finally:
        hf_logging.set_verbosity(level)


def load_local_checkpoint(path: Path, device: str = "cpu") -> Seq2SeqBackbone:
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from ..encoders.loading import offline_hub

    offline_hub()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        with quiet_hf():
            model = AutoModelForSeq2SeqLM.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{path}: not a loadable seq2seq checkpoint ({first})") from exc
    return Seq2SeqBackbone(model, tokenizer, name=str(path), device=device,
                           weights=f"local:{_directory_fingerprint(path)}")


def _directory_fingerprint(path: Path) -> str:
    """Names, sizes and mtimes of the checkpoint's files: cheap, and changes when they do."""
    stats = sorted((p.relative_to(path).as_posix(), p.stat().st_size, int(p.stat().st_mtime))
                   for p in path.rglob("*") if p.is_file())
    return fingerprint_of(stats)


def load_backbone(name: str, *, device: str = "cpu", seed: int = 0,
                  decoder_layers: int | None = None) -> Seq2SeqBackbone:
    """A registered backbone by name, else a local checkpoint directory."""
    from ..registry import get_registry

    registry = get_registry()
    if name in registry.backbones:
        return registry.backbone(name).factory(device=device, seed=seed, decoder_layers=decoder_layers)
    path = Path(name).expanduser()
    if path.is_dir():
        if decoder_layers:
            raise ConfigError(f"decoder_layers applies to built-in backbones, not to {path}")
        return load_local_checkpoint(path, device=device)
    registry.backbone(name)  # raises the "unknown backbone, valid names: ..." error
    raise AssertionError("unreachable")


__all__ = ["DEFAULT_DECODER_LAYERS", "Seq2SeqBackbone", "load_backbone", "load_local_checkpoint", "quiet_hf"]
