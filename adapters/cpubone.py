"""timm.models.cpubone: CPUBone: MBConv and fused-MBConv stages with convolutional multi-key attention.

Its token mixers (ConvAttention) reshape by a head count derived from their input width: they are opaque and keep
their widths, and only its MLP hidden widths (timm's MLPs and the blocks' expansions named below) are pruned
(``HiddenWidthAdapter``).
"""

from __future__ import annotations

from timm.models.cpubone import ConvAttention, FusedMBConv, MBConv

from robust_prune.adapter_api import Example, HiddenWidthAdapter, register_adapter


@register_adapter
class CpuboneAdapter(HiddenWidthAdapter):
    name = "cpubone"
    timm_modules = ("cpubone",)
    hidden = {MBConv: ("inverted_conv",), FusedMBConv: ("spatial_conv",)}
    opaque = (ConvAttention,)
    examples = (Example("cpubone_nano", "cpubone"),)
