"""What the adapters read off timm models: the model inside the wrappers, submodules by type, fixed input sizes,
and the timm layer classes that need special handling (looked up by name, so an older timm simply lacks them)."""

from __future__ import annotations

from typing import Any

from torch import nn

__all__ = [
    "creation_args",
    "remember_creation_args",
    "timm_module",
    "timm_classes",
    "unwrap_model",
    "modules_of_type",
    "submodule_names",
    "uses_blocks_from",
    "fixed_img_size",
    "is_multiplier_conv",
    "scaled_std_convs",
    "weight_standardised_conv_types",
    "fixed_output_attention_types",
    "frozen_timm_types",
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


def fixed_img_size(model: nn.Module, attr: str = "patch_embed") -> tuple[int, int] | None:
    """The ``img_size`` a patch embedding insists on (``strict_img_size``), else None."""
    embed = getattr(model, attr, None)
    size = getattr(embed, "img_size", None)
    if size is None or not getattr(embed, "strict_img_size", True) or getattr(model, "dynamic_img_size", False):
        return None
    if isinstance(size, int):
        return (size, size)
    return (int(size[0]), int(size[1]))


def is_multiplier_conv(m: nn.Module) -> bool:
    """A grouped conv with one input channel per group but several outputs per group (a depthwise conv with
    a channel multiplier): torch-pruning prunes such a layer inconsistently, so it must be frozen."""
    return (
        isinstance(m, nn.Conv2d)
        and m.groups > 1
        and m.in_channels == m.groups
        and m.out_channels != m.in_channels
    )


def scaled_std_convs(model: nn.Module) -> list[nn.Module]:
    """timm's weight-standardised convs with a per-output ``gain`` (NFNets)."""
    from timm.layers import std_conv

    types = tuple(getattr(std_conv, n) for n in ("ScaledStdConv2d", "ScaledStdConv2dSame") if hasattr(std_conv, n))
    return [m for m in model.modules() if isinstance(m, types)]


def weight_standardised_conv_types() -> tuple[type, ...]:
    """timm's weight-standardised convolutions (each filter is standardised over its fan-in)."""
    names = ("StdConv2d", "StdConv2dSame", "ScaledStdConv2d", "ScaledStdConv2dSame")
    return tuple(timm_classes(*(("std_conv", n) for n in names)))


def timm_classes(*specs: tuple[str, str]) -> list[type]:
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
    return tuple(timm_classes(("bottleneck_attn", "BottleneckAttn"), ("halo_attn", "HaloAttn")))


def frozen_timm_types() -> tuple[type, ...]:
    """timm layers whose input and output widths are tied together and to their heads (LambdaLayer reshapes
    its output to the input width): frozen by default."""
    return tuple(timm_classes(("lambda_layer", "LambdaLayer")))

# The keyword arguments a timm model was created with, kept on the module itself (timm does not keep them, and
# a deepcopy must keep them too): the pruning record needs them to rebuild the same architecture.
_CREATION_ARGS = "robust_prune_model_args"


def creation_args(model: nn.Module) -> dict[str, Any] | None:
    """The ``timm.create_model`` keyword arguments recorded for ``model`` (None when it was created elsewhere)."""
    recorded = getattr(unwrap_model(model), _CREATION_ARGS, None)
    return dict(recorded) if isinstance(recorded, dict) else None


def remember_creation_args(model: nn.Module, args: dict[str, Any]) -> None:
    """Record the ``timm.create_model`` keyword arguments of ``model`` (see :func:`creation_args`)."""
    setattr(unwrap_model(model), _CREATION_ARGS, dict(args))


def timm_module(model: nn.Module) -> str:
    """``"resnet"`` for a model whose class lives in ``timm.models.resnet``; ``""`` for non-timm models."""
    module = type(unwrap_model(model)).__module__
    prefix = "timm.models."
    return module[len(prefix) :] if module.startswith(prefix) else ""
