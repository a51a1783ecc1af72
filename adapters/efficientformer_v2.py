"""timm.models.efficientformer_v2: EfficientFormer-V2.

Its 2-D attentions (``Attention2d``, ``Attention2dDownsample``) reshape q/k/v per head over a fixed grid,
mix heads with talking-heads convs and add per-head biases: torch-pruning's reshape index mapping blows up
on them (the graph search never finishes). Each attention is therefore an opaque layer with its own
pruner: its input width (the strided depthwise conv, the q/k/v convs' inputs) and output width (the
output projection and its BatchNorm) are pruned, the heads inside are left alone. Everything else (conv
MLPs with depthwise mid convs, layer scales, downsampling) goes through the graph. Both classifiers keep
their outputs. Fixed input size (``img_size``: the attention grid).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch_pruning as tp
from timm.models.efficientformer_v2 import Attention2d, Attention2dDownsample, LocalGlobalQuery
from torch import nn

from robust_prune.adapter_api import Adapter, Example, register_adapter, unwrap_model

from .efficientformer import DistilledHeadsMixin


def _conv_norm_in(layer: nn.Module, idxs: list[int]) -> None:
    tp.prune_conv_in_channels(layer.conv, idxs)


class Attention2dPruner(tp.pruner.BasePruningFunc):
    """EfficientFormer-V2 attention as a black box: input channels -> q/k/v inputs, output -> ``proj``."""

    is_root = True

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        idxs = sorted(int(i) for i in idxs)
        tp.prune_conv_out_channels(layer.proj.conv, idxs)
        tp.prune_batchnorm_out_channels(layer.proj.bn, idxs)
        if hasattr(layer, "out_dim"):
            layer.out_dim = layer.proj.conv.out_channels
        return layer

    def prune_in_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        idxs = sorted(int(i) for i in idxs)
        stride_conv = getattr(layer, "stride_conv", None)
        if stride_conv is not None:
            tp.prune_depthwise_conv_out_channels(stride_conv.conv, idxs)
            tp.prune_batchnorm_out_channels(stride_conv.bn, idxs)
        if isinstance(layer.q, LocalGlobalQuery):
            tp.prune_depthwise_conv_out_channels(layer.q.local, idxs)
            _conv_norm_in(layer.q.proj, idxs)
        else:
            _conv_norm_in(layer.q, idxs)
        _conv_norm_in(layer.k, idxs)
        _conv_norm_in(layer.v, idxs)
        return layer

    def get_out_channels(self, layer: nn.Module) -> int:
        return int(layer.proj.conv.out_channels)

    def get_in_channels(self, layer: nn.Module) -> int:
        return int(layer.k.conv.in_channels)


@register_adapter
class EfficientFormerV2Adapter(DistilledHeadsMixin, Adapter):
    name = "efficientformer_v2"
    timm_modules = ("efficientformer_v2",)
    examples = (
        Example("efficientformerv2_s0", "efficientformer", {"img_size": 64}, image_size=64,
                variant="efficientformerv2"),
        Example("efficientformerv2_s1", "efficientformer", {"img_size": 64}, image_size=64, quick=False,
                variant="efficientformerv2"),
    )

    def customized_pruners(self, model: nn.Module) -> dict[Any, Any]:
        pruners = super().customized_pruners(model)
        pruner = Attention2dPruner()
        pruners[Attention2d] = pruner
        pruners[Attention2dDownsample] = pruner
        return pruners

    def fixed_input_size(self, model: nn.Module) -> tuple[int, int] | None:
        for m in unwrap_model(model).modules():
            if isinstance(m, Attention2dDownsample):  # the first downsampling attention sees the stride-16 grid
                return (int(m.resolution[0]) * 16, int(m.resolution[1]) * 16)
        return None
