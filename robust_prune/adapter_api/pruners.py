"""torch-pruning pruners for timm layers the library does not know (per-channel parameters, blur pools, frozen
layers), and the fix-ups of attributes torch-pruning leaves stale (group counts, gains)."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch_pruning as tp
from torch import nn

from .timm_meta import fixed_output_attention_types, timm_classes

__all__ = [
    "ChannelParamPruner",
    "timm_layer_pruners",
    "fix_group_counts",
    "BlurPoolPruner",
    "FrozenPruner",
    "FROZEN",
    "frozen_class",
    "cut_gain",
]


class ChannelParamPruner(tp.pruner.BasePruningFunc):
    """Prunes a module the graph cannot see into but whose parameters are all per channel.

    The module is treated as element-wise (in channels == out channels); each parameter or buffer in
    ``params`` (``{attribute: channel dim}``) is cut along its channel dimension, integer attributes in
    ``shape_attrs`` are set to the new width, tuple attributes (``normalized_shape``) get a new last
    entry, and ``groups_attr`` (if set) names the number of channel groups that must stay even.
    """

    def __init__(
        self, params: dict[str, int], *, shape_attrs: Iterable[str] = (), groups_attr: str | None = None
    ) -> None:
        super().__init__()
        self.params = dict(params)
        self.shape_attrs = tuple(shape_attrs)
        self.groups_attr = groups_attr

    def _channels(self, layer: nn.Module) -> int | None:
        for pname, dim in self.params.items():
            p = getattr(layer, pname, None)
            if isinstance(p, torch.Tensor) and p.dim() > 0:
                return int(p.shape[dim])
        for attr in self.shape_attrs:
            value = getattr(layer, attr, None)
            if isinstance(value, int):
                return value
            if isinstance(value, (tuple, list)) and value:
                return int(value[-1])
        return None

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        n = self._channels(layer)
        if n is None:
            return layer
        keep = sorted(set(range(n)) - {int(i) for i in idxs})
        for pname, dim in self.params.items():
            p = getattr(layer, pname, None)
            if isinstance(p, nn.Parameter):
                setattr(layer, pname, self._prune_parameter_and_grad(p, keep, dim))
            elif isinstance(p, torch.Tensor) and p.dim() > 0:
                setattr(layer, pname, torch.index_select(p, dim, torch.tensor(keep, device=p.device)))
        for attr in self.shape_attrs:
            value = getattr(layer, attr, None)
            if isinstance(value, int) and not isinstance(value, bool):
                setattr(layer, attr, len(keep))
            elif isinstance(value, (tuple, list)) and value:
                setattr(layer, attr, type(value)([*value[:-1], len(keep)]))
        return layer

    prune_in_channels = prune_out_channels

    def get_out_channels(self, layer: nn.Module) -> int | None:
        return self._channels(layer)

    get_in_channels = get_out_channels

    def get_out_channel_groups(self, layer: nn.Module) -> int:
        groups = getattr(layer, self.groups_attr, 1) if self.groups_attr else 1
        return int(groups) if isinstance(groups, int) and groups > 1 else 1

    get_in_channel_groups = get_out_channel_groups


@functools.cache
def timm_layer_pruners() -> dict[type, tp.pruner.BasePruningFunc]:
    """Pruners for timm's own per-channel layers that torch-pruning does not know (RMS/simple/Evo norms)."""
    from timm.layers import evo_norm, norm

    pruners: dict[type, tp.pruner.BasePruningFunc] = {}
    shaped = ChannelParamPruner({"weight": 0, "bias": 0}, shape_attrs=("normalized_shape", "num_features"))
    for name in ("RmsNorm", "RmsNorm2d", "RmsNormFp32", "RmsNorm2dFp32", "SimpleNorm", "SimpleNorm2d",
                 "SimpleNormFp32", "SimpleNorm2dFp32"):
        cls = getattr(norm, name, None)
        if cls is not None:
            pruners[cls] = shaped
    try:
        from timm.layers import norm_act

        for name in ("RmsNormAct", "RmsNormAct2d", "RmsNormActFp32", "RmsNormAct2dFp32"):
            cls = getattr(norm_act, name, None)
            if cls is not None:
                pruners[cls] = shaped
    except ImportError:  # pragma: no cover - older timm
        pass
    # Layers that work on any channel count and own no per-channel weights (ECA slides a 1-D conv along the
    # channels): opaque pass-throughs, so the tracer does not follow their reshapes into the channel axis.
    passthrough = ChannelParamPruner({})
    try:
        from timm.layers import eca

        for name in ("EcaModule", "CecaModule"):
            cls = getattr(eca, name, None)
            if cls is not None:
                pruners[cls] = passthrough
    except ImportError:  # pragma: no cover - older timm
        pass
    from .layers import FixedOutputAttnPruner, GlobalContextPruner, SelectiveKernelPruner, SplitAttnPruner

    for cls in timm_classes(("global_context", "GlobalContext")):
        pruners[cls] = GlobalContextPruner()
    for cls in fixed_output_attention_types():
        pruners[cls] = FixedOutputAttnPruner()

    try:
        from timm.layers import SelectiveKernel, SplitAttn

        pruners[SelectiveKernel] = SelectiveKernelPruner()
        pruners[SplitAttn] = SplitAttnPruner()
    except ImportError:  # pragma: no cover - older timm
        pass
    try:
        from timm.layers import BlurPool2d

        pruners[BlurPool2d] = BlurPoolPruner()
    except ImportError:  # pragma: no cover - older timm
        pass
    # Evo norms' group count is fixed up after pruning (fix_group_counts), not imposed on torch-pruning.
    evo = ChannelParamPruner({"weight": 0, "bias": 0, "v": 0, "running_var": 0})
    for name in ("EvoNorm2dB0", "EvoNorm2dB1", "EvoNorm2dB2", "EvoNorm2dS0", "EvoNorm2dS0a", "EvoNorm2dS1",
                 "EvoNorm2dS1a", "EvoNorm2dS2", "EvoNorm2dS2a"):
        cls = getattr(evo_norm, name, None)
        if cls is not None:
            pruners[cls] = evo
    return pruners


