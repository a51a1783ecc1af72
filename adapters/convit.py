"""timm.models.convit: ConViT: gated positional self-attention (GPSA) with per-head position projections.

Its token mixers (GPSA, MHSA) reshape by fixed head or input widths that torch-pruning cannot follow: they are
opaque and keep their widths, and only its MLP hidden widths (timm's MLPs) are pruned (``HiddenWidthAdapter``).
"""

from __future__ import annotations

from timm.models.convit import GPSA, MHSA

from robust_prune.adapter_api import Example, HiddenWidthAdapter, register_adapter


@register_adapter
class ConvitAdapter(HiddenWidthAdapter):
    name = "convit"
    timm_modules = ("convit",)
    hidden = {}
    opaque = (GPSA, MHSA)
    examples = (
        Example("convit_tiny", "convit", {"img_size": 32}),
        Example("convit_small", "convit", {"img_size": 32}, quick=False),
    )
