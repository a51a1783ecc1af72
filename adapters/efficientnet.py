"""timm.models.efficientnet: EfficientNet, MobileNet-V2, MNASNet, TinyNet, MixNet, FBNet, ... (and test_efficientnet*).

Inverted residuals with depthwise convs and squeeze-excite; torch-pruning ties the depthwise conv to its
expansion conv and the SE reduction to the block width. timm's Evo norms (test_efficientnet_evos) are
handled by the adapters' shared per-channel pruner, with their group count fixed up afterwards.

MixNet's ``MixedConv2d`` splits its input into fixed-size chunks (``splits``), one conv per chunk, and
concatenates the results; the graph cannot follow that, so the whole layer gets its own pruner. Depthwise
mixed convs tie input and output channels, pointwise ones do not; while torch-pruning works, depthwise ones
are given a subclass (``graph_context``) so each kind gets the right pruner. Chunks of equal size are pruned
evenly so none is emptied; ``splits``/``in_channels``/``out_channels`` follow the convs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch_pruning as tp
from timm.layers.mixed_conv2d import MixedConv2d
from torch import nn

from robust_prune.adapter_api import Adapter, Example, register_adapter, unwrap_model
from robust_prune.adapter_api.tracing import swapped_classes


class _DepthwiseMixedConv2d(MixedConv2d):
    """A MixedConv2d whose convs are all depthwise (only ever set temporarily, by ``graph_context``)."""


def _is_depthwise(layer: MixedConv2d) -> bool:
    return all(c.groups == c.in_channels == c.out_channels for c in layer.values())


class MixedConvPruner(tp.pruner.BasePruningFunc):
    """Pointwise/grouped MixedConv2d: input and output channels are pruned independently, chunk by chunk."""

    is_root = True  # produces channels of its own: may start a pruning group

    def _prune(self, layer: MixedConv2d, idxs: Sequence[int], out: bool) -> MixedConv2d:
        offset = 0
        for conv in layer.values():
            n = conv.out_channels if out else conv.in_channels
            local = [int(i) - offset for i in idxs if offset <= int(i) < offset + n]
            if local:
                self._prune_conv(conv, local, out)
            offset += n
        convs = list(layer.values())
        layer.splits = [c.in_channels for c in convs]
        layer.in_channels = sum(layer.splits)
        layer.out_channels = sum(c.out_channels for c in convs)
        return layer

    def _prune_conv(self, conv: nn.Conv2d, local: list[int], out: bool) -> None:
        (tp.prune_conv_out_channels if out else tp.prune_conv_in_channels)(conv, local)

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        return self._prune(layer, idxs, out=True)

    def prune_in_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        return self._prune(layer, idxs, out=False)

    def get_out_channels(self, layer: nn.Module) -> int:
        return int(layer.out_channels)

    def get_in_channels(self, layer: nn.Module) -> int:
        return int(layer.in_channels)

    @staticmethod
    def _even_chunks(sizes: list[int]) -> int:
        return len(sizes) if len(sizes) > 1 and len(set(sizes)) == 1 else 1

    def get_out_channel_groups(self, layer: nn.Module) -> int:
        return self._even_chunks([c.out_channels for c in layer.values()])

    def get_in_channel_groups(self, layer: nn.Module) -> int:
        return self._even_chunks([c.in_channels for c in layer.values()])


class DepthwiseMixedConvPruner(MixedConvPruner):
    """Depthwise MixedConv2d: a channel is one input and one output, so both go together."""

    def _prune_conv(self, conv: nn.Conv2d, local: list[int], out: bool) -> None:
        tp.prune_depthwise_conv_out_channels(conv, local)

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        return self._prune(layer, idxs, out=True)

    prune_in_channels = prune_out_channels


_MIXED = MixedConvPruner()
_DW_MIXED = DepthwiseMixedConvPruner()


class MixedConvMixin:
    """Pruners and graph context for timm's MixedConv2d (shared with the mobilenetv3 module's models)."""

    def customized_pruners(self, model: nn.Module) -> dict[Any, Any]:
        pruners = super().customized_pruners(model)  # type: ignore[misc]
        pruners.update({MixedConv2d: _MIXED, _DepthwiseMixedConv2d: _DW_MIXED})
        return pruners

    @contextlib.contextmanager
    def graph_context(self, model: nn.Module) -> Iterator[None]:
        swaps = {
            m: _DepthwiseMixedConv2d
            for m in unwrap_model(model).modules()
            if type(m) is MixedConv2d and _is_depthwise(m)
        }
        with swapped_classes(swaps), super().graph_context(model):  # type: ignore[misc]
            yield


@register_adapter
class EfficientNetAdapter(MixedConvMixin, Adapter):
    name = "efficientnet"
    timm_modules = ("efficientnet",)
    examples = (
        Example("test_efficientnet", "test_*"),
        Example("test_efficientnet_evos", "test_*"),
        Example("test_efficientnet_gn", "test_*"),
        Example("test_efficientnet_ln", "test_*"),
        Example("efficientnet_b0", "efficientnet", variant="efficientnet"),
        Example("mobilenetv2_035", "efficientnet", variant="mobilenetv2"),
        Example("mnasnet_small", "efficientnet", variant="mnasnet"),
        Example("tinynet_e", "efficientnet", variant="tinynet"),
        Example("mixnet_s", "efficientnet", quick=False, variant="mixnet"),
        Example("mixnet_m", "efficientnet", quick=False, variant="mixnet"),
        Example("efficientnetv2_rw_t", "efficientnet", quick=False, variant="efficientnet"),
        Example("fbnetc_100", "efficientnet", quick=False, variant="fbnet"),
        Example("efficientnet_lite0", "efficientnet", quick=False, variant="efficientnet"),
        Example("semnasnet_050", "efficientnet", quick=False, variant="mnasnet"),
    )
