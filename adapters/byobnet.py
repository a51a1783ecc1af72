"""timm.models.byobnet: "bring your own blocks" nets: RepVGG, GENet, ResNet-T/ResNeXt-TS, RegNetZ-B16, ...

MobileViT models are ByobNets too; their transformer blocks are served by mobilevit.py.
"""

from ._base import Adapter, Example, register_adapter


@register_adapter
class ByobNetAdapter(Adapter):
    name = "byobnet"
    timm_modules = ("byobnet",)
    examples = (
        Example("test_byobnet", "test_*"),
        Example("repvgg_a0", "byobnet", variant="repvgg"),
        Example("gernet_s", "byobnet", quick=False, variant="gernet"),
        Example("resnext26ts", "byobnet", quick=False, variant="resnext-ts"),
        Example("repvgg_b0", "byobnet", quick=False, variant="repvgg"),
        Example("eca_resnet33ts", "byobnet", quick=False, variant="resnet-ts"),
        Example("regnetz_b16", "byobnet", quick=False, variant="regnetz"),
    )
