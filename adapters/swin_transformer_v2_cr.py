"""timm.models.swin_transformer_v2_cr: Swin Transformer V2 (Christoph Reich's implementation, ``swinv2_cr_*``).

Its ``WindowMultiHeadAttention`` splits qkv with ``C // num_heads`` (the *input* width), so the attention
width must equal each stage's embedding width. Left alone: qkv, the output projection and the
position-bias ``meta_mlp`` (per-head output), which keeps every stage's residual width; pruned: the MLP
hidden widths. ``PatchMerging`` is opaque with the shared Swin pruner. Growth is exact. Fixed input size.
"""

from __future__ import annotations

from timm.models.swin_transformer_v2_cr import PatchMerging, WindowMultiHeadAttention
from torch import nn

from robust_prune.adapter_api import Adapter, Example, register_adapter, unwrap_model

from .swin_transformer import SwinMixin


@register_adapter
class SwinTransformerV2CrAdapter(SwinMixin, Adapter):
    name = "swin_transformer_v2_cr"
    timm_modules = ("swin_transformer_v2_cr",)
    patch_merging = PatchMerging
    examples = (
        Example("swinv2_cr_tiny_ns_224", "swin", {"img_size": 32, "window_size": 4, "depths": [1, 1, 1, 1]},
                quick=False, variant="swinv2_cr"),
    )

    def ignored_layers(self, model: nn.Module) -> list[nn.Module]:
        layers = super().ignored_layers(model)
        for m in unwrap_model(model).modules():
            if isinstance(m, WindowMultiHeadAttention):
                layers += [m.qkv, m.proj, *[x for x in m.meta_mlp.modules() if isinstance(x, nn.Linear)]]
        return layers
