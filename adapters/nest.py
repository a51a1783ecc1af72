"""timm.models.nest: NesT: transformer blocks on non-overlapping image blocks, aggregated by conv pooling between
levels.

Its token mixers (Attention) reshape by fixed head or input widths that torch-pruning cannot follow: they are opaque
and keep their widths, and only its MLP hidden widths (timm's MLPs) are pruned (``HiddenWidthAdapter``).
"""

from __future__ import annotations

from timm.models.nest import Attention

from robust_prune.adapter_api import Example, HiddenWidthAdapter, register_adapter


@register_adapter
class NestAdapter(HiddenWidthAdapter):
    name = "nest"
    timm_modules = ("nest",)
    hidden = {}
    opaque = (Attention,)
    examples = (
        Example("nest_tiny", "nest", {"img_size": 32}),
        Example("nest_small", "nest", {"img_size": 32}, quick=False),
    )
