"""Data-parallel training when indexbench is launched by ``torchrun`` or ``accelerate launch``.

Both launchers start N copies of the program with ``RANK``, ``WORLD_SIZE`` and ``MASTER_ADDR`` in
the environment. Every copy runs the whole grid in lockstep: the trainers give each process a
shard of every batch (`shard`), back-propagate that shard's share of the batch's mean loss, and
sum the gradients over the processes (`all_reduce_gradients`) before the update, so each step
sees the same batch and takes the same update as one process would -- the same effective batch
and number of steps. Only the main process (rank 0) writes the results store and the artifact
cache; the others keep their artifacts in a private temporary cache.

This is what ``torch.nn.parallel.DistributedDataParallel`` computes, done on the gradients
directly: the trainers call models through functions of their own (``id_losses(backbone, ...)``,
a reconstructor beside an encoder), which DDP's module wrapper would not see.

Outside a launcher (``WORLD_SIZE`` unset or 1) every function here is a no-op that imports
nothing.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def launched() -> bool:
    """Whether this process is one of several started by torchrun / accelerate launch."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_environment(device: str = "cpu") -> bool:
    """Join the launcher's process group (gloo on CPU, nccl on CUDA) once; True if distributed."""
    if not launched():
        return False
    import torch.distributed as dist

    if not dist.is_initialized():
        if device == "cuda":
            import torch

            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if device == "cuda" else "gloo")
    return True


def _group():
    """The torch.distributed module when a process group of more than one is up, else None."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized() or dist.get_world_size() < 2:
        return None
    return dist


def world_size() -> int:
    dist = _group()
    return dist.get_world_size() if dist else 1


def rank() -> int:
    dist = _group()
    return dist.get_rank() if dist else 0


def is_main() -> bool:
    return rank() == 0


def shard(batch: Sequence[T]) -> tuple[list[T], float]:
    """This process's items of ``batch`` (`shard_indices`) and their share of it (`shard_share`),
    by which their mean loss is scaled so that the summed gradients are the whole batch mean's."""
    items = list(batch)
    return [items[i] for i in shard_indices(len(items))], shard_share(len(items))


def shard_indices(size: int) -> list[int]:
    """The positions in a batch of ``size`` that this process computes: every world_size-th
    from its rank (all of them outside torchrun). A process left without any (a batch smaller
    than the world) computes position 0 as a stand-in that `gather_batch` never reads."""
    world = world_size()
    return list(range(rank(), size, world)) or [0]


def shard_share(size: int) -> float:
    """The share of a batch of ``size`` that `shard_indices` gives this process (0 for a
    stand-in): scale a per-item mean loss by it, and the summed gradients are the batch mean's."""
    world = world_size()
    return len(range(rank(), size, world)) / size if size else 0.0


def gather_batch(part: Any, size: int) -> Any:
    """The whole batch's rows from every process's `shard_indices` rows, in batch order, with
    gradients flowing back to each process's own rows: a loss that compares every item with
    every other (in-batch negatives) sees the same batch as one process would. Scale such a
    loss by ``1 / world_size()``: each process computes all of it, and the gradients are summed."""
    dist = _group()
    if dist is None:
        return part
    import torch

    world = dist.get_world_size()
    rows = -(-size // world)  # the most any process holds
    if part.shape[0] < rows:
        part = torch.cat([part, part.new_zeros((rows - part.shape[0], *part.shape[1:]))])
    gathered = _all_gather_function().apply(part[:rows].contiguous())  # (world, rows, ...)
    order = torch.tensor([(i % world) * rows + i // world for i in range(size)], device=part.device)
    return gathered.reshape(world * rows, *part.shape[1:]).index_select(0, order)


@functools.cache
def _all_gather_function():
    """The autograd Function behind `gather_batch`, defined on first use (this module imports
    no torch)."""
    import torch

    class AllGather(torch.autograd.Function):
        """Every process's tensor, stacked; the gradient of one's own comes back summed over
        the processes (each holds a loss that used it)."""

        @staticmethod
        def forward(ctx, tensor):
            dist = _group()
            parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
            dist.all_gather(parts, tensor)
            return torch.stack(parts)

        @staticmethod
        def backward(ctx, grad):
            dist = _group()
            grad = grad.contiguous()
            dist.all_reduce(grad)
            return grad[dist.get_rank()]

    return AllGather


def all_reduce_gradients(params: Sequence[Any]) -> None:
    """Sum every parameter's gradient over the processes (one flat buffer, one collective).
    A parameter without a gradient on some process counts as zero there."""
    dist = _group()
    if dist is None:
        return
    import torch

    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1).float() for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for param, grad in zip(params, grads):
        count = grad.numel()
        param.grad = flat[offset : offset + count].view_as(grad).to(grad.dtype)
        offset += count


def all_reduce_sum(value: float, device: Any = "cpu") -> float:
    """The sum of one number over the processes (a shard's share of the batch loss -> the loss)."""
    dist = _group()
    if dist is None:
        return value
    import torch

    tensor = torch.tensor([value], dtype=torch.float64, device=device)  # nccl: on the GPU
    dist.all_reduce(tensor)
    return float(tensor.item())


__all__ = ["all_reduce_gradients", "all_reduce_sum", "gather_batch", "init_from_environment", "is_main", "launched", "rank",
           "shard", "shard_indices", "shard_share", "world_size"]
