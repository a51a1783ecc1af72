"""Helpers shared by several family adapters (attention heads, fixed input sizes, layer scales).

Nothing here names a model: each helper works on the modules' attributes, and the family files decide
where to use them.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
import torch_pruning as tp
from torch import nn

__all__ = [
    "ChannelParamPruner",
    "timm_layer_pruners",
    "fixed_output_attention_types",
    "frozen_timm_types",
    "fix_group_counts",
    "swapped_classes",
    "opaque_modules",
    "FROZEN",
    "frozen_class",
    "is_multiplier_conv",
    "link",
    "patched_forwards",
    "kept_output_channels",
    "scaled_std_convs",
    "cut_gain",
    "frozen_params",
    "timm_tracing_forwards",
    "BlurPoolPruner",
    "heads_by_qkv",
    "fix_qkv_attention",
    "fixed_img_size",
    "modules_of_type",
    "unwrap_model",
    "uses_blocks_from",
    "submodule_names",
]


def unwrap_model(model: nn.Module) -> nn.Module:
    """The timm model inside robust_prune's wrappers (NormalizedModel, DDP, accelerate's wrappers)."""
    seen = 0
    while seen < 8:
        inner = getattr(model, "robust_prune_inner", None) or getattr(model, "module", None)
        if not isinstance(inner, nn.Module):
            return model
        model, seen = inner, seen + 1
    return model


def modules_of_type(model: nn.Module, types: type | tuple[type, ...]) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, types)]


def submodule_names(model: nn.Module) -> dict[nn.Module, str]:
    return {m: n for n, m in model.named_modules()}


def uses_blocks_from(model: nn.Module, timm_module: str) -> bool:
    """Whether any submodule's class comes from ``timm.models.<timm_module>`` (e.g. Res2Net blocks in a ResNet)."""
    name = f"timm.models.{timm_module}"
    return any(type(m).__module__ == name for m in unwrap_model(model).modules())


def heads_by_qkv(
    model: nn.Module, *, qkv: str = "qkv", heads: str = "num_heads", where: Callable[[nn.Module], bool] | None = None
) -> dict[nn.Module, int]:
    """``{module.<qkv>: module.<heads>}`` for every submodule with a fused qkv ``nn.Linear`` (or 1x1 conv)."""
    out: dict[nn.Module, int] = {}
    for m in model.modules():
        layer, n = getattr(m, qkv, None), getattr(m, heads, None)
        if isinstance(layer, (nn.Linear, nn.Conv2d)) and isinstance(n, int) and n > 0:
            if where is None or where(m):
                out[layer] = n
    return out


def _out_width(layer: nn.Module) -> int:
    return int(layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels)


def fix_qkv_attention(
    model: nn.Module,
    num_heads: dict[nn.Module, int],
    *,
    qkv: str = "qkv",
    chunks: int = 3,
    attrs: Sequence[str] = ("head_dim", "attn_dim", "scale", "fused_attn"),
    keep_scale: bool = True,
    unfuse: bool = True,
) -> dict[str, dict[str, Any]]:
    """Set ``num_heads``/``head_dim``/``attn_dim`` of every attention whose ``qkv`` is in ``num_heads``.

    After head-dim pruning, ``F.scaled_dot_product_attention`` scales by 1/sqrt(new head_dim) while the
    stored ``scale`` still holds 1/sqrt(original head_dim). We keep the original temperature (``keep_scale``),
    which keeps the pruned network closest to the dense one it inherits its weights from, and switch the
    module to its explicit (non-fused) path (``unfuse``) so that the stored scale is the one used. Both are
    returned so the record replays them and a rebuilt model computes exactly the same function.
    """
    names = submodule_names(model)
    fixed: dict[str, dict[str, Any]] = {}
    for m in model.modules():
        layer = getattr(m, qkv, None)
        if layer is None or layer not in num_heads:
            continue
        heads = int(num_heads[layer])
        head_dim = _out_width(layer) // (chunks * heads)
        values: dict[str, Any] = {"num_heads": heads}
        if "head_dim" in attrs and hasattr(m, "head_dim"):
            values["head_dim"] = head_dim
        if "attn_dim" in attrs and hasattr(m, "attn_dim"):
            values["attn_dim"] = heads * head_dim
        if "scale" in attrs and isinstance(getattr(m, "scale", None), float):
            values["scale"] = float(m.scale) if keep_scale else head_dim**-0.5
        if "fused_attn" in attrs and hasattr(m, "fused_attn"):
            values["fused_attn"] = False if unfuse else bool(m.fused_attn)
        for attr, value in values.items():
            setattr(m, attr, value)
        fixed[names[m]] = values
    return fixed


