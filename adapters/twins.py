"""timm.models.twins: Twins: locally grouped and global sub-sampled attention with a positional conv.

Its token mixers (LocallyGroupedAttn, GlobalSubSampleAttn) reshape by fixed head or input widths that torch-pruning
cannot follow: they are opaque and keep their widths, and only its MLP hidden widths (timm's MLPs) are pruned
(``HiddenWidthAdapter``).
"""

from __future__ import annotations

from timm.models.twins import GlobalSubSampleAttn, LocallyGroupedAttn

from robust_prune.adapter_api import Example, HiddenWidthAdapter, register_adapter


@register_adapter
class TwinsAdapter(HiddenWidthAdapter):
    name = "twins"
    timm_modules = ("twins",)
    hidden = {}
    opaque = (LocallyGroupedAttn, GlobalSubSampleAttn)
    examples = (
        Example("twins_svt_small", "twins", {"img_size": 32}),
        Example("twins_pcpvt_small", "twins", {"img_size": 32}, quick=False),
    )
