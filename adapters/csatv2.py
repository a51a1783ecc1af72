"""timm.models.csatv2: CSATv2: a learnable DCT stem, ConvNeXt-V2-style blocks gated by spatial attention, then
transformer blocks.

Its token mixers (LearnableDct2d, SpatialAttention, Attention) reshape by fixed head or input widths that torch-
pruning cannot follow: they are opaque and keep their widths, and only its MLP hidden widths (timm's MLPs and the
blocks below) are pruned (``HiddenWidthAdapter``).
"""

from __future__ import annotations

from timm.layers import Attention
from timm.models.csatv2 import Block, LearnableDct2d, SpatialAttention

from robust_prune.adapter_api import Example, HiddenWidthAdapter, register_adapter


@register_adapter
class Csatv2Adapter(HiddenWidthAdapter):
    name = "csatv2"
    timm_modules = ("csatv2",)
    hidden = {Block: ("pwconv1",)}
    opaque = (LearnableDct2d, SpatialAttention, Attention)

    examples = (Example("csatv2", "csatv2", {}, image_size=64),)
