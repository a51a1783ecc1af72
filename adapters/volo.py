"""timm.models.volo: VOLO: outlook attention (local aggregation weights predicted per position), then class attention.

Its token mixers (OutlookAttention, Attention, ClassAttention) reshape by fixed head or input widths that
torch-pruning cannot follow: they are opaque and keep their widths, and only its MLP hidden widths (timm's MLPs) are
pruned (``HiddenWidthAdapter``).
"""

from __future__ import annotations

from timm.models.volo import Attention, ClassAttention, OutlookAttention

from robust_prune.adapter_api import Example, HiddenWidthAdapter, register_adapter


@register_adapter
class VoloAdapter(HiddenWidthAdapter):
    name = "volo"
    timm_modules = ("volo",)
    hidden = {}
    opaque = (OutlookAttention, Attention, ClassAttention)
    examples = (Example("volo_d1_224", "volo", {"img_size": 32}),)
