"""timm.models.mambaout: MambaOut (gated CNN blocks; also timm's test_mambaout).

A ``GatedConvBlock`` splits ``fc1``'s output (channels last) at its stored ``split_indices`` into a gate,
an identity part and a part that runs through a depthwise conv, then multiplies the gate with the other
two concatenated. torch-pruning cannot map indices through that split (it works on dim 1 only) and the
stored split sizes would go stale, so each block's hidden width is left alone (``fc1`` and the depthwise
conv keep their outputs); pruned: the residual width of every stage (stem, downsampling, norms, ``fc1``'s
inputs, ``fc2``'s outputs, layer scales) and the head's hidden width. LayerNorm over pruned widths:
growth is not exact.
"""

from __future__ import annotations

from timm.models.mambaout import GatedConvBlock
from torch import nn

from robust_prune.adapter_api import Adapter, Example, register_adapter, unwrap_model


@register_adapter
class MambaOutAdapter(Adapter):
    name = "mambaout"
    timm_modules = ("mambaout",)
    grow_exact = False
    examples = (
        Example("test_mambaout", "test_*"),
        Example("mambaout_femto", "mambaout", quick=False),
        Example("mambaout_kobe", "mambaout", quick=False),
    )

    def ignored_layers(self, model: nn.Module) -> list[nn.Module]:
        layers = super().ignored_layers(model)
        for block in unwrap_model(model).modules():
            if isinstance(block, GatedConvBlock):
                layers += [block.fc1, block.conv]
        return layers
