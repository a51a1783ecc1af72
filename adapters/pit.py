"""timm.models.pit: PiT: pooling-based ViT (depthwise pooling between stages, class token carried alongside).

Its token mixers (Attention) reshape by fixed head or input widths that torch-pruning cannot follow: they are opaque
and keep their widths, and only its MLP hidden widths (timm's MLPs) are pruned (``HiddenWidthAdapter``).
"""

from __future__ import annotations

from timm.layers import Attention

from robust_prune.adapter_api import Example, HiddenWidthAdapter, register_adapter


@register_adapter
class PitAdapter(HiddenWidthAdapter):
    name = "pit"
    timm_modules = ("pit",)
    hidden = {}
    opaque = (Attention,)
    examples = (
        Example("pit_ti_224", "pit", {"img_size": 32}),
        Example("pit_xs_distilled_224", "pit", {"img_size": 32}, quick=False),
    )