def fixed_img_size(model: nn.Module, attr: str = "patch_embed") -> tuple[int, int] | None:
    """The ``img_size`` a patch embedding insists on (``strict_img_size``), else None."""
    embed = getattr(model, attr, None)
    size = getattr(embed, "img_size", None)
    if size is None or not getattr(embed, "strict_img_size", True) or getattr(model, "dynamic_img_size", False):
        return None
    if isinstance(size, int):
        return (size, size)
    return (int(size[0]), int(size[1]))


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
    from ._layers import FixedOutputAttnPruner, GlobalContextPruner, SelectiveKernelPruner, SplitAttnPruner

    for cls in _timm_classes(("global_context", "GlobalContext")):
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


@contextlib.contextmanager
def swapped_classes(swaps: dict[nn.Module, type]) -> Iterator[None]:
    """Temporarily give some modules another class (a subclass with its own torch-pruning pruner).

    torch-pruning picks a layer's pruner by its exact class; this lets two kinds of one timm layer (e.g. a
    depthwise and a pointwise MixedConv2d) get different pruners. The original classes come back on exit.
    """
    originals = {m: type(m) for m in swaps}
    try:
        for m, cls in swaps.items():
            m.__class__ = cls
        yield
    finally:
        for m, cls in originals.items():
            m.__class__ = cls


class _OpaqueLink(torch.autograd.Function):
    """One autograd node from a module's input to its output, hiding the ops in between from the tracer."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, out: torch.Tensor, *anchors: torch.Tensor) -> torch.Tensor:
        return out.clone()

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> Any:  # pragma: no cover - never called
        raise RuntimeError("robust_prune: no backward through a module made opaque for graph tracing.")


@contextlib.contextmanager
def opaque_modules(modules: Iterable[nn.Module]) -> Iterator[None]:
    """While torch-pruning traces, make each module's forward a single autograd node (input -> output).

    A layer with a customised pruner is a black box to torch-pruning, but the tracer still walks the autograd
    graph *inside* it, and internal splits, reshapes or concatenations then remap the indices flowing to its
    input. Run the real forward without grad and link input to output with one node instead.
    """
    patched = []
    try:
        for m in modules:
            original = m.forward
            anchor = next((p for p in m.parameters() if p.requires_grad), None)

            def forward(*args: Any, _original: Callable[..., Any] = original, _anchor: Any = anchor, **kwargs: Any):
                with torch.no_grad():
                    out = _original(*args, **kwargs)
                x = args[0] if args else None
                if not isinstance(out, torch.Tensor) or not isinstance(x, torch.Tensor):
                    return out
                anchors = [_anchor] if _anchor is not None else []
                if not x.requires_grad and not anchors:
                    return out
                return _OpaqueLink.apply(x, out, *anchors)

            patched.append((m, m.__dict__.get("forward")))  # some layers set their forward per instance
            m.forward = forward  # instance attribute shadows the class's forward
        yield
    finally:
        for m, own in patched:
            m.__dict__.pop("forward", None)
            if own is not None:
                m.forward = own


def link(out: torch.Tensor, *sources: torch.Tensor) -> torch.Tensor:
    """``out``'s values behind one autograd node whose inputs are ``sources``.

    torch-pruning treats that node as element-wise, so it ties the channels of all ``sources`` to the
    output: use it in a tracing-only forward (``patched_forwards``) to show the graph exactly the
    dependencies that matter, e.g. a block's prunable inner chain, while fixed-width slicing stays hidden.
    """
    anchors = [t for t in sources if isinstance(t, torch.Tensor) and t.requires_grad]
    if not anchors:
        return out
    return _OpaqueLink.apply(anchors[0], out.detach(), *anchors[1:])


@contextlib.contextmanager
def patched_forwards(forwards: dict[nn.Module, Callable[..., Any]]) -> Iterator[None]:
    """Give modules a different forward while torch-pruning traces them; ``forwards[m](m, *args)``.

    The tracing forward must return the same values as the real one (compute them with the original
    forward under ``torch.no_grad()`` and ``link`` them to the tensors that carry the dependencies).
    """
    patched = []
    try:
        for m, fn in forwards.items():
            patched.append((m, m.__dict__.get("forward")))
            m.forward = functools.partial(fn, m)
        yield
    finally:
        for m, own in patched:
            m.__dict__.pop("forward", None)
            if own is not None:
                m.forward = own


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


def is_multiplier_conv(m: nn.Module) -> bool:
    """A grouped conv with one input channel per group but several outputs per group (a depthwise conv with
    a channel multiplier): torch-pruning prunes such a layer inconsistently, so it must be frozen."""
    return (
        isinstance(m, nn.Conv2d)
        and m.groups > 1
        and m.in_channels == m.groups
        and m.out_channels != m.in_channels
    )


def glu_tracing_forward(mlp: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """timm's GluMlp with its chunk moved to dim 1 (torch-pruning maps splits on dim 1 only); same values."""
    h = mlp.fc1(x)
    moved = mlp.chunk_dim != 1 and h.dim() > 2
    t = h.movedim(-1, 1) if moved else h
    x1, x2 = t.chunk(2, dim=1)
    y = x1 * mlp.act(x2) if mlp.gate_last else mlp.act(x1) * x2
    if moved:
        y = y.movedim(1, -1)
    return mlp.drop2(mlp.fc2(mlp.norm(mlp.drop1(y))))


