"""timm.models.res2net: Res2Net / Res2NeXt (ResNets whose blocks use hierarchical multi-scale convs).

The models are ``timm.models.resnet.ResNet`` instances built from this module's ``Bottle2neck``, so this
adapter matches on the blocks and is asked before the plain resnet adapter. A Bottle2neck splits its
first conv's output into ``scale`` chunks of the fixed ``width`` and chains them (chunk i is added to the
previous chunk's conv output). torch-pruning cannot keep that chain consistent, so the multi-scale width
is left alone (``conv1`` and the chunk convs keep their outputs); pruned: the stem, every block's input
and output (residual) width and the downsample convs. BatchNorm, so growth is exact.
"""

from timm.models.res2net import Bottle2neck
from torch import nn

from robust_prune.adapter_api import Adapter, Example, register_adapter, unwrap_model
from robust_prune.adapter_api.timm_meta import uses_blocks_from


@register_adapter
class Res2NetAdapter(Adapter):
    name = "res2net"
    timm_modules = ("resnet",)
    priority = 10
    examples = (
        Example("res2net50_14w_8s", "resnet", {"layers": [1, 1, 1, 1]}, variant="res2net"),
        Example("res2next50", "resnet", {"layers": [1, 1, 1, 1]}, quick=False, variant="res2net"),
        Example("res2net50_26w_4s", "resnet", quick=False, variant="res2net"),
    )

    def matches(self, model: nn.Module) -> bool:
        return super().matches(model) and uses_blocks_from(model, "res2net")

    def ignored_layers(self, model: nn.Module) -> list[nn.Module]:
        layers = super().ignored_layers(model)
        for block in unwrap_model(model).modules():
            if isinstance(block, Bottle2neck):
                layers += [block.conv1, *block.convs]
        return layers
