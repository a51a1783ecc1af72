"""timm.models.visformer: Visformer: convolutional stages with grouped spatial MLPs, then attention stages.

Its token mixers (Attention) reshape by fixed head widths, and tracing them did not finish within a minute: they are
opaque and keep their widths, and only its MLP hidden widths (timm's MLPs and the blocks' expansions named below)
are pruned (``HiddenWidthAdapter``). SpatialMlp's grouped 3x3 conv sits inside the hidden width and is pruned with
it.
"""

from __future__ import annotations

from timm.models.visformer import Attention, SpatialMlp

from robust_prune.adapter_api import Example, HiddenWidthAdapter, register_adapter


@register_adapter
class VisformerAdapter(HiddenWidthAdapter):
    name = "visformer"
    timm_modules = ("visformer",)
    hidden = {SpatialMlp: ("conv1", "conv2")}
    opaque = (Attention,)
    examples = (Example("visformer_tiny", "visformer", {"img_size": 32}),)
