"""timm.models.gcvit: GCViT: global-context window attention with relative position biases and feature-extraction
blocks.

Its token mixers (WindowAttentionGlobal) reshape by fixed head or input widths that torch-pruning cannot follow:
they are opaque and keep their widths, and only its MLP hidden widths (timm's MLPs) are pruned
(``HiddenWidthAdapter``).
"""

from __future__ import annotations

from timm.models.gcvit import WindowAttentionGlobal

from robust_prune.adapter_api import Example, HiddenWidthAdapter, register_adapter


@register_adapter
class GcvitAdapter(HiddenWidthAdapter):
    name = "gcvit"
    timm_modules = ("gcvit",)
    hidden = {}
    opaque = (WindowAttentionGlobal,)
    examples = (
        Example("gcvit_xxtiny", "gcvit", {"img_size": 64}, image_size=64),
        Example("gcvit_xtiny", "gcvit", {"img_size": 64}, image_size=64, quick=False),
    )
