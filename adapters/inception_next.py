"""timm.models.inception_next: InceptionNeXt: an inception-style depthwise token mixer that splits channels into fixed-
size branches.

Its token mixers (InceptionDWConv2d) reshape by fixed head or input widths that torch-pruning cannot follow: they
are opaque and keep their widths, and only its MLP hidden widths (timm's MLPs and the blocks below) are pruned
(``HiddenWidthAdapter``).
"""

from __future__ import annotations

from timm.models.inception_next import ConvMlp, InceptionDWConv2d

from robust_prune.adapter_api import Example, HiddenWidthAdapter, register_adapter


@register_adapter
class InceptionNextAdapter(HiddenWidthAdapter):
    name = "inception_next"
    timm_modules = ("inception_next",)
    hidden = {ConvMlp: ("fc1",)}
    opaque = (InceptionDWConv2d,)
    examples = (
        Example("inception_next_atto", "inception_next", {}),
        Example("inception_next_tiny", "inception_next", {}, quick=False),
    )
