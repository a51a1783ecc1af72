"""timm.models.sknet: SK-ResNet / SK-ResNeXt (ResNets whose blocks use Selective Kernel convs).

The models are ``timm.models.resnet.ResNet`` instances built from this module's blocks, so this adapter
matches on the blocks and is asked before the plain resnet adapter. The SelectiveKernel layer itself
(paths, input split, path attention) is pruned by the shared pruner in ``_layers.py``.
"""

from torch import nn

from robust_prune.adapter_api import Adapter, Example, register_adapter
from robust_prune.adapter_api.timm_meta import uses_blocks_from


@register_adapter
class SkNetAdapter(Adapter):
    name = "sknet"
    timm_modules = ("resnet",)
    priority = 10
    examples = (
        Example("skresnet18", "resnet", variant="skresnet"),
        Example("skresnext50_32x4d", "resnet", {"layers": [1, 1, 1, 1]}, quick=False, variant="skresnet"),
        Example("skresnet34", "resnet", quick=False, variant="skresnet"),
    )

    def matches(self, model: nn.Module) -> bool:
        return super().matches(model) and uses_blocks_from(model, "sknet")
