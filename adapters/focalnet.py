"""timm.models.focalnet: FocalNet: focal modulation (hierarchical depthwise context gated into a 1x1 modulator).

Its token mixers (FocalModulation) split their projection into query, context and gates of fixed widths, and tracing
them did not finish within a minute: they are opaque and keep their widths, and only its MLP hidden widths (timm's
MLPs) are pruned (``HiddenWidthAdapter``).
"""

from __future__ import annotations

from timm.models.focalnet import FocalModulation

from robust_prune.adapter_api import Example, HiddenWidthAdapter, register_adapter


@register_adapter
class FocalnetAdapter(HiddenWidthAdapter):
    name = "focalnet"
    timm_modules = ("focalnet",)
    hidden = {}
    opaque = (FocalModulation,)
    examples = (
        Example("focalnet_tiny_srf", "focalnet"),
        Example("focalnet_tiny_lrf", "focalnet", quick=False),
    )
