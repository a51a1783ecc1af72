"""timm.models.hiera: Hiera: hierarchical ViT with mask-unit attention over unrolled tokens.

Its token mixers (MaskUnitAttention) reshape by fixed head or input widths that torch-pruning cannot follow: they
are opaque and keep their widths, and only its MLP hidden widths (timm's MLPs) are pruned (``HiddenWidthAdapter``).
"""

from __future__ import annotations

from timm.models.hiera import MaskUnitAttention

from robust_prune.adapter_api import Example, HiddenWidthAdapter, register_adapter


@register_adapter
class HieraAdapter(HiddenWidthAdapter):
    name = "hiera"
    timm_modules = ("hiera",)
    hidden = {}
    opaque = (MaskUnitAttention,)
    examples = (Example("hiera_tiny_224", "hiera", {"img_size": 64}, image_size=64),)
