"""timm.models.convnext: ConvNeXt and ConvNeXt-V2 (and timm's test_convnext models).

Depthwise 7x7 conv, LayerNorm2d / channels-last LayerNorm, an inverted MLP and a per-channel layer scale
(``gamma``, an unwrapped parameter torch-pruning cuts along its only dimension); V2's GlobalResponseNorm
has per-channel parameters too. LayerNorm over the pruned width makes growth inexact.
"""

from robust_prune.adapter_api import Adapter, Example, register_adapter


@register_adapter
class ConvNeXtAdapter(Adapter):
    name = "convnext"
    timm_modules = ("convnext",)
    grow_exact = False
    examples = (
        Example("test_convnext", "test_*"),
        Example("test_convnext2", "test_*"),
        Example("test_convnext3", "test_*"),
        Example("convnext_atto", "convnext", {"depths": [1, 1, 1, 1]}, variant="convnext"),
        Example("convnextv2_atto", "convnext", {"depths": [1, 1, 1, 1]}, variant="convnextv2"),
        Example("convnext_femto", "convnext", quick=False, variant="convnext"),
        Example("convnextv2_femto", "convnext", quick=False, variant="convnextv2"),
        Example("convnextv2_nano", "convnext", {"depths": [1, 1, 1, 1]}, quick=False, variant="convnextv2"),
        Example("convnext_nano_ols", "convnext", quick=False, variant="convnext"),
    )
