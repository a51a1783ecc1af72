"""Where a model's time goes, per kind of layer: the "why" behind a latency ratio that a FLOPs ratio does not predict.

Every module is timed with forward hooks; a module's *self* time (its time less its children's) goes to its
kind: convolutions split into full, pointwise and depthwise, linear layers, norms, activations, and the glue
inside composite modules (residual adds, reshapes, the attention matmuls inside ``F.scaled_dot_product_attention``,
squeeze-excite's pool and gate) under ``"<Class> (own ops)"``. MACs per kind come from the layers' shapes.

Example:
    >>> import timm, torch
    >>> rows = kind_profile(timm.create_model("test_resnet").eval(), torch.rand(2, 3, 32, 32), repeats=1)
    >>> "conv kxk" in rows
    True
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from typing import Any

import torch
from torch import nn

__all__ = ["kind_of", "kind_profile"]

_NORMS = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)
_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.Tanh, nn.Softmax)


def kind_of(module: nn.Module) -> str:
    """The kind a module's own work is counted under."""
    if isinstance(module, nn.Conv2d):
        if module.groups > 1 and module.groups == module.in_channels:
            return "conv depthwise"
        return "conv 1x1" if tuple(module.kernel_size) == (1, 1) else "conv kxk"
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, _NORMS) or "Norm" in type(module).__name__:
        return "norm"
    if isinstance(module, _ACTIVATIONS) or type(module).__name__ in {"GELUTanh", "QuickGELU", "HardSwish"}:
        return "activation"
    if not any(True for _ in module.children()):
        return f"{type(module).__name__}"
    return f"{type(module).__name__} (own ops)"


def _macs(module: nn.Module, out: Any) -> int:
    if not isinstance(out, torch.Tensor):
        return 0
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return out.numel() * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return out.numel() * module.in_features
    return 0


@torch.no_grad()
def kind_profile(model: nn.Module, x: torch.Tensor, *, repeats: int = 3) -> dict[str, dict[str, float]]:
    """``{kind: {"ms": median self time per forward, "macs": MACs per forward}}`` of ``model`` on ``x``."""
    stack: list[list[float]] = []  # per open module: [start, children's time]
    self_ms: dict[str, float] = defaultdict(float)
    macs: dict[str, float] = defaultdict(float)
    kinds = {m: kind_of(m) for m in model.modules()}

    def pre(module: nn.Module, args: Any) -> None:
        stack.append([time.perf_counter(), 0.0])

    def post(module: nn.Module, args: Any, out: Any) -> None:
        start, children = stack.pop()
        total = time.perf_counter() - start
        self_ms[kinds[module]] += (total - children) * 1000
        macs[kinds[module]] += _macs(module, out)
        if stack:
            stack[-1][1] += total

    handles = [h for m in model.modules() for h in (m.register_forward_pre_hook(pre), m.register_forward_hook(post))]
    runs: list[dict[str, float]] = []
    try:
        model(x)  # warm-up
        for _ in range(repeats):
            self_ms.clear()
            macs.clear()
            model(x)
            runs.append(dict(self_ms))
    finally:
        for h in handles:
            h.remove()
    return {k: {"ms": statistics.median(r.get(k, 0.0) for r in runs), "macs": macs.get(k, 0.0)} for k in runs[-1]}