def fix_group_counts(model: nn.Module) -> dict[str, dict[str, Any]]:
    """Give timm layers with a fixed number of channel groups (Evo norms) a count that divides their new width.

    torch-pruning is told nothing about these groups (so the width can fall freely); afterwards the group
    count becomes the largest divisor of the new width not above the original count. Returned for the record.
    """
    pruners = timm_layer_pruners()
    fixed: dict[str, dict[str, Any]] = {}
    for name, m in model.named_modules():
        pruner = pruners.get(type(m))
        groups = getattr(m, "groups", None)
        if pruner is None or not isinstance(groups, int) or groups <= 1:
            continue
        width = pruner.get_out_channels(m)
        if width is None or width % groups == 0:
            continue
        new = max(d for d in range(1, groups + 1) if width % d == 0)
        m.groups = new
        fixed[name] = {"groups": new}
    return fixed


class BlurPoolPruner(ChannelParamPruner):
    """timm's BlurPool2d: a fixed depthwise blur whose filter buffer has one row per channel (or one shared)."""

    def __init__(self) -> None:
        super().__init__({"filt": 0}, shape_attrs=("channels",))

    def _channels(self, layer: nn.Module) -> int | None:
        return None if getattr(layer, "channels", None) is None else int(layer.channels)


class FrozenPruner(tp.pruner.BasePruningFunc):
    """For layers whose input and output widths must both stay. In- and out-pruning are one function, so
    torch-pruning sees the two sides as one group; with the layer in ``ignored_layers`` that group (the
    layers feeding it and the layers it feeds) is never pruned. The functions are never called."""

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        raise RuntimeError(f"robust_prune: {type(layer).__name__} is frozen and must not be pruned.")

    prune_in_channels = prune_out_channels

    def get_out_channels(self, layer: nn.Module) -> int | None:
        for attr in ("out_channels", "out_features"):
            if isinstance(getattr(layer, attr, None), int):
                return int(getattr(layer, attr))
        return None

    get_in_channels = get_out_channels


FROZEN = FrozenPruner()


@functools.cache
def frozen_class(cls: type) -> type:
    """A subclass of ``cls`` that only exists while torch-pruning works, so ``FROZEN`` can be its pruner."""
    return type(f"Frozen{cls.__name__}", (cls,), {"__module__": __name__})


def cut_gain(layer: nn.Module, kept: list[int]) -> None:
    gain = getattr(layer, "gain", None)
    if isinstance(gain, nn.Parameter) and gain.shape[0] != len(kept):
        layer.gain = nn.Parameter(gain.data[kept].clone(), requires_grad=gain.requires_grad)
