"""timm.models.naflexvit: NaFlexViT: a ViT over variable-resolution patch sequences with factorised position
embeddings.

Its token mixers (Attention, NaFlexEmbeds) reshape by fixed head or input widths that torch-pruning cannot follow:
they are opaque and keep their widths, and only its MLP hidden widths (timm's MLPs) are pruned
(``HiddenWidthAdapter``).
"""

from __future__ import annotations

from timm.layers import Attention
from timm.models.naflexvit import NaFlexEmbeds

from robust_prune.adapter_api import Example, HiddenWidthAdapter, register_adapter


@register_adapter
class NaflexvitAdapter(HiddenWidthAdapter):
    name = "naflexvit"
    timm_modules = ("naflexvit",)
    hidden = {}
    opaque = (Attention, NaFlexEmbeds)
    examples = (Example("naflexvit_base_patch16_parfac_gap", "naflexvit", {"depth": 2}),)
