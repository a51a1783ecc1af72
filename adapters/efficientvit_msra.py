"""timm.models.efficientvit_msra: EfficientViT (MSRA): cascaded group attention in local windows, with attention
biases.

Its token mixers (LocalWindowAttention) reshape by fixed head or input widths that torch-pruning cannot follow: they
are opaque and keep their widths, and only its MLP hidden widths (timm's MLPs and the blocks below) are pruned
(``HiddenWidthAdapter``).
"""

from __future__ import annotations

from timm.models.efficientvit_msra import ConvMlp, LocalWindowAttention

from robust_prune.adapter_api import Example, HiddenWidthAdapter, register_adapter


@register_adapter
class EfficientvitMsraAdapter(HiddenWidthAdapter):
    name = "efficientvit_msra"
    timm_modules = ("efficientvit_msra",)
    hidden = {ConvMlp: ("pw1",)}
    opaque = (LocalWindowAttention,)
    examples = (
        Example("efficientvit_m0", "efficientvit_msra", {"img_size": 64}, image_size=64),
        Example("efficientvit_m1", "efficientvit_msra", {"img_size": 64}, image_size=64, quick=False),
    )
