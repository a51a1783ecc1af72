"""timm.models.coat: CoaT: factorised attention with convolutional relative position encodings.

Its token mixers (FactorAttnConvRelPosEnc) reshape by fixed head or input widths that torch-pruning cannot follow:
they are opaque and keep their widths, and only its MLP hidden widths (timm's MLPs) are pruned
(``HiddenWidthAdapter``). CoaT-Lite (serial blocks) works; CoaT proper's parallel blocks concatenate tokens in a way
torch-pruning cannot map (a TypeError while it traces), so those models are refused before any weight changes.
"""

from __future__ import annotations

from timm.models.coat import FactorAttnConvRelPosEnc

from robust_prune.adapter_api import Example, HiddenWidthAdapter, register_adapter


@register_adapter
class CoatAdapter(HiddenWidthAdapter):
    name = "coat"
    timm_modules = ("coat",)
    hidden = {}
    opaque = (FactorAttnConvRelPosEnc,)
    examples = (Example("coat_lite_tiny", "coat", {"img_size": 32}),)
