"""timm.models.crossvit: CrossViT: two token branches at different patch sizes exchanging class tokens by cross-
attention.

Its token mixers (Attention, CrossAttention) reshape by fixed head or input widths that torch-pruning cannot follow:
they are opaque and keep their widths, and only its MLP hidden widths (timm's MLPs) are pruned
(``HiddenWidthAdapter``).
"""

from __future__ import annotations

from timm.layers import Attention
from timm.models.crossvit import CrossAttention

from robust_prune.adapter_api import Example, HiddenWidthAdapter, register_adapter


@register_adapter
class CrossvitAdapter(HiddenWidthAdapter):
    name = "crossvit"
    timm_modules = ("crossvit",)
    hidden = {}
    opaque = (Attention, CrossAttention)
    examples = (
        Example("crossvit_tiny_240", "crossvit", {}, image_size=240),
        Example("crossvit_9_240", "crossvit", {}, image_size=240, quick=False),
    )
