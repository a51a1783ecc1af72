"""timm.models.efficientvit_mit: EfficientViT (MIT): MBConv stages and lightweight multi-scale linear attention
(LiteMLA).

Its token mixers (LiteMLA) reshape by fixed head or input widths that torch-pruning cannot follow: they are opaque
and keep their widths, and only its MLP hidden widths (timm's MLPs and the blocks below) are pruned
(``HiddenWidthAdapter``).
"""

from __future__ import annotations

from timm.models.efficientvit_mit import FusedMBConv, LiteMLA, MBConv

from robust_prune.adapter_api import Example, HiddenWidthAdapter, register_adapter


@register_adapter
class EfficientvitMitAdapter(HiddenWidthAdapter):
    name = "efficientvit_mit"
    timm_modules = ("efficientvit_mit",)
    hidden = {MBConv: ("inverted_conv",), FusedMBConv: ("spatial_conv",)}
    opaque = (LiteMLA,)
    examples = (
        Example("efficientvit_b0", "efficientvit_mit", {}),
        Example("efficientvit_b1", "efficientvit_mit", {}, quick=False),
    )
