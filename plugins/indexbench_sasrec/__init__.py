"""SASRec (Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018): a causal
self-attention network over item-ID embeddings, the sequential recommender every semantic-ID
paper compares against (TIGER's Table 1).

It reads a user's history as item ids (`RetrievalProblem.sequences` to train,
`QuerySet.histories` to rank), so it applies to `recommendation` only; other tasks skip it with
the reason. Training: one example per user per epoch, the last ``max_len + 1`` items of the
training part of the sequence (every item before the dev target), each position predicting the
next item; Adam; dev NDCG@10 (the dev target, full ranking) after every ``eval_every`` epochs,
stopping after ``patience`` evaluations without a better one and keeping the best weights. At
test every item of the catalogue is scored; already-bought items are not removed (the task's
protocol); items that occur in no training window are ranked last (their embeddings are
untrained: with sampled negatives they keep their random initial scores, which outrank every
trained item once a binary loss has pushed those down; on Beauty 33 items occur only as dev or
test targets).

Options (``--indexer sasrec:key=value``):

* ``loss`` -- ``ce``: softmax cross-entropy over all items; ``bce``: the paper's binary loss with
  one sampled negative per position (uniform over items outside the user's window).
* ``negatives`` -- 0 (default): each loss as above. N > 0: a batch shares N items drawn with
  replacement by training count ** ``popularity_exponent`` (default 0.5), and each position is
  scored against them and every other target of the batch (cornac's sampler and loss contract);
  ``ce`` becomes a sampled softmax, ``bce`` a binary loss averaged over all those pairs.
* ``hidden`` (embedding and model width), ``blocks``, ``heads``, ``max_len`` (history window),
  ``dropout``, ``lr``, ``batch_size``, ``weight_decay`` -- the paper's hyper-parameters.
* ``max_epochs``, ``eval_every``, ``patience`` -- the early-stopping schedule.

Departures from the authors' code: pre-norm blocks from torch's ``TransformerEncoderLayer``
(theirs: layer norm on the query only); padding keys masked in attention (theirs: zeroed
but attended); a batch is cut to its longest real sequence (same result, less work); the
cross-entropy loss is the now-common variant (Klenitskiy & Vasilev, RecSys 2023), not the paper's.

The trained weights are cached per problem, options and seed. On CUDA, training and scoring run
under bf16 autocast; under torchrun each process trains on its shard of every batch
(`indexbench.distributed`), with one process's steps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from indexbench import IndexerEntry, hookimpl, option
from indexbench.errors import ConfigError
from indexbench.options import check_options
from indexbench.protocols import RetrievalProblem, RunContext

__version__ = "0.1.0"


@dataclass
class SASRecConfig:
    loss: str = option("ce", choices=("ce", "bce"))
    hidden: int = option(64, ge=1)
    blocks: int = option(2, ge=1)
    heads: int = option(1, ge=1)
    max_len: int = option(50, ge=1)
    dropout: float = option(0.2, ge=0, lt=1)
    lr: float = option(1e-3, gt=0)
    batch_size: int = option(128, ge=1)
    weight_decay: float = option(0.0, ge=0)
    max_epochs: int = option(200, ge=1)
    eval_every: int = option(1, ge=1)
    patience: int = option(10, ge=1)
    negatives: int = option(0, ge=0)
    popularity_exponent: float = option(0.5, ge=0)

    def validate(self) -> None:
        """Rules across options (`check_options` runs it)."""
        if self.hidden % self.heads:
            raise ConfigError(f"hidden ({self.hidden}) must be a multiple of heads ({self.heads})")


class SASRecRetriever:
    def __init__(self, model, items, device: str, untrained=None):
        self._model = model
        self._items = items
        self._device = device
        self._untrained = untrained

    def search_histories(self, histories: Sequence[Sequence[str]], k: int) -> list[list[tuple[str, float]]]:
        from ._train import top_k

        if not histories:
            return []
        aligned = self._items.right_aligned(histories, self._model.max_len)
        indexes, scores = top_k(self._model, aligned, k, self._device, self._untrained)
        return [[(self._items.ids[i - 1], float(s)) for i, s in zip(row, values)]
                for row, values in zip(indexes, scores)]

    def search(self, queries: Sequence[str], k: int) -> list[list[tuple[str, float]]]:
        raise ConfigError("sasrec ranks from item-ID histories (search_histories), not from query text")


class SASRec:
    name = "sasrec"
    needs_histories = True

    def __init__(self, config: SASRecConfig | None = None):
        self.config = config or SASRecConfig()
        check_options(self.config, "indexer 'sasrec'")  # also when built directly, not from a spec
        self.details: dict[str, Any] = {}

    def build_retriever(self, problem: RetrievalProblem, ctx: RunContext) -> SASRecRetriever:
        import json

        import torch

        from ._model import SASRecModel
        from ._train import ItemIndex, train, training_windows, untrained_items

        if not problem.sequences:
            raise ConfigError(f"sasrec needs users' item sequences; {problem.task} has none")
        cfg = self.config
        device = ctx.device
        items = ItemIndex(problem.corpus.ids)
        torch.manual_seed(ctx.seed)
        model = SASRecModel(len(items.ids), cfg.hidden, cfg.blocks, cfg.heads, cfg.max_len, cfg.dropout).to(device)
        dev_users = [u for u in problem.dev.queries if u in problem.dev.histories]
        dev_histories = items.right_aligned([problem.dev.histories[u] for u in dev_users], cfg.max_len)
        dev_targets = [items.index[next(iter(problem.dev.qrels[u]))] for u in dev_users]

        def create(directory) -> None:
            import numpy as np

            history = train(model, cfg, items, list(problem.sequences.values()), dev_histories,
                            np.asarray(dev_targets, dtype=np.int64), seed=ctx.seed, device=device,
                            progress=ctx.progress)
            torch.save(model.state_dict(), directory / "model.pt")
            (directory / "history.json").write_text(json.dumps(history))

        def load(directory) -> dict[str, Any]:
            model.load_state_dict(torch.load(directory / "model.pt", map_location=device))
            model.eval()
            return json.loads((directory / "history.json").read_text())

        key = {"problem": problem.fingerprint, "config": dataclasses.asdict(cfg), "seed": ctx.seed,
               "device": device.split(":")[0], "version": __version__, "torch": torch.__version__}
        history = ctx.cache.get_or_create("sasrec", key, create, load)
        self.details = {"training": {k: v for k, v in history.items() if k != "curve"},
                        "dev_curve": history["curve"]}
        untrained = untrained_items(training_windows(items, list(problem.sequences.values()), cfg.max_len),
                                    len(items.ids))
        return SASRecRetriever(model, items, device, untrained)


@hookimpl
def register_indexers(register):
    register(IndexerEntry(
        name="sasrec",
        factory=SASRec,
        config_class=SASRecConfig,
        description="SASRec (Kang & McAuley 2018): self-attention over item-ID histories; recommendation only",
        kind="retrieval",
    ))
