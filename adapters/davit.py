"""timm.models.davit: DaViT: alternating spatial-window and channel-group attention with convolutional position
encodings.

Its token mixers (WindowAttention, ChannelAttention, ChannelAttentionV2) reshape by fixed head or input widths that
torch-pruning cannot follow: they are opaque and keep their widths, and only its MLP hidden widths (timm's MLPs) are
pruned (``HiddenWidthAdapter``).
"""

from __future__ import annotations

from timm.models.davit import ChannelAttention, ChannelAttentionV2, WindowAttention

from robust_prune.adapter_api import Example, HiddenWidthAdapter, register_adapter


@register_adapter
class DavitAdapter(HiddenWidthAdapter):
    name = "davit"
    timm_modules = ("davit",)
    hidden = {}
    opaque = (WindowAttention, ChannelAttention, ChannelAttentionV2)
    examples = (
        Example("davit_tiny", "davit", {"depths": (1, 1, 1, 1)}, image_size=64),
        Example("davit_small", "davit", {"depths": (1, 1, 1, 1)}, image_size=64, quick=False),
    )
