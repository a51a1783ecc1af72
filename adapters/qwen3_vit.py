"""timm.models.qwen3_vit: Qwen3 ViT: EVA blocks with rotary attention (AttentionRope) and a learned position table.

Its token mixers (AttentionRope) apply rotary embeddings by fixed head widths, and pruning them did not finish
within a minute: they are opaque and keep their widths, and only its MLP hidden widths (timm's MLPs) are pruned
(``HiddenWidthAdapter``).
"""

from __future__ import annotations

from timm.layers.attention import AttentionRope

from robust_prune.adapter_api import Example, HiddenWidthAdapter, register_adapter


@register_adapter
class Qwen3VitAdapter(HiddenWidthAdapter):
    name = "qwen3_vit"
    timm_modules = ("qwen3_vit",)
    hidden = {}
    opaque = (AttentionRope,)
    examples = (Example("qwen3_vit_88m", "qwen3_vit", {"depth": 2}),)
