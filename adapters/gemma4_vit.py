"""timm.models.gemma4_vit: Gemma 4's vision encoder: rotary attention, RMS norms and gated MLPs of clippable linears.

Its token mixers (Gemma4Attention, Gemma4PatchEmbed) reshape by fixed head or input widths that torch-pruning cannot
follow: they are opaque and keep their widths, and only its MLP hidden widths (timm's MLPs and the blocks'
expansions named below) are pruned (``HiddenWidthAdapter``).
"""

from __future__ import annotations

from timm.models.gemma4_vit import Gemma4Attention, Gemma4GatedMlp, Gemma4PatchEmbed

from robust_prune.adapter_api import Example, HiddenWidthAdapter, register_adapter


@register_adapter
class Gemma4VitAdapter(HiddenWidthAdapter):
    name = "gemma4_vit"
    timm_modules = ("gemma4_vit",)
    hidden = {Gemma4GatedMlp: ("gate_proj", "up_proj")}
    opaque = (Gemma4Attention, Gemma4PatchEmbed)
    examples = (Example("gemma4_vit_167m", "gemma4_vit", {"depth": 2}),)
