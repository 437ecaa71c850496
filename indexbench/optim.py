"""The optimisation recipe every trainer in indexbench shares.

AdamW without weight decay on biases and normalisation weights, a warm-up then a decay (linear
to zero by default; `SCHEDULES` names the others), gradient-norm clipping; under torchrun the gradients are summed over the processes
before clipping (`indexbench.distributed`). Encoder fine-tuning, SimCSE, seq2seq training and the semantic
indexers all use it, so a change of recipe happens in one place.

torch is imported inside the functions: importing this module is cheap.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from . import distributed  # imports no torch either


def warmup_linear_decay(total: int, warmup: int):
    """LambdaLR factor: ramps up over ``warmup`` steps, then decays linearly to zero at ``total``."""

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor


def warmup_rsqrt(total: int, warmup: int):
    """LambdaLR factor of T5's ``rsqrt`` schedule, TIGER's: flat at the peak for the first
    ``warmup`` steps, then sqrt(warmup / step) (``total`` is not used)."""

    def factor(step: int) -> float:
        return 1.0 if step < warmup else math.sqrt(max(1, warmup) / max(1, step))

    return factor


def warmup_cosine(total: int, warmup: int):
    """LambdaLR factor: ramps up over ``warmup`` steps, then follows half a cosine to zero at ``total``."""

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def warmup_constant(total: int, warmup: int):
    """LambdaLR factor: ramps up over ``warmup`` steps, then stays at the peak."""

    def factor(step: int) -> float:
        return (step + 1) / warmup if warmup and step < warmup else 1.0

    return factor


SCHEDULES = {"linear": warmup_linear_decay, "rsqrt": warmup_rsqrt, "cosine": warmup_cosine,
             "constant": warmup_constant}
"""The learning-rate schedules by name: each maps (total steps, warm-up steps) to a LambdaLR factor."""


@dataclass
class Optimisation:
    """An AdamW optimiser with its schedule, built by `adamw`; `step(loss)` does one update."""

    optimizer: Any
    scheduler: Any
    params: list
    max_grad_norm: float
    steps: int = 0
    data_parallel: bool = False  # the trainer feeds each process a shard (`distributed.shard`)

    def step(self, loss) -> float:
        """Back-propagate ``loss``, clip, update, advance the schedule; return the loss value."""
        import torch

        # Under torchrun each process holds its shard's share of the batch loss: the sum is the
        # batch's loss, and every process sees the same value (so all stop together below).
        value = float(loss.detach().float().cpu())
        if self.data_parallel:
            value = distributed.all_reduce_sum(value, loss.device)
        if not math.isfinite(value):
            # Updating on it would turn every weight into NaN and the run into silent zeros.
            raise FloatingPointError(
                f"training diverged: the loss is {value} after {self.steps} steps; lower the learning rate")
        self.steps += 1
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.data_parallel:
            distributed.all_reduce_gradients(self.params)
        if self.max_grad_norm and self.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.params, self.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        return value

    def release(self) -> None:
        """Drop gradients (they can be as large as the model)."""
        self.optimizer.zero_grad(set_to_none=True)


def adamw(
    named_parameters: Iterable[tuple[str, Any]],
    *,
    lr: float,
    total_steps: int,
    warmup_ratio: float = 0.1,
    weight_decay: float = 0.01,
    max_grad_norm: float = 1.0,
    fresh: Callable[[str], bool] | None = None,
    fresh_lr: float | None = None,
    data_parallel: bool = False,
    schedule: str = "linear",
    warmup_steps: int | None = None,
    algorithm: str = "adamw",
) -> Optimisation:
    """AdamW over the trainable parameters; biases and norm weights (ndim < 2) are not decayed.

    With ``fresh`` and ``fresh_lr``, parameters whose name ``fresh(name)`` accepts -- weights
    that start untrained, next to pretrained ones -- learn at ``fresh_lr`` instead of ``lr``
    (same schedule). A warm-started model needs both: a rate gentle enough not to wreck the
    pretrained weights is far too slow for a freshly initialised cross-attention or head.

    ``data_parallel``: the caller gives each torchrun process its shard of every batch, scaled
    by the shard's share; `Optimisation.step` then sums gradients and loss over the processes. A
    trainer that does not shard leaves it False: every process then trains on whole batches and
    takes the same steps, duplicated work but the single-process result.

    ``schedule`` names the learning-rate schedule (`SCHEDULES`); ``warmup_steps``, when given,
    replaces ``warmup_ratio``. ``algorithm="adafactor"`` swaps AdamW for torch's Adafactor (T5X's
    default optimiser; its steps scale with each weight's size), same groups and schedule.
    """
    import torch

    groups: dict[tuple[bool, bool], list] = {}
    for name, param in named_parameters:
        if not param.requires_grad:
            continue
        no_decay = param.ndim < 2 or "layernorm" in name.lower() or "layer_norm" in name.lower()
        is_fresh = bool(fresh is not None and fresh_lr is not None and fresh(name))
        groups.setdefault((no_decay, is_fresh), []).append(param)
    param_groups = [{"params": params, "weight_decay": 0.0 if no_decay else weight_decay,
                     "lr": fresh_lr if is_fresh else lr}
                    for (no_decay, is_fresh), params in sorted(groups.items())]
    # fused: one pass over each tensor instead of ~10 elementwise ones; for 46 M parameters on
    # the CPU a step took 0.54 s against the per-tensor loop's 0.75 s (one thread, beside another
    # job: a ratio, not a timing), and the updates match it to float rounding
    # (benchmarks/LOG.md, "The training step").
    fused = all(q.is_floating_point() and q.device.type in ("cpu", "cuda")
                for g in param_groups for q in g["params"])
    if algorithm == "adafactor":
        optimizer = torch.optim.Adafactor(param_groups, lr=lr)
    elif algorithm == "adamw":
        optimizer = torch.optim.AdamW(param_groups, lr=lr, fused=fused or None)
    else:
        raise ValueError(f"unknown optimiser {algorithm!r}; valid: adamw, adafactor")
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {schedule!r}; valid: {', '.join(SCHEDULES)}")
    if warmup_steps is not None:
        warmup = int(warmup_steps)
    else:
        warmup = int(math.ceil(warmup_ratio * total_steps)) if warmup_ratio > 0 else 0
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, SCHEDULES[schedule](total_steps, warmup))
    return Optimisation(optimizer, scheduler, [q for g in param_groups for q in g["params"]], max_grad_norm,
                        data_parallel=data_parallel)


__all__ = ["SCHEDULES", "Optimisation", "adamw", "warmup_constant", "warmup_cosine", "warmup_linear_decay",
           "warmup_rsqrt"]
