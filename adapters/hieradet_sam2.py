"""timm.models.hieradet_sam2: HieraDet (SAM 2's image encoder): windowed multiscale attention with query pooling.

Its token mixers (MultiScaleAttention) pool their queries and reshape by fixed head widths, and tracing them did not
finish within a minute: they are opaque and keep their widths, and only its MLP hidden widths (timm's MLPs) are
pruned (``HiddenWidthAdapter``).
"""

from __future__ import annotations

from timm.models.hieradet_sam2 import MultiScaleAttention

from robust_prune.adapter_api import Example, HiddenWidthAdapter, register_adapter


@register_adapter
class HieradetSam2Adapter(HiddenWidthAdapter):
    name = "hieradet_sam2"
    timm_modules = ("hieradet_sam2",)
    hidden = {}
    opaque = (MultiScaleAttention,)
    examples = (
        Example("hieradet_small", "hieradet_sam2", image_size=64),
        Example("sam2_hiera_tiny", "hieradet_sam2", image_size=64, quick=False),
    )
