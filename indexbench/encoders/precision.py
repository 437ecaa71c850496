"""How an encoder computes at inference: the precisions it offers, the default per device, and the
int8 copy of a model."""

from __future__ import annotations

import warnings
from typing import Any

PRECISIONS = ("auto", "fp32", "int8", "bf16")
"""Inference precisions of `TextEncoder.encode` (training always runs in float32, under bf16
autocast on CUDA). ``int8``: torch dynamic quantisation of the linear layers (CPU only);
``bf16``: bf16 autocast; ``auto``: the device's default (`DEFAULT_PRECISION`)."""

DEFAULT_PRECISION = {"cpu": "fp32", "cpu-amx": "bf16", "cuda": "bf16"}
"""``auto`` per device: bf16 on CUDA, and on a CPU with AMX bf16 tiles (Intel Sapphire Rapids
and later), where it is over twice as fast as fp32 with SciFact ndcg@10 unchanged; fp32 on any
other CPU, where bf16 has no fast kernels and int8 loses ndcg@10. The measurements, with the
machine they ran on: benchmarks/LOG.md, "Encoding precision"."""

def resolve_precision(requested: str, device: str) -> str:
    """``requested`` (one of `PRECISIONS`) for ``device``; a clear error where it cannot run."""
    from ..errors import ConfigError

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


__all__ = ["DEFAULT_PRECISION", "PRECISIONS", "cpu_has_amx_bf16", "int8_copy", "resolve_precision"]
