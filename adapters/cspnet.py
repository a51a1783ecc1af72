"""timm.models.cspnet: CSPResNet, CSPResNeXt, CSPDarkNet, CS3 nets, DarkNet.

A cross-stage-partial stage expands (``conv_exp``), splits the result in two halves at the fixed
``expand_chs // 2``, runs blocks on one half and concatenates both before ``conv_transition``.
torch-pruning's split/concat index mapping breaks on these stages (wrong indices, or no graph at all), so
while it traces, each stage runs a forward that returns the same values but shows the graph: the
down-sampling and expansion convs, the blocks on the second half, and the transition convs, with the
split and the concatenation replaced by element-wise links to the (fixed-width) expansion output.
Left alone: ``conv_exp`` outputs (so both halves and the blocks' residual width stay whole) and the
``conv_transition_b`` outputs (concatenated); pruned: the stem, ``conv_down``, each block's bottleneck
and each stage's output (``conv_transition``). BatchNorm, so growth is exact.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from timm.models.cspnet import CrossStage, CrossStage3
from torch import nn

from robust_prune.adapter_api import Adapter, Example, register_adapter, unwrap_model
from robust_prune.adapter_api.tracing import link, patched_forwards

_STAGES = (CrossStage, CrossStage3)


def _tracing_forward(stage: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = type(stage).forward(stage, x)
        h0 = stage.conv_exp(stage.conv_down(x) if stage.conv_down is not None else x)
        half = stage.expand_chs // 2
        x1, x2 = h0[:, :half], h0[:, half:]
    h = stage.conv_down(x) if stage.conv_down is not None else x
    h = stage.conv_exp(h)
    blocks_in = x2 if isinstance(stage, CrossStage) else x1
    xb = stage.blocks(link(blocks_in, h))
    transition_b = getattr(stage, "conv_transition_b", None)
    if transition_b is not None:
        xb = transition_b(xb)
    with torch.no_grad():
        cat = torch.cat([x1, xb], dim=1) if isinstance(stage, CrossStage) else torch.cat([xb, x2], dim=1)
    result = stage.conv_transition(link(cat, h, xb))
    return link(out, result)


@register_adapter
class CspNetAdapter(Adapter):
    name = "cspnet"
    timm_modules = ("cspnet",)
    examples = (
        Example("cspresnet50", "cspnet", variant="cspresnet"),
        Example("cs3darknet_focus_s", "cspnet", variant="cs3darknet"),
        Example("cspdarknet53", "cspnet", quick=False, variant="cspdarknet"),
        Example("cspresnext50", "cspnet", quick=False, variant="cspresnext"),
        Example("darknet17", "cspnet", quick=False, variant="darknet"),
    )

    def ignored_layers(self, model: nn.Module) -> list[nn.Module]:
        layers = super().ignored_layers(model)
        for stage in unwrap_model(model).modules():
            if isinstance(stage, _STAGES):
                layers.append(stage.conv_exp)
                if getattr(stage, "conv_transition_b", None) is not None:
                    layers.append(stage.conv_transition_b)
        return layers

    @contextlib.contextmanager
    def graph_context(self, model: nn.Module) -> Iterator[None]:
        stages = [m for m in unwrap_model(model).modules() if isinstance(m, _STAGES)]
        with patched_forwards({s: _tracing_forward for s in stages}), super().graph_context(model):
            yield
