"""timm.models.resnest: ResNeSt (ResNets whose blocks use split attention).

The models are ``timm.models.resnet.ResNet`` instances built from this module's blocks, so this adapter
matches on the blocks and is asked before the plain resnet adapter. SplitAttn (radix-major grouped conv
plus a radix softmax per cardinal group) is pruned by the shared pruner in ``_layers.py``.
"""

from torch import nn

from robust_prune.adapter_api import Adapter, Example, register_adapter
from robust_prune.adapter_api.timm_meta import uses_blocks_from


@register_adapter
class ResNeStAdapter(Adapter):
    name = "resnest"
    timm_modules = ("resnet",)
    priority = 10
    examples = (
        Example("resnest14d", "resnet", variant="resnest"),
        Example("resnest26d", "resnet", quick=False, variant="resnest"),
        Example("resnest50d_4s2x40d", "resnet", {"layers": [1, 1, 1, 1]}, quick=False, variant="resnest"),
    )

    def matches(self, model: nn.Module) -> bool:
        return super().matches(model) and uses_blocks_from(model, "resnest")
