"""Pruners for composite timm layers that several families share (selective kernel, split attention).

Each layer is a black box to torch-pruning (``opaque_modules``): its pruner maps the layer's input and
output channels onto the convolutions inside it, keeping grouped and multi-path layouts even.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch_pruning as tp
from torch import nn

__all__ = ["FixedOutputAttnPruner", "GlobalContextPruner", "SelectiveKernelPruner", "SplitAttnPruner"]


def _bn_out(layer: nn.Module, idxs: list[int]) -> None:
    if isinstance(layer, nn.modules.batchnorm._BatchNorm):
        tp.prune_batchnorm_out_channels(layer, idxs)


class SelectiveKernelPruner(tp.pruner.BasePruningFunc):
    """timm.layers.SelectiveKernel: ``num_paths`` conv paths (optionally each on its own slice of the input),
    summed with a softmax attention over the paths (``attn.fc_reduce`` -> ``attn.fc_select``)."""

    is_root = True  # produces channels of its own: may start a pruning group

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        idxs = sorted(int(i) for i in idxs)
        width = int(layer.out_channels)
        for path in layer.paths:
            tp.prune_conv_out_channels(path.conv, idxs)
            _bn_out(path.bn, idxs)
        tp.prune_conv_out_channels(layer.attn.fc_select, [p * width + i for p in range(layer.num_paths) for i in idxs])
        tp.prune_conv_in_channels(layer.attn.fc_reduce, idxs)
        layer.out_channels = width - len(idxs)
        return layer

    def prune_in_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        idxs = sorted(int(i) for i in idxs)
        if layer.split_input:
            chunk = int(layer.in_channels) // layer.num_paths
            for p, path in enumerate(layer.paths):
                local = [i - p * chunk for i in idxs if p * chunk <= i < (p + 1) * chunk]
                if local:
                    tp.prune_conv_in_channels(path.conv, local)
        else:
            for path in layer.paths:
                tp.prune_conv_in_channels(path.conv, idxs)
        layer.in_channels = int(layer.in_channels) - len(idxs)
        return layer

    def get_out_channels(self, layer: nn.Module) -> int:
        return int(layer.out_channels)

    def get_in_channels(self, layer: nn.Module) -> int:
        return int(layer.in_channels)

    def get_out_channel_groups(self, layer: nn.Module) -> int:
        return int(layer.paths[0].conv.groups)

    def get_in_channel_groups(self, layer: nn.Module) -> int:
        groups = int(layer.paths[0].conv.groups)
        return groups * layer.num_paths if layer.split_input else groups


class SplitAttnPruner(tp.pruner.BasePruningFunc):
    """timm.layers.SplitAttn (ResNeSt): a grouped conv producing ``radix`` copies of the output (radix-major),
    mixed by a radix softmax computed per cardinal group (``fc1`` -> ``fc2``, grouped by cardinality)."""

    is_root = True  # produces channels of its own: may start a pruning group

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        idxs = sorted(int(i) for i in idxs)
        radix = int(layer.radix)
        width = int(layer.conv.out_channels) // radix
        card = int(layer.fc1.groups)
        per = width // card
        tp.prune_conv_out_channels(layer.conv, [r * width + c for r in range(radix) for c in idxs])
        _bn_out(layer.bn0, [r * width + c for r in range(radix) for c in idxs])
        tp.prune_conv_in_channels(layer.fc1, idxs)
        if radix > 1:  # fc2's output is laid out (cardinality, radix, width / cardinality)
            fc2 = [(c // per) * radix * per + r * per + c % per for r in range(radix) for c in idxs]
        else:
            fc2 = idxs
        tp.prune_conv_out_channels(layer.fc2, sorted(fc2))
        return layer

    def prune_in_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        tp.prune_conv_in_channels(layer.conv, sorted(int(i) for i in idxs))
        return layer

    def get_out_channels(self, layer: nn.Module) -> int:
        return int(layer.conv.out_channels) // int(layer.radix)

    def get_in_channels(self, layer: nn.Module) -> int:
        return int(layer.conv.in_channels)

    def get_out_channel_groups(self, layer: nn.Module) -> int:
        return int(layer.fc1.groups)

    def get_in_channel_groups(self, layer: nn.Module) -> int:
        return int(layer.conv.groups)



class GlobalContextPruner(tp.pruner.BasePruningFunc):
    """timm.layers.GlobalContext: output channel c = input channel c rescaled/shifted by a context computed
    from the whole input (``conv_attn`` pools, ``mlp_scale``/``mlp_add`` map C -> rd -> C). In and out are
    the same channels, so one function prunes both."""

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        idxs = sorted(int(i) for i in idxs)
        if layer.conv_attn is not None:
            tp.prune_conv_in_channels(layer.conv_attn, idxs)
        for mlp in (layer.mlp_scale, layer.mlp_add):
            if mlp is not None:
                tp.prune_conv_in_channels(mlp.fc1, idxs)
                tp.prune_conv_out_channels(mlp.fc2, idxs)
        return layer

    prune_in_channels = prune_out_channels

    def get_out_channels(self, layer: nn.Module) -> int:
        mlp = layer.mlp_scale if layer.mlp_scale is not None else layer.mlp_add
        if mlp is not None:
            return int(mlp.fc2.out_channels)
        return int(layer.conv_attn.in_channels)

    get_in_channels = get_out_channels


class FixedOutputAttnPruner(tp.pruner.BasePruningFunc):
    """Self-attention layers without an output projection (BottleneckAttn, HaloAttn, LambdaLayer): their output
    is the heads' values laid side by side, so it keeps its width (the layer is in ``ignored_layers``); their
    input is pruned in the q/k/v projections (``qkv``, or ``q`` and ``kv``)."""

    def _projections(self, layer: nn.Module) -> list[nn.Conv2d]:
        return [c for c in (getattr(layer, n, None) for n in ("qkv", "q", "kv")) if isinstance(c, nn.Conv2d)]

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        raise RuntimeError(f"robust_prune: the output width of {type(layer).__name__} cannot be pruned.")

    def prune_in_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        for conv in self._projections(layer):
            tp.prune_conv_in_channels(conv, sorted(int(i) for i in idxs))
        return layer

    def get_out_channels(self, layer: nn.Module) -> int:
        return int(getattr(layer, "dim_out_v", 0) or getattr(layer, "dim_out", 0)) or None  # type: ignore[return-value]

    def get_in_channels(self, layer: nn.Module) -> int:
        return int(self._projections(layer)[0].in_channels)
