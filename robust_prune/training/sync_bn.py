"""Synchronised BatchNorm for training on several processes: batch statistics over the global batch.

With the batch split over N processes, each process's BatchNorm normalises with the statistics of its own
B / N images, noisier than one process's over all B. ``python -m benchmarks sync_bn`` measures both against one
process (``benchmarks/results/sync_bn.md``: test_resnet on the digits, PGD-20, one seed; at 2 x 8 0.723
unsynchronised, 0.780 synchronised, 0.763 for one process, all within one run's sampling error).
:func:`synced_batchnorm` makes every training-mode batch norm inside its block normalise with the mean and
variance of all processes' images, as one process at the global batch would, and update the running statistics
with them.

It works at the level of ``torch.nn.functional.batch_norm`` (a ``TorchFunctionMode``), so the model's modules
are not replaced: timm's ``BatchNormAct2d`` and plain ``BatchNorm2d`` alike are synchronised, on the CPU (gloo)
as on CUDA (nccl), and nothing of the model changes type (pruning, saving and the adapters see the same modules).
Eval-mode batch norms (the attack, evaluation) use their running statistics and are left alone.

Example:
    >>> import torch
    >>> bn = torch.nn.BatchNorm2d(3).train()
    >>> x = torch.randn(4, 3, 5, 5)
    >>> with synced_batchnorm(False):  # one process: nothing to synchronise
    ...     torch.equal(bn(x), torch.nn.functional.batch_norm(x, None, None, training=True))
    True
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

__all__ = ["SYNC_BN_BELOW", "synced_batchnorm", "use_sync_bn"]

# BatchNorm is synchronised by default when each process sees fewer images than this per step, so that small
# per-process batches normalise with the statistics one process would use (see the module docstring).
SYNC_BN_BELOW = 64


def use_sync_bn(setting: bool | None, *, per_process_batch: int, processes: int) -> bool:
    """Whether to synchronise: ``setting`` when given, else on several processes with fewer than
    :data:`SYNC_BN_BELOW` images each.

    Example:
        >>> use_sync_bn(None, per_process_batch=32, processes=2), use_sync_bn(None, per_process_batch=32, processes=1)
        (True, False)
    """
    if processes < 2:
        return False
    return setting if setting is not None else per_process_batch < SYNC_BN_BELOW


class _SumAcross(torch.autograd.Function):
    """The sum over the processes, differentiable: the backward sums the gradients of every process's loss."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        out = tensor.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        out = grad.contiguous().clone()
        dist.all_reduce(out)
        return out


def _global_batch_norm(
    x: torch.Tensor,
    running_mean: torch.Tensor | None,
    running_var: torch.Tensor | None,
    weight: torch.Tensor | None,
    bias: torch.Tensor | None,
    momentum: float,
    eps: float,
) -> torch.Tensor:
    """Training-mode batch norm with the mean and (biased) variance of every process's ``x``, differentiable through
    the all-reduce (its backward sums the gradients of every process, as torch's SyncBatchNorm does)."""
    dims = [0, *range(2, x.dim())]
    xf = x.float()
    count = torch.full((1,), xf.numel() / xf.shape[1], device=x.device, dtype=torch.float32)
    totals = _SumAcross.apply(torch.cat([xf.sum(dims), (xf * xf).sum(dims), count]))
    channels = x.shape[1]
    n = totals[-1]
    mean = totals[:channels] / n
    var = (totals[channels : 2 * channels] / n - mean * mean).clamp_min(0)
    shape = [1, channels] + [1] * (x.dim() - 2)
    out = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + eps)
    if weight is not None:
        out = out * weight.view(shape)
    if bias is not None:
        out = out + bias.view(shape)
    if running_mean is not None and running_var is not None:
        with torch.no_grad():  # the update torch's batch norm makes: unbiased variance, exponential average
            running_mean.mul_(1 - momentum).add_(mean.detach(), alpha=momentum)
            running_var.mul_(1 - momentum).add_(var.detach() * n / (n - 1).clamp_min(1), alpha=momentum)
    return out.to(x.dtype)


class _SyncMode(TorchFunctionMode):
    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        if func is not F.batch_norm:
            return func(*args, **(kwargs or {}))
        bound = dict(zip(("input", "running_mean", "running_var", "weight", "bias", "training", "momentum", "eps"),
                         args), **(kwargs or {}))  # fmt: skip
        if not bound.get("training", False):
            return func(*args, **(kwargs or {}))
        return _global_batch_norm(bound["input"], bound.get("running_mean"), bound.get("running_var"),
                                  bound.get("weight"), bound.get("bias"), bound.get("momentum", 0.1),
                                  bound.get("eps", 1e-5))  # fmt: skip


@contextlib.contextmanager
def synced_batchnorm(enabled: bool = True) -> Iterator[None]:
    """Synchronise every training-mode batch norm in the block over the processes (needs a process group when
    ``enabled``; a plain block otherwise).

    Example:
        >>> with synced_batchnorm(False):
        ...     pass
    """
    if not enabled:
        yield
        return
    with _SyncMode():
        yield
