"""Tracing aids for torch-pruning's dependency graph: temporary class swaps and forward patches, opaque links
between tensors the graph cannot follow, frozen parameters, and the output channels a layer kept.

Every helper is a context manager that restores the model on exit, so tracing leaves no trace."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn

__all__ = [
    "swapped_classes",
    "opaque_modules",
    "link",
    "patched_forwards",
    "glu_tracing_forward",
    "timm_tracing_forwards",
    "frozen_params",
    "kept_output_channels",
]


@contextlib.contextmanager
def swapped_classes(swaps: dict[nn.Module, type]) -> Iterator[None]:
    """Temporarily give some modules another class (a subclass with its own torch-pruning pruner).

    torch-pruning picks a layer's pruner by its exact class; this lets two kinds of one timm layer (e.g. a
    depthwise and a pointwise MixedConv2d) get different pruners. The original classes come back on exit.
    """
    originals = {m: type(m) for m in swaps}
    try:
        for m, cls in swaps.items():
            m.__class__ = cls
        yield
    finally:
        for m, cls in originals.items():
            m.__class__ = cls


class _OpaqueLink(torch.autograd.Function):
    """One autograd node from a module's input to its output, hiding the ops in between from the tracer."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, out: torch.Tensor, *anchors: torch.Tensor) -> torch.Tensor:
        return out.clone()

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> Any:  # pragma: no cover - never called
        raise RuntimeError("robust_prune: no backward through a module made opaque for graph tracing.")


@contextlib.contextmanager
def opaque_modules(modules: Iterable[nn.Module]) -> Iterator[None]:
    """While torch-pruning traces, make each module's forward a single autograd node (input -> output).

    A layer with a customised pruner is a black box to torch-pruning, but the tracer still walks the autograd
    graph *inside* it, and internal splits, reshapes or concatenations then remap the indices flowing to its
    input. Run the real forward without grad and link input to output with one node instead.
    """
    patched = []
    try:
        for m in modules:
            original = m.forward
            anchor = next((p for p in m.parameters() if p.requires_grad), None)

            def forward(*args: Any, _original: Callable[..., Any] = original, _anchor: Any = anchor, **kwargs: Any):
                with torch.no_grad():
                    out = _original(*args, **kwargs)
                x = args[0] if args else None
                if not isinstance(out, torch.Tensor) or not isinstance(x, torch.Tensor):
                    return out
                anchors = [_anchor] if _anchor is not None else []
                if not x.requires_grad and not anchors:
                    return out
                return _OpaqueLink.apply(x, out, *anchors)

            patched.append((m, m.__dict__.get("forward")))  # some layers set their forward per instance
            m.forward = forward  # instance attribute shadows the class's forward
        yield
    finally:
        _restore_forwards(patched)


def _restore_forwards(patched: list[tuple[nn.Module, Any]]) -> None:
    """Undo instance-level ``forward`` patches, putting back a module's own per-instance forward if it had one."""
    for m, own in patched:
        m.__dict__.pop("forward", None)
        if own is not None:
            m.forward = own


def link(out: torch.Tensor, *sources: torch.Tensor) -> torch.Tensor:
    """``out``'s values behind one autograd node whose inputs are ``sources``.

    torch-pruning treats that node as element-wise, so it ties the channels of all ``sources`` to the
    output: use it in a tracing-only forward (``patched_forwards``) to show the graph exactly the
    dependencies that matter, e.g. a block's prunable inner chain, while fixed-width slicing stays hidden.
    """
    anchors = [t for t in sources if isinstance(t, torch.Tensor) and t.requires_grad]
    if not anchors:
        return out
    return _OpaqueLink.apply(anchors[0], out.detach(), *anchors[1:])


@contextlib.contextmanager
def patched_forwards(forwards: dict[nn.Module, Callable[..., Any]]) -> Iterator[None]:
    """Give modules a different forward while torch-pruning traces them; ``forwards[m](m, *args)``.

    The tracing forward must return the same values as the real one (compute them with the original
    forward under ``torch.no_grad()`` and ``link`` them to the tensors that carry the dependencies).
    """
    patched = []
    try:
        for m, fn in forwards.items():
            patched.append((m, m.__dict__.get("forward")))
            m.forward = functools.partial(fn, m)
        yield
    finally:
        _restore_forwards(patched)


def glu_tracing_forward(mlp: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """timm's GluMlp with its chunk moved to dim 1 (torch-pruning maps splits on dim 1 only); same values."""
    h = mlp.fc1(x)
    moved = mlp.chunk_dim != 1 and h.dim() > 2
    t = h.movedim(-1, 1) if moved else h
    x1, x2 = t.chunk(2, dim=1)
    y = x1 * mlp.act(x2) if mlp.gate_last else mlp.act(x1) * x2
    if moved:
        y = y.movedim(1, -1)
    return mlp.drop2(mlp.fc2(mlp.norm(mlp.drop1(y))))


def timm_tracing_forwards(model: nn.Module) -> dict[nn.Module, Callable[..., Any]]:
    """Tracing forwards for timm layers whose own forward torch-pruning misreads (see ``patched_forwards``)."""
    from timm.layers.mlp import GluMlp

    forwards: dict[nn.Module, Callable[..., Any]] = {}
    for m in model.modules():
        if type(m) is GluMlp and isinstance(m.fc1, nn.Linear):
            forwards[m] = glu_tracing_forward
    return forwards


@contextlib.contextmanager
def frozen_params(params: Iterable[nn.Parameter | None]) -> Iterator[None]:
    """Keep parameters out of torch-pruning's graph while it traces (``requires_grad`` off, then restored).

    For token parameters of a width that stays: torch-pruning turns off *all* split/concat index mapping
    downstream of any 3-D parameter in its graph (a ViT special case), which breaks e.g. gated MLPs.
    """
    saved = [(p, p.requires_grad) for p in params if isinstance(p, nn.Parameter)]
    try:
        for p, _ in saved:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)


@contextlib.contextmanager
def kept_output_channels(
    layers: Iterable[nn.Module], on_exit: Callable[[nn.Module, list[int]], None]
) -> Iterator[None]:
    """Learn which output channels torch-pruning kept in each conv/linear, without touching its pruners.

    On entry each layer gets a bias whose ``.grad`` holds the channel numbers (a zero bias is added for
    the time being where the layer has none); torch-pruning cuts a parameter's ``.grad`` with the
    parameter, so on exit the surviving numbers are the kept channels: ``on_exit(layer, kept)`` runs, and
    the bias and its gradient are put back (cut to the kept channels).
    """
    saved = []
    try:
        for m in layers:
            n = int(m.weight.shape[0])
            had_bias = m.bias is not None
            old_grad = m.bias.grad if had_bias else None
            if not had_bias:
                m.bias = nn.Parameter(torch.zeros(n, dtype=m.weight.dtype, device=m.weight.device))
            m.bias.grad = torch.arange(n, dtype=m.bias.dtype, device=m.bias.device)
            saved.append((m, had_bias, old_grad))
        yield
    finally:
        for m, had_bias, old_grad in saved:
            kept = [int(round(float(i))) for i in m.bias.grad.tolist()] if m.bias.grad is not None else []
            if had_bias:
                m.bias.grad = old_grad[kept] if old_grad is not None else None
            else:
                m.bias = None
            if len(kept) == m.weight.shape[0]:
                on_exit(m, kept)
