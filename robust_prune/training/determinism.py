"""Bit-exact runs on CUDA: :func:`deterministic` turns on PyTorch's deterministic algorithms for a block.

A seeded run is already exact on the CPU. On CUDA, cuDNN picks convolution algorithms by benchmarking and
some kernels (atomic adds in backward passes, cuBLAS's split reductions) sum in a varying order, so two runs with
the same seed differ in the last bits after the first step and drift apart. ``robustify(deterministic=True)``
(``--deterministic``) runs inside :func:`deterministic`:

- ``torch.backends.cudnn.deterministic = True`` and ``torch.backends.cudnn.benchmark = False``;
- ``torch.use_deterministic_algorithms(True)``: an operation with no deterministic CUDA kernel raises a
  ``RuntimeError`` naming it, instead of silently breaking the guarantee;
- ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` (cuBLAS's deterministic workspace; an existing value is kept).

Its cost: the deterministic cuDNN and cuBLAS paths are slower, typically by 10-30% for convolutional networks
(more where cuDNN's benchmarked algorithm was much faster), and cuBLAS keeps about 24 MiB of extra workspace.
Everything is put back when the block ends.

Example:
    >>> import torch
    >>> with deterministic():
    ...     torch.are_deterministic_algorithms_enabled()
    True
    >>> torch.are_deterministic_algorithms_enabled()
    False
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

__all__ = ["deterministic", "CUBLAS_WORKSPACE"]

# cuBLAS's deterministic workspace setting (the larger of the two NVIDIA documents: faster than ":16:8").
CUBLAS_WORKSPACE = ":4096:8"


@contextlib.contextmanager
def deterministic(enabled: bool = True) -> Iterator[None]:
    """Run the block with PyTorch's deterministic settings (a no-op block when ``enabled`` is False).

    Example:
        >>> with deterministic(False):
        ...     torch.are_deterministic_algorithms_enabled()
        False
    """
    if not enabled:
        yield
        return
    before = (
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
    )
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        cudnn_deterministic, cudnn_benchmark, algorithms, warn_only, workspace = before
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn_deterministic, cudnn_benchmark
        torch.use_deterministic_algorithms(algorithms, warn_only=warn_only)
        if workspace is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
