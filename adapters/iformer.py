"""timm.models.iformer: iFormer: conv blocks and single-head modulation attention (SHMA) with residual FFNs.

Its token mixers (SHMA) reshape by fixed head widths, and tracing them did not finish within a minute: they are
opaque and keep their widths, and only its MLP hidden widths (timm's MLPs and the blocks' expansions named below)
are pruned (``HiddenWidthAdapter``).
"""

from __future__ import annotations

from timm.models.iformer import FFN, SHMA, ConvBlock

from robust_prune.adapter_api import Example, HiddenWidthAdapter, register_adapter


@register_adapter
class IformerAdapter(HiddenWidthAdapter):
    name = "iformer"
    timm_modules = ("iformer",)
    hidden = {FFN: ("mixer.module.0",), ConvBlock: ("mixer.module.1",)}
    opaque = (SHMA,)
    examples = (Example("iformer_t", "iformer"),)
