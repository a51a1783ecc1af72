"""timm.models.swin_transformer_v2: Swin Transformer V2.

V2's ``WindowAttention`` (cosine attention, log-spaced continuous position bias from ``cpb_mlp``, q/v
biases added through ``F.linear``) reshapes its output to the *input* width (``reshape(B_, N, C)``), so
the attention width must equal each stage's embedding width. Left alone: qkv, the output projection and
the position-bias MLP (whose output is per head), which keeps every stage's residual width; pruned: the
MLP hidden widths. ``PatchMerging`` (reduction, then norm) is opaque with the shared Swin pruner.
Growth is exact (residual widths untouched). Fixed input size.
"""

from __future__ import annotations

from timm.models.swin_transformer_v2 import PatchMerging, WindowAttention
from torch import nn

from robust_prune.adapter_api import Adapter, Example, register_adapter, unwrap_model

from .swin_transformer import SwinMixin


@register_adapter
class SwinTransformerV2Adapter(SwinMixin, Adapter):
    name = "swin_transformer_v2"
    timm_modules = ("swin_transformer_v2",)
    patch_merging = PatchMerging
    examples = (
        Example("swinv2_tiny_window8_256", "swin", {"img_size": 32, "window_size": 4, "depths": [1, 1, 1, 1]},
                variant="swinv2"),
        Example("swinv2_base_window12_192", "swin", {"img_size": 32, "window_size": 4, "depths": [1, 1, 1, 1]},
                quick=False, variant="swinv2"),
        Example("swinv2_tiny_window16_256", "swin", {"img_size": 64, "window_size": 4}, image_size=64, quick=False,
                variant="swinv2"),
    )

    def ignored_layers(self, model: nn.Module) -> list[nn.Module]:
        layers = super().ignored_layers(model)
        for m in unwrap_model(model).modules():
            if isinstance(m, WindowAttention):
                layers += [m.qkv, m.proj, *[x for x in m.cpb_mlp.modules() if isinstance(x, nn.Linear)]]
        return layers
