"""timm.models.mobilenetv3: MobileNet-V3, MobileNet-V4 (conv and hybrid), LCNet, HardCoReNAS, FBNet-V3.

Same building blocks as EfficientNet (depthwise convs, squeeze-excite, hard-swish); the ``conv_head``
1x1 conv after global pooling is pruned together with the classifier's inputs. MobileNet-V4 hybrids use
multi-query attention (``MultiQueryAttention2d``: per-head query projection, one shared key and value,
optional strided depthwise convs): it is an opaque layer with its own pruner, whose input width (the
depthwise convs, their norms and the projections' inputs) and output width (the output projection) are
pruned while the heads inside stay.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch_pruning as tp
from timm.layers.attention2d import MultiQueryAttention2d
from torch import nn

from robust_prune.adapter_api import Adapter, Example, register_adapter

from .efficientnet import MixedConvMixin


def _norm(layer: nn.Module | None, idxs: list[int]) -> None:
    if isinstance(layer, nn.modules.batchnorm._BatchNorm):
        tp.prune_batchnorm_out_channels(layer, idxs)
    elif isinstance(layer, nn.LayerNorm):
        tp.prune_layernorm_out_channels(layer, idxs)


class MultiQueryAttention2dPruner(tp.pruner.BasePruningFunc):
    """timm.layers.MultiQueryAttention2d as a black box (input -> q/k/v paths, output -> ``output.proj``)."""

    is_root = True

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        tp.prune_conv_out_channels(layer.output.proj, sorted(int(i) for i in idxs))
        return layer

    def prune_in_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        idxs = sorted(int(i) for i in idxs)
        for path in (layer.query, layer.key, layer.value):
            down = getattr(path, "down_conv", None)
            if down is not None:
                tp.prune_depthwise_conv_out_channels(down, idxs)
            _norm(getattr(path, "norm", None), idxs)
            tp.prune_conv_in_channels(path.proj, idxs)
        return layer

    def get_out_channels(self, layer: nn.Module) -> int:
        return int(layer.output.proj.out_channels)

    def get_in_channels(self, layer: nn.Module) -> int:
        return int(layer.key.proj.in_channels)


@register_adapter
class MobileNetV3Adapter(MixedConvMixin, Adapter):
    name = "mobilenetv3"
    timm_modules = ("mobilenetv3",)
    examples = (
        Example("mobilenetv3_small_050", "efficientnet", variant="mobilenetv3"),
        Example("mobilenetv4_conv_small_035", "efficientnet", variant="mobilenetv4"),
        Example("lcnet_035", "efficientnet", variant="lcnet"),
        Example("hardcorenas_a", "efficientnet", variant="hardcorenas"),
        Example("mobilenetv3_large_075", "efficientnet", quick=False, variant="mobilenetv3"),
        Example("mobilenetv4_hybrid_medium", "efficientnet", quick=False, variant="mobilenetv4"),
        Example("fbnetv3_b", "efficientnet", quick=False, variant="fbnet"),
    )

    def customized_pruners(self, model: nn.Module) -> dict[Any, Any]:
        pruners = super().customized_pruners(model)
        pruners[MultiQueryAttention2d] = MultiQueryAttention2dPruner()
        return pruners
