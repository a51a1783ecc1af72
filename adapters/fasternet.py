"""timm.models.fasternet: FasterNet: partial convolutions (a 3x3 conv on a fixed slice of the channels) and 1x1 MLP
blocks.

Its token mixers (Partial_conv3) reshape by fixed head or input widths that torch-pruning cannot follow: they are
opaque and keep their widths, and only its MLP hidden widths (timm's MLPs and the blocks below) are pruned
(``HiddenWidthAdapter``).
"""

from __future__ import annotations

from timm.models.fasternet import MLPBlock, Partial_conv3

from robust_prune.adapter_api import Example, HiddenWidthAdapter, register_adapter


@register_adapter
class FasternetAdapter(HiddenWidthAdapter):
    name = "fasternet"
    timm_modules = ("fasternet",)
    hidden = {MLPBlock: ("mlp.0",)}
    opaque = (Partial_conv3,)
    examples = (
        Example("fasternet_t0", "fasternet", {}),
        Example("fasternet_t1", "fasternet", {}, quick=False),
    )
