"""timm.models.csatv2: CSATv2: a learnable DCT stem, ConvNeXt-V2-style blocks gated by spatial attention, then
transformer blocks.

Its token mixers (LearnableDct2d, SpatialAttention, Attention) reshape by fixed head or input widths that torch-
pruning cannot follow: they are opaque and keep their widths, and only its MLP hidden widths (timm's MLPs and the
blocks below) are pruned (``HiddenWidthAdapter``).
"""

from __future__ import annotations

from timm.layers import Attention
from timm.models.csatv2 import Block, LearnableDct2d, SpatialAttention
from torch import nn

from ._base import Example, register_adapter, unwrap_model
from ._hidden import HiddenWidthAdapter


@register_adapter
class Csatv2Adapter(HiddenWidthAdapter):
    name = "csatv2"
    timm_modules = ("csatv2",)
    hidden = {Block: ("pwconv1",)}
    opaque = (LearnableDct2d, SpatialAttention, Attention)

    def in_chans(self, model: nn.Module) -> int:
        # the DCT stem comes before the first convolution, and timm's config names no first conv
        return int(getattr(unwrap_model(model), "in_chans", 3))

    examples = (Example("csatv2", "csatv2", {}, image_size=64),)
