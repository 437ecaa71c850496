"""Seq2seq backbones for generative retrieval, and the adapter the engine drives them through.

`Seq2SeqBackbone` wraps a Hugging Face encoder-decoder (T5, BART, or an `EncoderDecoderModel` of
BERTs) and exposes just what the engine needs: encode a batch, run the decoder body one step with a
cache, and score *only the ID tokens of one position*. Scoring K rows instead of the whole text
vocabulary (30k+ rows) is most of what makes constrained decoding fast; `check_head` verifies on
load that these restricted logits equal the model's own full logits, so an architecture whose
head the adapter does not understand fails loudly instead of ranking wrongly.

Registered backbones (`builtin_backbones`):

* ``minilm-encdec`` (default): all-MiniLM-L6-v2 as the encoder, and a decoder warm-started from
  its first ``decoder_layers`` layers (cross-attention initialised as mean pooling of the encoder states). Two decoder layers by
  default: the decoder runs T steps × 20 beams per query, so each layer costs far more at search
  time than an encoder layer, while IDs are only 3 tokens long and need little depth.
* ``t5-small-scratch``: a small T5 (4 encoder / 2 decoder layers, d_model 256) trained from
  scratch on the MiniLM WordPiece vocabulary — the "no pre-training" control.
* ``tiny``: a 2+1-layer, 32-wide BERT encoder-decoder with random weights, for tests.
* any local directory holding a Hugging Face seq2seq checkpoint and its tokenizer (a real t5-base
  works unchanged): ``--indexer hc:backbone=/models/t5-base``.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..data import fingerprint_of
from ..entries import BackboneEntry
from ..errors import ConfigError
from ..hookspecs import hookimpl
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
            with _quiet_hf():
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


# --------------------------------------------------------------------------- builders


@contextmanager
def _quiet_hf():
    """No tqdm bars and no "newly initialised weights" reports while building a backbone: a
    warm-started decoder's cross-attention is new by design, and the CLI reports progress itself."""
    from transformers.utils import logging as hf_logging

    from ..encoders import _quiet_loading

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        with _quiet_loading():
            yield
    finally:
        hf_logging.set_verbosity(level)


def _minilm_dir() -> Path:
    from ..encoders import _minilm_path, _offline

    _offline()
    return _minilm_path()


def _minilm_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(_minilm_dir()), local_files_only=True)


def _bert_encoder_decoder(encoder, decoder_config, tokenizer, init_from: Path | None):
    from transformers import BertLMHeadModel, EncoderDecoderModel

    decoder_config.is_decoder = True
    decoder_config.add_cross_attention = True
    with _quiet_hf():
        if init_from is not None:
            decoder = BertLMHeadModel.from_pretrained(str(init_from), config=decoder_config,
                                                      local_files_only=True)
        else:
            decoder = BertLMHeadModel(decoder_config)
    model = EncoderDecoderModel(encoder=encoder, decoder=decoder)
    model.config.decoder_start_token_id = tokenizer.cls_token_id
    model.config.pad_token_id = tokenizer.pad_token_id
    return model


def build_minilm_encdec(device: str = "cpu", *, seed: int = 0,
                        decoder_layers: int | None = None) -> Seq2SeqBackbone:
    import torch
    from transformers import BertConfig, BertModel

    layers = decoder_layers or DEFAULT_DECODER_LAYERS
    path = _minilm_dir()
    tokenizer = _minilm_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the fresh cross-attention weights
        with _quiet_hf():
            encoder = BertModel.from_pretrained(str(path), add_pooling_layer=False, local_files_only=True)
        config = BertConfig.from_pretrained(str(path), local_files_only=True)
        if layers > config.num_hidden_layers:
            raise ConfigError(f"decoder_layers={layers}: MiniLM has only {config.num_hidden_layers} layers")
        config.num_hidden_layers = layers
        model = _bert_encoder_decoder(encoder, config, tokenizer, init_from=path)
        _mean_pooling_cross_attention(model.decoder.base_model)
    # Untrained next to MiniLM's weights: the cross-attention, the output head's transform, and the
    # decoder's token embeddings, where the ID tokens live (the decoder reads no text tokens).
    fresh = ("crossattention", "decoder.cls.", "decoder.bert.embeddings.word_embeddings")
    return Seq2SeqBackbone(model, tokenizer, name="minilm-encdec", device=device, fresh_parameters=fresh,
                           weights=f"all-MiniLM-L6-v2:decoder_layers={layers}:xattn=mean-pool:seed={seed}")


