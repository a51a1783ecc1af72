"""timm.models.levit: LeViT (conv stem, attention with per-head key/value splits and attention biases).

LeViT's attention projects to a head-major layout (``view(B, N, heads, -1).split([key, key, value])``)
with stored ``key_dim``/``val_dim``, and the attention-bias table is indexed per head, so the projections
into attention (``qkv``, ``kv``, ``q``) keep their outputs. Pruned: the stem convolutions, the residual
width of every stage (including the attention output projections and every ``LinearNorm``'s BatchNorm)
and the MLP hidden widths. The token subsampling before strided attention views the tokens as a grid and
slices it, which torch-pruning mistakes for channel slicing: it is an opaque pass-through instead. The
classifier(s) (``head``, ``head_dist``) keep their outputs.
Fixed input size (the attention biases are built for one resolution).
"""

from __future__ import annotations

from typing import Any

from timm.models.levit import Attention, AttentionDownsample, Downsample
from torch import nn

from robust_prune.adapter_api import Adapter, Example, register_adapter, unwrap_model
from robust_prune.adapter_api.pruners import ChannelParamPruner


@register_adapter
class LevitAdapter(Adapter):
    name = "levit"
    timm_modules = ("levit",)
    examples = (
        Example("levit_128s", "levit", {"img_size": 32}),
        Example("levit_conv_128s", "levit", {"img_size": 32}, quick=False),
        Example("levit_256", "levit", {"img_size": 32}, quick=False),
        Example("levit_192", "levit", {"img_size": 64}, image_size=64, quick=False),
    )

    def customized_pruners(self, model: nn.Module) -> dict[Any, Any]:
        pruners = super().customized_pruners(model)
        # token subsampling (view to a grid, stride, flatten) works on any width: an opaque pass-through
        pruners[Downsample] = ChannelParamPruner({})
        return pruners

    def ignored_layers(self, model: nn.Module) -> list[nn.Module]:
        inner = unwrap_model(model)
        layers = super().ignored_layers(model)
        for name in ("head", "head_dist"):
            head = getattr(inner, name, None)
            linear = getattr(head, "linear", None)
            if isinstance(linear, nn.Linear) and linear not in layers:
                layers.append(linear)
        for m in inner.modules():
            if isinstance(m, (Attention, AttentionDownsample)):
                layers += [getattr(m, n) for n in ("qkv", "kv", "q") if isinstance(getattr(m, n, None), nn.Module)]
        return layers

    def fixed_input_size(self, model: nn.Module) -> tuple[int, int] | None:
        # the first attention's grid (its bias table is built for it) times the stem's stride
        inner = unwrap_model(model)
        stride = int(getattr(getattr(inner, "stem", None), "stride", 16))
        for m in inner.modules():
            if isinstance(m, Attention):
                res = m.resolution if isinstance(m.resolution, (tuple, list)) else (m.resolution, m.resolution)
                return (int(res[0]) * stride, int(res[1]) * stride)
        return None
