"""The core's seq2seq backbones and their hook (a built-in plugin the registry loads by name).
Each factory: ``factory(device="cpu", *, seed=0, decoder_layers=None) -> Seq2SeqBackbone``.

Registered backbones (`builtin_backbones`):

* ``minilm-encdec`` (default): all-MiniLM-L6-v2 as the encoder, and a decoder warm-started from
  its first ``decoder_layers`` layers (cross-attention initialised as mean pooling of the encoder states). Two decoder layers by
  default: the decoder runs T steps × 20 beams per query, so each layer costs far more at search
  time than an encoder layer, while IDs are only 3 tokens long and need little depth.
* ``t5-small-scratch``: a small T5 (4 encoder / 2 decoder layers, d_model 256) trained from
  scratch on the MiniLM WordPiece vocabulary — the "no pre-training" control.
* ``t5-tiger`` / ``t5-tiger-tuned``: TIGER's T5 from scratch (d_model 128, 6 heads of 64, ReLU
  MLP 1,024; 4+4 layers and dropout 0.1 as in the paper, or 6+6 and 0.2 as cornac's tuned
  recipe), for semantic-ID input (``input=ids``; `indexbench.generative.presets`).
* ``tiny``: a 2+1-layer, 32-wide BERT encoder-decoder with random weights, for tests.
* any local directory holding a Hugging Face seq2seq checkpoint and its tokenizer (a real t5-base
  works unchanged): ``--indexer hc:backbone=/models/t5-base``.
"""

from __future__ import annotations

from pathlib import Path

from ..entries import BackboneEntry
from ..errors import ConfigError
from ..hookspecs import hookimpl
from .backbones import DEFAULT_DECODER_LAYERS, Seq2SeqBackbone, quiet_hf


def _minilm_dir() -> Path:
    from ..encoders.loading import minilm_path, offline_hub

    offline_hub()
    return minilm_path()


def minilm_tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(_minilm_dir()), local_files_only=True)


def _bert_encoder_decoder(encoder, decoder_config, tokenizer, init_from: Path | None):
    from transformers import BertLMHeadModel, EncoderDecoderModel

    decoder_config.is_decoder = True
    decoder_config.add_cross_attention = True
    with quiet_hf():
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
    tokenizer = minilm_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the fresh cross-attention weights
        with quiet_hf():
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

    tokenizer = minilm_tokenizer()
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

    tokenizer = minilm_tokenizer()
    config = T5Config(vocab_size=len(tokenizer), d_model=256, d_kv=64, d_ff=1024, num_heads=4,
                      num_layers=4, num_decoder_layers=decoder_layers or 2,
                      pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.sep_token_id,
                      decoder_start_token_id=tokenizer.pad_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = T5ForConditionalGeneration(config)
    return Seq2SeqBackbone(model, tokenizer, name="t5-small-scratch", device=device, fresh_parameters=("",),
                           weights=f"random:decoder_layers={decoder_layers or 2}:seed={seed}")


def _t5_scratch(name: str, *, layers: int, dropout: float, device: str, seed: int,
                decoder_layers: int | None) -> Seq2SeqBackbone:
    """TIGER's encoder-decoder from scratch: d_model 128, 6 heads of 64, ReLU MLP of 1,024
    (Rajput et al. 2023, §4), ``layers`` + ``layers`` deep. The MiniLM vocabulary's rows are kept
    so text inputs still work; an ID-input model never reads them (3.9 M of its parameters)."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    tokenizer = minilm_tokenizer()
    decoder = decoder_layers or layers
    config = T5Config(vocab_size=len(tokenizer), d_model=128, d_kv=64, d_ff=1024, num_heads=6,
                      num_layers=layers, num_decoder_layers=decoder, dropout_rate=dropout,
                      feed_forward_proj="relu", pad_token_id=tokenizer.pad_token_id,
                      eos_token_id=tokenizer.sep_token_id, decoder_start_token_id=tokenizer.pad_token_id)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = T5ForConditionalGeneration(config)
    return Seq2SeqBackbone(model, tokenizer, name=name, device=device, fresh_parameters=("",),
                           weights=f"random:layers={layers}+{decoder}:dropout={dropout}:seed={seed}")


def build_t5_tiger(device: str = "cpu", *, seed: int = 0, decoder_layers: int | None = None) -> Seq2SeqBackbone:
    return _t5_scratch("t5-tiger", layers=4, dropout=0.1, device=device, seed=seed, decoder_layers=decoder_layers)


def build_t5_tiger_tuned(device: str = "cpu", *, seed: int = 0,
                         decoder_layers: int | None = None) -> Seq2SeqBackbone:
    return _t5_scratch("t5-tiger-tuned", layers=6, dropout=0.2, device=device, seed=seed,
                       decoder_layers=decoder_layers)


def builtin_backbones() -> list[BackboneEntry]:
    """Each factory: ``factory(device="cpu", *, seed=0, decoder_layers=None) -> Seq2SeqBackbone``."""
    return [
        BackboneEntry("minilm-encdec", build_minilm_encdec,
                      "all-MiniLM-L6-v2 encoder + decoder warm-started from its first layers (default 2)"),
        BackboneEntry("t5-small-scratch", build_t5_small_scratch,
                      "T5 4+2 layers, d_model 256, random init, MiniLM vocabulary"),
        BackboneEntry("t5-tiger", build_t5_tiger,
                      "TIGER's T5 from scratch: 4+4 layers, d_model 128, 6 heads, MLP 1024, dropout 0.1"),
        BackboneEntry("t5-tiger-tuned", build_t5_tiger_tuned,
                      "TIGER's T5 as cornac's tuned recipe: 6+6 layers, dropout 0.2"),
        BackboneEntry("tiny", build_tiny, "random 2+1-layer 32-wide BERT encoder-decoder; tests only"),
    ]


@hookimpl
def register_backbones(register):
    for entry in builtin_backbones():
        register(entry)


__all__ = ["build_minilm_encdec", "build_t5_small_scratch", "build_t5_tiger", "build_t5_tiger_tuned", "build_tiny",
           "builtin_backbones", "minilm_tokenizer", "register_backbones"]
