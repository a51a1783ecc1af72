"""``HiddenWidthAdapter``: prune only the hidden widths of a family's MLPs and inverted-residual expansions.

Many timm families mix tokens with layers torch-pruning cannot follow: attention that reshapes by a fixed head
width or by its *input* width, relative-position tables indexed per head, channel splits of a fixed size
(partial convolutions, inception-style depthwise branches), state-space mixers. Their MLPs, though, are a plain
``expand -> (norm, act, depthwise conv) -> project`` chain whose hidden width nothing else sees. This base
class prunes exactly those hidden widths: every convolution and linear other than a block's expanding layer
keeps its outputs (so the residual width and every token mixer stay as they are), and the token mixers are made
opaque pass-throughs while torch-pruning traces (``opaque_modules``), which also keeps tracing fast. Most of a
transformer's or MetaFormer's MACs are in its MLPs, so the model still gets much smaller. Growth is exact where
the hidden width holds no norm that pools channels (measured by ``grow()`` either way).

A family file sets ``hidden`` (``{block class: dotted path of its expanding layer}``; a wrapper such as
``ConvNorm`` resolves to its first convolution/linear) and ``opaque`` (the token-mixer classes).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from timm.layers import mlp as timm_mlp
from torch import nn

from .base import Adapter
from .pruners import ChannelParamPruner
from .timm_meta import unwrap_model
from .tracing import frozen_params

__all__ = ["HiddenWidthAdapter", "TIMM_MLPS"]

# timm.layers' MLPs and their expanding layer(s); SwiGLU's two input projections form one hidden width.
TIMM_MLPS: dict[type, tuple[str, ...]] = {
    timm_mlp.Mlp: ("fc1",),
    timm_mlp.ConvMlp: ("fc1",),
    timm_mlp.GluMlp: ("fc1",),
    timm_mlp.SwiGLU: ("fc1_g", "fc1_x"),
    timm_mlp.GlobalResponseNormMlp: ("fc1",),
}

_LEAVES = (nn.Conv1d, nn.Conv2d, nn.Linear)


def _leaf(module: nn.Module | None) -> nn.Module | None:
    """The first convolution/linear at or inside ``module`` (``ConvNorm(conv, bn)`` -> ``conv``)."""
    if module is None or isinstance(module, _LEAVES):
        return module
    return next((m for m in module.modules() if isinstance(m, _LEAVES)), None)


def _depthwise(m: nn.Module) -> bool:
    """A depthwise conv: its width is its input's (it cannot start a pruning group), so it is never ignored, or a
    hidden width it sits in (e.g. ``fc1 -> dwconv -> fc2``) could not be pruned."""
    return isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels == m.out_channels


def _width(t: Any) -> int | None:
    """The channel width torch-pruning sees for a tensor: dim 1 of an image, the last dim of tokens."""
    if isinstance(t, (tuple, list)) and t:
        t = t[0]
    if not isinstance(t, torch.Tensor) or t.dim() < 2:
        return None
    return int(t.shape[1] if t.dim() == 4 else t.shape[-1])


class OpaquePruner(ChannelParamPruner):
    """A token mixer whose widths stay: never pruned, but it reports the widths it was traced with, which
    torch-pruning needs where its output is concatenated with others (e.g. CoaT's parallel blocks)."""

    def __init__(self) -> None:
        super().__init__({})

    def get_out_channels(self, layer: nn.Module) -> int | None:
        return getattr(layer, _TRACED, (None, None))[1]

    def get_in_channels(self, layer: nn.Module) -> int | None:
        return getattr(layer, _TRACED, (None, None))[0]


_TRACED = "_robust_prune_traced_widths"


@contextlib.contextmanager
def _recorded_widths(modules: list[nn.Module]) -> Iterator[None]:
    def record(m: nn.Module, args: Any, out: Any) -> None:
        m.__dict__[_TRACED] = (_width(args), _width(out))

    handles = [m.register_forward_hook(record) for m in modules]
    try:
        yield
    finally:
        for h in handles:
            h.remove()
        for m in modules:
            m.__dict__.pop(_TRACED, None)


class HiddenWidthAdapter(Adapter):
    """Prunes the hidden width of each MLP / expansion block only; token mixers are opaque and keep their widths."""

    hidden: dict[type, tuple[str, ...]] = {}
    opaque: tuple[type, ...] = ()
    use_timm_mlps: bool = True

    def hidden_layers(self, model: nn.Module) -> list[nn.Module]:
        """The expanding layers whose output channels may be pruned."""
        table = {**(TIMM_MLPS if self.use_timm_mlps else {}), **self.hidden}
        found: list[nn.Module] = []
        for m in unwrap_model(model).modules():
            for cls, paths in table.items():
                if type(m) is cls:
                    for path in paths:
                        try:
                            layer = _leaf(m.get_submodule(path))
                        except AttributeError:
                            layer = None
                        if layer is not None:
                            found.append(layer)
        return found

    def ignored_layers(self, model: nn.Module) -> list[nn.Module]:
        layers = super().ignored_layers(model)
        hidden = set(self.hidden_layers(model))
        seen = set(layers)
        for m in unwrap_model(model).modules():
            if isinstance(m, _LEAVES) and m not in hidden and m not in seen and not _depthwise(m):
                layers.append(m)
                seen.add(m)
        return layers

    @contextlib.contextmanager
    def graph_context(self, model: nn.Module) -> Iterator[None]:
        # Token parameters (cls tokens, position embeddings) have the residual width, which stays; kept out of the
        # graph, they do not switch off torch-pruning's split index mapping, which gated MLPs (GluMlp) need.
        tokens = [
            p
            for m in unwrap_model(model).modules()
            if not isinstance(m, _LEAVES)
            for p in m.parameters(recurse=False)
            if p.dim() >= 3
        ]
        mixers = [m for m in unwrap_model(model).modules() if isinstance(m, self.opaque)]
        with frozen_params(tokens), _recorded_widths(mixers), super().graph_context(model):
            yield

    def customized_pruners(self, model: nn.Module) -> dict[Any, Any]:
        pruners = super().customized_pruners(model)
        for cls in self.opaque:  # never pruned (their widths are the residual width): opaque pass-throughs
            pruners.setdefault(cls, OpaquePruner())
        return pruners
