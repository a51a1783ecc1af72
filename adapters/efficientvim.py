"""timm.models.efficientvim: EfficientViM: hidden-state mixer state-space duality (HSMSSD) token mixers and 1x1 FFNs.

Its token mixers (HSMSSD) reshape by fixed head or input widths that torch-pruning cannot follow: they are opaque
and keep their widths, and only its MLP hidden widths (timm's MLPs and the blocks below) are pruned
(``HiddenWidthAdapter``).
"""

from __future__ import annotations

from timm.models.efficientvim import FFN, HSMSSD

from robust_prune.adapter_api import Example, HiddenWidthAdapter, register_adapter


@register_adapter
class EfficientvimAdapter(HiddenWidthAdapter):
    name = "efficientvim"
    timm_modules = ("efficientvim",)
    hidden = {FFN: ("fc1",)}
    opaque = (HSMSSD,)
    examples = (
        Example("efficientvim_m1", "efficientvim", {}, image_size=64),
        Example("efficientvim_m2", "efficientvim", {}, image_size=64, quick=False),
    )
