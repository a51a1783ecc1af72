"""timm.models.lowformer: LowFormer: MBConv stages with convolutional attention on downsampled inputs.

Its token mixers (ConvAttention) reshape by head counts derived from their input width: they are opaque and keep
their widths, and only its MLP hidden widths (timm's MLPs and the blocks' expansions named below) are pruned
(``HiddenWidthAdapter``).
"""

from __future__ import annotations

from timm.models.lowformer import ConvAttention, FusedMBConv, MBConv

from robust_prune.adapter_api import Example, HiddenWidthAdapter, register_adapter


@register_adapter
class LowformerAdapter(HiddenWidthAdapter):
    name = "lowformer"
    timm_modules = ("lowformer",)
    hidden = {MBConv: ("inverted_conv",), FusedMBConv: ("spatial_conv",)}
    opaque = (ConvAttention,)
    examples = (Example("lowformer_b0", "lowformer"),)
