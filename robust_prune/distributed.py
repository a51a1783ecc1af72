"""Small helpers for running the same code on one process or many (``torchrun`` / ``accelerate launch``).

Everything here is a no-op on a single process, so library code calls these helpers unconditionally.
Evaluation shards the evaluated points by rank (:func:`shard_mask`) and merges per-point results with
:func:`merge_shards`, so every test point is counted exactly once, with no padded tail. Training
ends each epoch with :func:`broadcast_state` so that every process holds identical weights and
BatchNorm statistics. Only the main process writes files or prints (:func:`is_main_process`).

Example:
    >>> import torch
    >>> from robust_prune import distributed
    >>> distributed.world_size(), distributed.is_main_process()
    (1, True)
    >>> owned = distributed.shard_mask(5)           # every point on a single process
    >>> distributed.merge_shards(torch.tensor([True, False, True, True, False]), owned).tolist()
    [True, False, True, True, False]
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "is_distributed",
    "world_size",
    "rank",
    "is_main_process",
    "shard_mask",
    "merge_shards",
    "sum_across",
    "mean_across",
    "average_gradients",
    "broadcast_state",
    "barrier",
    "device",
    "gather_objects",
    "model_device",
    "main_process_only",
]

F = TypeVar("F", bound=Callable[..., Any])


def is_distributed() -> bool:
    """True when a torch.distributed process group with more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Number of processes (1 without a process group)."""
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    """This process's global rank (0 without a process group; ``RANK`` from the launcher before it starts)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    """True on the process that may write files, print reports and push (rank 0).

    Example:
        >>> from robust_prune.distributed import is_main_process
        >>> is_main_process()
        True
    """
    return rank() == 0


def main_process_only(elsewhere: Callable[..., Any]) -> Callable[[F], F]:
    """Run the decorated function on the main process only; the other processes return ``elsewhere(*args,
    **kwargs)`` instead (what the caller gets back without the side effect). The one guard of every entry point
    that writes or publishes, so that N processes never write the same folder.

    Example:
        >>> @main_process_only(lambda path: None)
        ... def write(path):
        ...     return f"wrote {path}"
        >>> write("out")   # one process: the main one
        'wrote out'
    """

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if not is_main_process():
                return elsewhere(*args, **kwargs)
            return function(*args, **kwargs)

        return guarded  # type: ignore[return-value]

    return decorate


def shard_mask(total: int) -> torch.Tensor:
    """A bool mask over ``total`` points: those this process evaluates (points ``rank::world_size``).

    The shards are disjoint and cover every point, so nothing is padded or counted twice.

    Example:
        >>> shard_mask(3).tolist()
        [True, True, True]
    """
    mask = torch.zeros(total, dtype=torch.bool, device="cpu")  # per-point bookkeeping lives on the host
    mask[rank() :: world_size()] = True
    return mask


def sum_across(tensor: torch.Tensor) -> torch.Tensor:
    """The element-wise sum of ``tensor`` over all processes (a copy; ``tensor`` itself on one process)."""
    if not is_distributed():
        return tensor
    out = tensor.detach().clone()
    if dist.get_backend() == "nccl" and out.device.type != "cuda":
        out = out.cuda()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out.to(tensor.device)


def mean_across(tensor: torch.Tensor) -> torch.Tensor:
    """The element-wise mean of ``tensor`` over all processes, the same bits on every process (``tensor`` itself on
    one process). Pruning ranks channels and weights by it, so every process removes the same ones.

    Example:
        >>> mean_across(torch.tensor([1.0, 3.0])).tolist()
        [1.0, 3.0]
    """
    if not is_distributed():
        return tensor
    return sum_across(tensor) / world_size()


def average_gradients(model: nn.Module) -> None:
    """Replace each parameter's ``.grad`` by its mean over the processes, in place (no-op on one process).

    After a backward pass on each process's own batches, this is the gradient one process gets from all of them
    (equal batch sizes): gradient importances then score what a one-process run scores.
    """
    if not is_distributed():
        return
    for param in model.parameters():
        if param.grad is not None:
            param.grad.copy_(mean_across(param.grad))


def merge_shards(values: torch.Tensor, owned: torch.Tensor) -> torch.Tensor:
    """Combine per-point bool results computed by each process on its own shard into the full vector.

    Args:
        values: per-point results; only the entries where ``owned`` is True are trusted.
        owned: this process's :func:`shard_mask`.

    Example:
        >>> merge_shards(torch.tensor([True, False]), torch.tensor([True, True])).tolist()
        [True, False]
    """
    if not is_distributed():
        return values
    mine = (values.bool() & owned).to(torch.int32)
    return sum_across(mine) > 0


def broadcast_state(model: nn.Module, src: int = 0) -> None:
    """Copy every parameter and buffer of ``model`` from process ``src`` to all others, in place.

    DDP keeps gradients in sync, but BatchNorm running statistics drift apart after each process's
    last forward pass; this makes the processes identical again (call it at epoch ends).
    """
    if not is_distributed():
        return
    nccl = dist.get_backend() == "nccl"
    for tensor in list(model.parameters()) + list(model.buffers()):
        data = tensor.data
        buf = data.contiguous()  # channels_last tensors are not contiguous in the default format
        if nccl and buf.device.type != "cuda":
            buf = buf.cuda()
        dist.broadcast(buf, src=src)
        if buf.data_ptr() != data.data_ptr():
            data.copy_(buf.to(data.device))


def barrier() -> None:
    """Wait for every process (no-op on one process)."""
    if is_distributed():
        dist.barrier()


def device() -> torch.device:
    """The device this process computes on: its GPU (``LOCAL_RANK`` under a launcher) when CUDA is present, else
    the CPU. Library code that creates a tensor for a model uses the model's own device instead (see
    :func:`model_device`); this is for the model's first placement.

    Example:
        >>> device().type in ("cpu", "cuda")
        True
    """
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
    return torch.device("cpu")


def model_device(model: nn.Module) -> torch.device:
    """The device of ``model``'s first parameter (or buffer); the CPU for a model with neither.

    Example:
        >>> model_device(torch.nn.Linear(2, 2))
        device(type='cpu')
    """
    for tensor in list(model.parameters()) + list(model.buffers()):
        return tensor.device
    return torch.device("cpu")


def gather_objects(obj: object) -> list[object]:
    """Every process's ``obj`` (picklable, small: counts and lists of floats), in rank order; ``[obj]`` on one
    process. Used to merge rank-local evaluation statistics.

    Example:
        >>> gather_objects({"apgd-ce": 3})
        [{'apgd-ce': 3}]
    """
    if not is_distributed():
        return [obj]
    out: list[object] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out
