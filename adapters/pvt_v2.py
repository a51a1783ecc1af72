"""timm.models.pvt_v2: PVT-v2: spatial-reduction attention and MLPs with a depthwise conv in the hidden width.

Its token mixers (Attention) reshape by fixed head or input widths that torch-pruning cannot follow: they are opaque
and keep their widths, and only its MLP hidden widths (timm's MLPs and the blocks below) are pruned
(``HiddenWidthAdapter``).
"""

from __future__ import annotations

from timm.models.pvt_v2 import Attention, MlpWithDepthwiseConv

from robust_prune.adapter_api import Example, HiddenWidthAdapter, register_adapter


@register_adapter
class PvtV2Adapter(HiddenWidthAdapter):
    name = "pvt_v2"
    timm_modules = ("pvt_v2",)
    hidden = {MlpWithDepthwiseConv: ("fc1",)}
    opaque = (Attention,)
    examples = (
        Example("pvt_v2_b0", "pvt_v2", {}),
        Example("pvt_v2_b1", "pvt_v2", {}, quick=False),
    )
