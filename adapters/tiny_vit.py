"""timm.models.tiny_vit: TinyViT (MBConv stages, then window attention with per-head attention biases).

Its token mixers (Attention) reshape by fixed head or input widths that torch-pruning cannot follow: they are opaque
and keep their widths, and only its MLP hidden widths (timm's MLPs and the blocks below) are pruned
(``HiddenWidthAdapter``).
"""

from __future__ import annotations

from timm.models.tiny_vit import Attention, MBConv, NormMlp

from robust_prune.adapter_api import Example, HiddenWidthAdapter, register_adapter


@register_adapter
class TinyVitAdapter(HiddenWidthAdapter):
    name = "tiny_vit"
    timm_modules = ("tiny_vit",)
    hidden = {NormMlp: ("fc1",), MBConv: ("conv1",)}
    opaque = (Attention,)
    examples = (
        Example("tiny_vit_5m_224", "tiny_vit", image_size=64),
        Example("tiny_vit_11m_224", "tiny_vit", image_size=64, quick=False),
    )