def _mean_pooling_cross_attention(decoder) -> None:
    """Start every cross-attention layer as mean pooling of the encoder states.

    Zero query and key projections make the attention uniform over the (unmasked) input
    tokens; identity value and output projections then add the mean encoder state to the
    decoder's stream -- the very vector all-MiniLM-L6-v2 was trained to make a sentence
    embedding of. A random cross-attention instead adds a small random projection, and the
    decoder starts out nearly blind to its input. The weights still train freely from here.
    """
    import torch

    with torch.no_grad():
        for layer in decoder.encoder.layer:
            attention = layer.crossattention
            for linear in (attention.self.query, attention.self.key):
                linear.weight.zero_()
                linear.bias.zero_()
            for linear in (attention.self.value, attention.output.dense):
                linear.weight.copy_(torch.eye(linear.weight.shape[0], dtype=linear.weight.dtype))
                linear.bias.zero_()


def build_tiny(device: str = "cpu", *, seed: int = 0, decoder_layers: int | None = None) -> Seq2SeqBackbone:
    import torch
    from transformers import BertConfig, BertModel

    tokenizer = _minilm_tokenizer()
    sizes = {"hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64,
             "max_position_embeddings": 128, "vocab_size": len(tokenizer),
             "pad_token_id": tokenizer.pad_token_id}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = BertModel(BertConfig(num_hidden_layers=2, **sizes), add_pooling_layer=False)
        model = _bert_encoder_decoder(encoder, BertConfig(num_hidden_layers=decoder_layers or 1, **sizes),
                                      tokenizer, init_from=None)
    return Seq2SeqBackbone(model, tokenizer, name="tiny", device=device, fresh_parameters=("",),
                           weights=f"random:decoder_layers={decoder_layers or 1}:seed={seed}")


def build_t5_small_scratch(device: str = "cpu", *, seed: int = 0,
                           decoder_layers: int | None = None) -> Seq2SeqBackbone:
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    tokenizer = _minilm_tokenizer()
    config = T5Config(vocab_size=len(tokenizer), d_model=256, d_kv=64, d_ff=1024, num_heads=4,
                      num_layers=4, num_decoder_layers=decoder_layers or 2,
                      pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.sep_token_id,
                      decoder_start_token_id=tokenizer.pad_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = T5ForConditionalGeneration(config)
    return Seq2SeqBackbone(model, tokenizer, name="t5-small-scratch", device=device, fresh_parameters=("",),
                           weights=f"random:decoder_layers={decoder_layers or 2}:seed={seed}")


def load_local_checkpoint(path: Path, device: str = "cpu") -> Seq2SeqBackbone:
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from ..encoders import _offline

    _offline()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        with _quiet_hf():
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


def builtin_backbones() -> list[BackboneEntry]:
    """Each factory: ``factory(device="cpu", *, seed=0, decoder_layers=None) -> Seq2SeqBackbone``."""
    return [
        BackboneEntry("minilm-encdec", build_minilm_encdec,
                      "all-MiniLM-L6-v2 encoder + decoder warm-started from its first layers (default 2)"),
        BackboneEntry("t5-small-scratch", build_t5_small_scratch,
                      "T5 4+2 layers, d_model 256, random init, MiniLM vocabulary"),
        BackboneEntry("tiny", build_tiny, "random 2+1-layer 32-wide BERT encoder-decoder; tests only"),
    ]


@hookimpl
def register_backbones(register):
    for entry in builtin_backbones():
        register(entry)
