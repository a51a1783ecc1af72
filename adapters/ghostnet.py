"""timm.models.ghostnet: GhostNet V1/V2/V3.

Ghost modules concatenate a primary conv's output with a cheap depthwise conv of it and then slice the
result back to ``out_chs``; V2 adds the DFC attention branch (needs at least a 64x64 input).
"""

from robust_prune.adapter_api import Adapter, Example, register_adapter


@register_adapter
class GhostNetAdapter(Adapter):
    name = "ghostnet"
    timm_modules = ("ghostnet",)
    examples = (
        Example("ghostnet_050", "ghostnet", variant="ghostnet"),
        Example("ghostnetv2_100", "ghostnet", image_size=64, variant="ghostnetv2"),
        Example("ghostnetv3_050", "ghostnet", image_size=64, quick=False, variant="ghostnetv3"),
        Example("ghostnet_100", "ghostnet", quick=False, variant="ghostnet"),
    )
