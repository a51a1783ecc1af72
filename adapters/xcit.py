"""timm.models.xcit: XCiT: cross-covariance attention (XCA), local patch interaction and class-attention blocks.

Its token mixers (XCA, ClassAttn) reshape by fixed head or input widths that torch-pruning cannot follow: they are
opaque and keep their widths, and only its MLP hidden widths (timm's MLPs) are pruned (``HiddenWidthAdapter``).
"""

from __future__ import annotations

from timm.models.cait import ClassAttn
from timm.models.xcit import XCA

from robust_prune.adapter_api import Example, HiddenWidthAdapter, register_adapter


@register_adapter
class XcitAdapter(HiddenWidthAdapter):
    name = "xcit"
    timm_modules = ("xcit",)
    hidden = {}
    opaque = (XCA, ClassAttn)
    examples = (
        Example("xcit_nano_12_p16_224", "xcit", {"img_size": 32}),
        Example("xcit_nano_12_p8_224", "xcit", {"img_size": 32}, quick=False),
    )