def timm_tracing_forwards(model: nn.Module) -> dict[nn.Module, Callable[..., Any]]:
    """Tracing forwards for timm layers whose own forward torch-pruning misreads (see ``patched_forwards``)."""
    from timm.layers.mlp import GluMlp

    forwards: dict[nn.Module, Callable[..., Any]] = {}
    for m in model.modules():
        if type(m) is GluMlp and isinstance(m.fc1, nn.Linear):
            forwards[m] = glu_tracing_forward
    return forwards


@contextlib.contextmanager
def frozen_params(params: Iterable[nn.Parameter | None]) -> Iterator[None]:
    """Keep parameters out of torch-pruning's graph while it traces (``requires_grad`` off, then restored).

    For token parameters of a width that stays: torch-pruning turns off *all* split/concat index mapping
    downstream of any 3-D parameter in its graph (a ViT special case), which breaks e.g. gated MLPs.
    """
    saved = [(p, p.requires_grad) for p in params if isinstance(p, nn.Parameter)]
    try:
        for p, _ in saved:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)


@contextlib.contextmanager
def kept_output_channels(
    layers: Iterable[nn.Module], on_exit: Callable[[nn.Module, list[int]], None]
) -> Iterator[None]:
    """Learn which output channels torch-pruning kept in each conv/linear, without touching its pruners.

    On entry each layer gets a bias whose ``.grad`` holds the channel numbers (a zero bias is added for
    the time being where the layer has none); torch-pruning cuts a parameter's ``.grad`` with the
    parameter, so on exit the surviving numbers are the kept channels: ``on_exit(layer, kept)`` runs, and
    the bias and its gradient are put back (cut to the kept channels).
    """
    saved = []
    try:
        for m in layers:
            n = int(m.weight.shape[0])
            had_bias = m.bias is not None
            old_grad = m.bias.grad if had_bias else None
            if not had_bias:
                m.bias = nn.Parameter(torch.zeros(n, dtype=m.weight.dtype, device=m.weight.device))
            m.bias.grad = torch.arange(n, dtype=m.bias.dtype, device=m.bias.device)
            saved.append((m, had_bias, old_grad))
        yield
    finally:
        for m, had_bias, old_grad in saved:
            kept = [int(round(float(i))) for i in m.bias.grad.tolist()] if m.bias.grad is not None else []
            if had_bias:
                m.bias.grad = old_grad[kept] if old_grad is not None else None
            else:
                m.bias = None
            if len(kept) == m.weight.shape[0]:
                on_exit(m, kept)


def cut_gain(layer: nn.Module, kept: list[int]) -> None:
    gain = getattr(layer, "gain", None)
    if isinstance(gain, nn.Parameter) and gain.shape[0] != len(kept):
        layer.gain = nn.Parameter(gain.data[kept].clone(), requires_grad=gain.requires_grad)


def scaled_std_convs(model: nn.Module) -> list[nn.Module]:
    """timm's weight-standardised convs with a per-output ``gain`` (NFNets)."""
    from timm.layers import std_conv

    types = tuple(getattr(std_conv, n) for n in ("ScaledStdConv2d", "ScaledStdConv2dSame") if hasattr(std_conv, n))
    return [m for m in model.modules() if isinstance(m, types)]


def _timm_classes(*specs: tuple[str, str]) -> list[type]:
    """Classes ``timm.layers.<module>.<name>`` that exist in the installed timm."""
    import importlib

    found = []
    for module, name in specs:
        try:
            cls = getattr(importlib.import_module(f"timm.layers.{module}"), name, None)
        except ImportError:  # pragma: no cover - older timm
            cls = None
        if isinstance(cls, type):
            found.append(cls)
    return found


def fixed_output_attention_types() -> tuple[type, ...]:
    """timm's self-attention layers whose output width is tied to their heads (no output projection)."""
    return tuple(_timm_classes(("bottleneck_attn", "BottleneckAttn"), ("halo_attn", "HaloAttn")))


def frozen_timm_types() -> tuple[type, ...]:
    """timm layers whose input and output widths are tied together and to their heads (LambdaLayer reshapes
    its output to the input width): frozen by default."""
    return tuple(_timm_classes(("lambda_layer", "LambdaLayer")))
