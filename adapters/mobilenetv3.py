"""timm.models.mobilenetv3: MobileNet-V3, MobileNet-V4, LCNet, HardCoReNAS, FBNet-V3.

Same building blocks as EfficientNet (depthwise convs, squeeze-excite, hard-swish); the ``conv_head``
1x1 conv after global pooling is pruned together with the classifier's inputs.
"""

from ._base import Adapter, Example, register_adapter


@register_adapter
class MobileNetV3Adapter(Adapter):
    name = "mobilenetv3"
    timm_modules = ("mobilenetv3",)
    examples = (
        Example("mobilenetv3_small_050", "efficientnet", variant="mobilenetv3"),
        Example("mobilenetv4_conv_small_035", "efficientnet", variant="mobilenetv4"),
        Example("lcnet_035", "efficientnet", variant="lcnet"),
        Example("hardcorenas_a", "efficientnet", variant="hardcorenas"),
        Example("mobilenetv3_large_075", "efficientnet", quick=False, variant="mobilenetv3"),
        Example("mobilenetv4_hybrid_medium", "efficientnet", quick=False, variant="mobilenetv4"),
        Example("fbnetv3_b", "efficientnet", quick=False, variant="fbnet"),
    )
