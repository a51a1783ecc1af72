"""timm.models.hrnet: HRNet (parallel resolutions fused by up/down-sampling sums)."""

from robust_prune.adapter_api import Adapter, Example, register_adapter


@register_adapter
class HrNetAdapter(Adapter):
    name = "hrnet"
    timm_modules = ("hrnet",)
    examples = (
        Example("hrnet_w18_small", "hrnet"),
        Example("hrnet_w18_small_v2", "hrnet", quick=False),
    )
