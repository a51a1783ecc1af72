"""timm.models.nextvit: Next-ViT: convolutional attention blocks and efficient attention blocks that concatenate both
paths.

Its token mixers (ConvAttention, EfficientAttention) reshape by fixed head widths: they are opaque and keep their
widths, and only its MLP hidden widths (timm's MLPs) are pruned (``HiddenWidthAdapter``).
"""

from __future__ import annotations

from timm.models.nextvit import ConvAttention, EfficientAttention

from robust_prune.adapter_api import Example, HiddenWidthAdapter, register_adapter


@register_adapter
class NextvitAdapter(HiddenWidthAdapter):
    name = "nextvit"
    timm_modules = ("nextvit",)
    hidden = {}
    opaque = (ConvAttention, EfficientAttention)
    examples = (Example("nextvit_small", "nextvit", image_size=64),)
