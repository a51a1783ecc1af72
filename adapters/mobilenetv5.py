"""timm.models.mobilenetv5: MobileNetV5: universal inverted residuals, multi-query attention and a multi-scale fusion
adapter.

Its token mixers (MultiQueryAttention2d) share one key/value head across query heads of fixed width, and tracing the
model did not finish within a minute: they are opaque and keep their widths, and only its MLP hidden widths (timm's
MLPs and the blocks' expansions named below) are pruned (``HiddenWidthAdapter``). Pruned: the expansion width of
each inverted residual and edge residual.
"""

from __future__ import annotations

from timm.layers.attention2d import MultiQueryAttention2d
from timm.models._efficientnet_blocks import EdgeResidual, UniversalInvertedResidual

from robust_prune.adapter_api import Example, HiddenWidthAdapter, register_adapter


@register_adapter
class Mobilenetv5Adapter(HiddenWidthAdapter):
    name = "mobilenetv5"
    timm_modules = ("mobilenetv5",)
    hidden = {UniversalInvertedResidual: ("pw_exp",), EdgeResidual: ("conv_exp",)}
    opaque = (MultiQueryAttention2d,)
    examples = (Example("mobilenetv5_base", "mobilenetv5", quick=False),)
