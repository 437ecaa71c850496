"""The dual-encoder baseline: embed documents and queries with one text encoder, rank by cosine.

``--indexer dual-encoder`` is zero-shot all-MiniLM-L6-v2; ``--indexer dual-encoder:finetune=true``
first fine-tunes the encoder on the task's training pairs with in-batch negatives (InfoNCE). The
paper's "dual encoder" baseline (Table 4) is the fine-tuned variant.

Importing this module is cheap: torch, transformers and faiss load inside `build_retriever`.
"""

from dataclasses import asdict, dataclass

from indexbench import IndexerEntry, hookimpl, option
from indexbench.encoders import PRECISIONS
from indexbench.options import check_options


@dataclass
class DualEncoderConfig:
    """Options of ``--indexer dual-encoder:key=value:...``.

    Fine-tuning defaults follow common sentence-transformers practice for MiniLM (lr 2e-5,
    temperature 0.05 = scale 20, batch 32). ``max_steps`` caps the optimiser steps so that a CPU
    run stays in minutes (about 6 s per MiniLM step of 32 pairs at 256 document tokens on two
    cores): SciFact's 919 training pairs make 29 batches per epoch, so 3 epochs = 87 steps fit
    under the cap of 100; a larger training set stops at 100 steps (3,200 pairs) unless raised.
    ``precision`` is how documents and queries are encoded (`indexbench.encoders.PRECISIONS`:
    ``auto`` = the device's default, ``fp32``, ``int8`` on the CPU, ``bf16``); fine-tuning
    always runs in float32 (bf16 autocast on CUDA).
    ``index`` is the faiss index searched: ``flat`` (exact inner product) or ``ivf`` (approximate:
    an inverted file of ``nlist`` k-means cells, 0 = 4·√n, of which ``nprobe`` are searched per
    query; seeded, so repeatable). HNSW is not offered: faiss builds it in parallel, and the
    graph then depends on thread timing, so the same seed would not give the same metrics.
    """

    finetune: bool = False
    encoder: str = "minilm"
    epochs: int = option(3, ge=1)
    batch_size: int = option(32, ge=2)  # in-batch negatives need a second pair
    lr: float = option(2e-5, gt=0)
    max_steps: int = option(100, ge=0)
    temperature: float = option(0.05, gt=0)
    symmetric: bool = False
    doc_max_length: int = option(256, ge=1)
    query_max_length: int = option(64, ge=1)
    encode_batch_size: int = option(64, ge=1)
    precision: str = option("auto", choices=PRECISIONS)
    index: str = option("flat", choices=("flat", "ivf"))
    nlist: int = option(0, ge=0)
    nprobe: int = option(16, ge=1)


class DualEncoderIndexer:
    """A retrieving indexer: encoder (optionally fine-tuned) + exact inner-product search."""

    name = "dual-encoder"

    def __init__(self, config: DualEncoderConfig | None = None):
        self.config = config or DualEncoderConfig()
        check_options(self.config, "indexer 'dual-encoder'")
        self.details: dict = {}
        """Filled by `build_retriever`: encoder identity, training history summary, timings."""

    def build_retriever(self, problem, ctx):
        from ._impl import build_retriever

        return build_retriever(self, problem, ctx)

    def __repr__(self) -> str:
        return f"DualEncoderIndexer({asdict(self.config)})"


@hookimpl
def register_indexers(register):
    register(
        IndexerEntry(
            name="dual-encoder",
            factory=DualEncoderIndexer,
            config_class=DualEncoderConfig,
            description="dense retrieval with all-MiniLM-L6-v2 (zero-shot, or finetune=true: "
            "in-batch-negative fine-tuning on the task's training pairs) + faiss exact search",
            kind="retrieval",
        )
    )


__all__ = ["DualEncoderConfig", "DualEncoderIndexer", "register_indexers"]
