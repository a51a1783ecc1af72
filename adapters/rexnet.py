"""timm.models.rexnet: ReXNet (and ReXNet-R).

Each block's output is ``cat([x[:, :in_channels] + shortcut, x[:, in_channels:]])``: a partial residual
over a slice whose bound is a fixed attribute. Handing those slice/concat chains to torch-pruning makes its
group search explode (it never finishes on rexnet_100), and any change of a block's width would break the
stored ``in_channels``. Left alone: every block's output width (``conv_pwl``) and the stem; pruned: the
expanded width inside each block (expansion conv, depthwise conv, squeeze-excite) and the head conv.
BatchNorm everywhere, so growth is exact.
"""

from __future__ import annotations

from timm.models.rexnet import LinearBottleneck
from torch import nn

from robust_prune.adapter_api import Adapter, Example, register_adapter, unwrap_model


@register_adapter
class RexNetAdapter(Adapter):
    name = "rexnet"
    timm_modules = ("rexnet",)
    examples = (
        Example("rexnet_100", "rexnet"),
        Example("rexnetr_100", "rexnet", quick=False),
        Example("rexnetr_130", "rexnet", quick=False),
        Example("rexnet_150", "rexnet", quick=False),
    )

    def ignored_layers(self, model: nn.Module) -> list[nn.Module]:
        inner = unwrap_model(model)
        layers = super().ignored_layers(model)
        stem = getattr(getattr(inner, "stem", None), "conv", None)
        if isinstance(stem, nn.Conv2d):
            layers.append(stem)
        for block in inner.modules():
            if isinstance(block, LinearBottleneck):
                layers.append(block.conv_pwl)
        return layers
