"""timm.models.mvitv2: MViTv2: multiscale attention with pooled queries, keys and values and relative positions.

Its token mixers (MultiScaleAttention, MultiScaleAttentionPoolFirst) reshape by fixed head or input widths that
torch-pruning cannot follow: they are opaque and keep their widths, and only its MLP hidden widths (timm's MLPs) are
pruned (``HiddenWidthAdapter``).
"""

from __future__ import annotations

from timm.models.mvitv2 import MultiScaleAttention, MultiScaleAttentionPoolFirst

from robust_prune.adapter_api import Example, HiddenWidthAdapter, register_adapter


@register_adapter
class Mvitv2Adapter(HiddenWidthAdapter):
    name = "mvitv2"
    timm_modules = ("mvitv2",)
    hidden = {}
    opaque = (MultiScaleAttention, MultiScaleAttentionPoolFirst)
    examples = (Example("mvitv2_tiny", "mvitv2", {"img_size": 64}, image_size=64),)
