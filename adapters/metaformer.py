"""timm.models.metaformer: PoolFormer (v1, v2), ConvFormer, CAFormer.

- ``Scale`` (layer and residual scales) multiplies by ``scale.view(self.shape)`` with a stored shape, so
  it gets its own pruner that cuts ``scale`` and rewrites ``shape``.
- ``GroupNorm1NoBias`` has ``bias=None``, which torch-pruning's GroupNorm pruner does not expect.
- CAFormer's ``Attention`` reshapes its output to the *input* width (``reshape(B, N, C)``), so in stages
  with attention the embedding width and the qkv outputs are left alone (the downsampling conv roots that
  width); the MLP widths there, and everything in the convolutional stages, are pruned. LayerNorm /
  GroupNorm over the pruned width: growth is not exact.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch_pruning as tp
from timm.models.metaformer import Attention, GroupNorm1NoBias, MetaFormerStage, Scale
from torch import nn

from robust_prune.adapter_api import Adapter, Example, register_adapter, unwrap_model
from robust_prune.adapter_api.pruners import ChannelParamPruner


class ScalePruner(tp.pruner.BasePruningFunc):
    """metaformer ``Scale``: a per-channel ``scale`` viewed as ``shape`` = (dim, 1, 1) or (dim,)."""

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        keep = sorted(set(range(layer.scale.shape[0])) - {int(i) for i in idxs})
        layer.scale = self._prune_parameter_and_grad(layer.scale, keep, 0)
        layer.shape = (len(keep), *tuple(layer.shape)[1:])
        return layer

    prune_in_channels = prune_out_channels

    def get_out_channels(self, layer: nn.Module) -> int:
        return int(layer.scale.shape[0])

    get_in_channels = get_out_channels


@register_adapter
class MetaFormerAdapter(Adapter):
    name = "metaformer"
    timm_modules = ("metaformer",)
    grow_exact = False
    examples = (
        Example("poolformer_s12", "metaformer", quick=False, variant="poolformer"),
        Example("poolformerv2_s12", "metaformer", variant="poolformer"),
        Example("poolformerv2_s24", "metaformer", quick=False, variant="poolformer"),
        Example("convformer_s18", "metaformer", quick=False, variant="convformer"),
        Example("caformer_s18", "metaformer", variant="caformer"),
    )

    def customized_pruners(self, model: nn.Module) -> dict[Any, Any]:
        pruners = super().customized_pruners(model)
        pruners[Scale] = ScalePruner()
        pruners[GroupNorm1NoBias] = ChannelParamPruner({"weight": 0, "bias": 0}, shape_attrs=("num_channels",))
        return pruners

    def ignored_layers(self, model: nn.Module) -> list[nn.Module]:
        layers = super().ignored_layers(model)
        for stage in unwrap_model(model).modules():
            if not isinstance(stage, MetaFormerStage):
                continue
            attns = [m for m in stage.modules() if isinstance(m, Attention)]
            if attns:  # the attention width must equal this stage's embedding width: keep both
                layers += [m.qkv for m in attns] + [m.proj for m in attns]
                layers += [m for m in stage.downsample.modules() if isinstance(m, nn.Conv2d)]
        return layers
