"""The ``Adapter`` base class: what robust_prune needs to know about one timm family, with the defaults that
serve most of them. A family file subclasses it, overrides only what differs, and registers the subclass
(:func:`robust_prune.adapter_api.register_adapter`).

Example:
    >>> import timm
    >>> from robust_prune.adapter_api import Adapter
    >>> Adapter().classifier(timm.create_model("test_resnet", num_classes=10)).out_features
    10
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from robust_prune.distributed import model_device
from robust_prune.errors import UnsupportedArchitectureError

from .examples import Example
from .pruners import FROZEN, cut_gain, fix_group_counts, frozen_class, timm_layer_pruners
from .timm_meta import (
    creation_args,
    fixed_output_attention_types,
    frozen_timm_types,
    is_multiplier_conv,
    scaled_std_convs,
    timm_module,
    unwrap_model,
    weight_standardised_conv_types,
)
from .tracing import kept_output_channels, opaque_modules, patched_forwards, swapped_classes, timm_tracing_forwards

__all__ = ["Adapter"]


class Adapter:
    """What robust_prune needs to know about one timm family. Subclass and decorate with
    :func:`register_adapter`; override only what differs from the defaults.

    Hooks, in the order pruning uses them: ``matches`` (timm module, blocks) and ``check_supported``
    (raise before any weight is touched); ``fixed_input_size``/``model_args`` (how to trace and rebuild);
    ``ignored_layers`` (outputs that stay: classifiers, token mixers, fixed-width attention) and
    ``frozen_layers`` (inputs *and* outputs stay); ``num_heads`` and ``pruner_kwargs`` (head-dim vs head
    pruning, ``customized_pruners`` for layers the graph cannot handle); ``unwrapped_parameters``;
    ``graph_context`` (what torch-pruning sees while it traces: opaque layers, tracing forwards, class
    swaps; entered again when a record is replayed); ``after_prune`` (attribute fix-ups, recorded);
    ``inexact_growth_layers`` (what ``grow()`` cannot restore exactly).

    Class attributes:
        name: the family (and file) name, e.g. ``"resnet"``.
        timm_modules: the ``timm.models.<module>`` names this adapter serves.
        round_to: the largest multiple this family's kept channel counts may be rounded to (None: whatever the
            caller asks, ``PruneConfig.round_to``; 1 opts out, for families whose widths must stay exact).
        whole_heads: attention heads can be removed whole (``attention="heads"``); families with per-head
            tables the pruner cannot follow prune head dimensions instead.
        grow_exact: whether growing a channel ticket back reproduces its function exactly
            (False where LayerNorm over a grown width changes statistics).
        unsupported: a reason string when structured pruning of this family is not supported.
        priority: adapters are tried in descending priority, so one that serves part of a module
            (e.g. Res2Net blocks inside ``timm.models.resnet``) is asked before the module's own adapter.
        examples: small models this adapter is verified on (tests, zoo benchmark).
        recorded_attrs: the module attributes ``after_prune`` may set (and the record replays); a saved model
            whose record sets any other attribute is refused on load. Extend it when ``after_prune`` sets more.
    """

    name: str = "generic"
    timm_modules: tuple[str, ...] = ()
    round_to: int | None = None
    whole_heads: bool = False
    grow_exact: bool = True
    unsupported: str | None = None
    priority: int = 0
    examples: tuple[Example, ...] = ()
    recorded_attrs: tuple[str, ...] = ("groups",)  # fix_group_counts

    # --- matching -------------------------------------------------------------------------
    def matches(self, model: nn.Module) -> bool:
        return timm_module(model) in self.timm_modules

    # --- metadata ---------------------------------------------------------------------------
    @staticmethod
    def pretrained_cfg(model: nn.Module) -> dict[str, Any]:
        cfg = getattr(unwrap_model(model), "pretrained_cfg", None) or {}
        return dict(cfg)

    def architecture(self, model: nn.Module) -> str | None:
        """timm's registered name (``pretrained_cfg['architecture']``), or None for non-timm models."""
        return self.pretrained_cfg(model).get("architecture")

    def classifier(self, model: nn.Module) -> nn.Module | None:
        """The classifier head named by ``pretrained_cfg['classifier']``; else timm's ``get_classifier()``;
        else (a model that is not from timm) its last linear layer. None if it has none."""
        head = self._cfg_module(model, "classifier")
        if head is not None:
            return head
        inner = unwrap_model(model)
        getter = getattr(inner, "get_classifier", None)
        if callable(getter):
            try:
                found = getter()
            except (AttributeError, TypeError, NotImplementedError):
                found = None
            if isinstance(found, nn.Module):
                leaves = [m for m in found.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
                if leaves:
                    return leaves[-1]
        linears = [m for m in inner.modules() if isinstance(m, nn.Linear)]
        return linears[-1] if linears else None

    def first_conv(self, model: nn.Module) -> nn.Module | None:
        return self._cfg_module(model, "first_conv")

    def _cfg_module(self, model: nn.Module, key: str) -> nn.Module | None:
        inner = unwrap_model(model)
        names = self.pretrained_cfg(model).get(key)
        if isinstance(names, (list, tuple)):
            names = names[0] if names else None
        if not names:
            return None
        try:
            module = inner.get_submodule(names)
        except AttributeError:
            return None
        # timm's classifier entry may name a wrapper (e.g. head.fc); return the parametrised layer.
        if not any(True for _ in module.parameters(recurse=False)):
            leaves = [m for m in module.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
            return leaves[-1] if leaves else module
        return module

    def in_chans(self, model: nn.Module) -> int:
        # what the model was built for, where known: a stem may reshape before its first conv (space-to-depth, DCT)
        known = (creation_args(model) or {}).get("in_chans", getattr(unwrap_model(model), "in_chans", None))
        if isinstance(known, int) and not isinstance(known, bool) and known > 0:
            return known
        conv = self.first_conv(model)
        if conv is not None and hasattr(conv, "in_channels"):
            return int(conv.in_channels)
        for m in unwrap_model(model).modules():
            if isinstance(m, nn.Conv2d):
                return int(m.in_channels)
        return 3

    def pretrained_input_size(self, model: nn.Module) -> int | None:
        """The side of the square input the model was pretrained at (``pretrained_cfg['input_size']``, e.g. 224),
        or None when the config names none: image folders are read at this size by default."""
        size = self.pretrained_cfg(model).get("input_size")
        if isinstance(size, (list, tuple)) and len(size) == 3:
            return int(size[-1])
        return None

    def fixed_input_size(self, model: nn.Module) -> tuple[int, int] | None:
        """The spatial size the model requires, or None when it accepts any reasonable size.

        The default trusts ``pretrained_cfg['fixed_input_size']``: the size is the ``img_size`` the model was
        created with (``robust_prune.models.create_model`` records it), else the config's ``input_size``.
        """
        cfg = self.pretrained_cfg(model)
        if not cfg.get("fixed_input_size"):
            return None
        img = (creation_args(model) or {}).get("img_size")
        if img is not None:
            return (int(img), int(img)) if isinstance(img, int) else (int(img[0]), int(img[1]))
        size = cfg.get("input_size")
        return (int(size[-2]), int(size[-1])) if size else None

    def model_args(self, model: nn.Module) -> dict[str, Any]:
        """Arguments for ``timm.create_model(architecture, **args)`` that rebuild this model's (unpruned) shape."""
        args = creation_args(model) or {}
        inner = unwrap_model(model)
        if hasattr(inner, "num_classes"):
            args["num_classes"] = int(inner.num_classes)
        args.setdefault("in_chans", self.in_chans(model))
        size = self.fixed_input_size(model)
        if size is not None and "img_size" not in args and _takes_keyword(inner, "img_size"):
            args["img_size"] = size[0] if size[0] == size[1] else list(size)
        return args

    # --- structured pruning -------------------------------------------------------------------
    def check_supported(self, model: nn.Module) -> None:
        """Raise :class:`UnsupportedArchitectureError` before any weight is touched."""
        if self.unsupported:
            raise UnsupportedArchitectureError(self.name, type(unwrap_model(model)).__name__, self.unsupported)

    def graph_context(self, model: nn.Module) -> contextlib.AbstractContextManager[Any]:
        """A context entered around building torch-pruning's graph and pruning (and around replaying a record).

        For families whose layers must look different to torch-pruning while it works (e.g. a layer class
        swapped for a subclass with its own pruner); everything is put back when the context exits.
        The default makes every layer with a customised pruner opaque to the tracer (``opaque_modules``);
        overrides should enter ``super().graph_context(model)`` too.
        """
        return self._base_graph_context(model)

    @contextlib.contextmanager
    def _base_graph_context(self, model: nn.Module) -> Iterator[None]:
        frozen = {m: frozen_class(type(m)) for m in self.frozen_layers(model)}
        types = tuple(k for k in self.customized_pruners(model) if isinstance(k, type))
        inner = unwrap_model(model)
        # ScaledStdConv2d's per-output gain follows the channels torch-pruning keeps in its weight
        std_convs = kept_output_channels(scaled_std_convs(inner), on_exit=cut_gain)
        with swapped_classes(frozen), patched_forwards(timm_tracing_forwards(inner)), std_convs:
            with opaque_modules([m for m in inner.modules() if isinstance(m, types)]):
                yield

    def frozen_layers(self, model: nn.Module) -> list[nn.Module]:
        """Layers whose input *and* output widths must stay (so the layers around them keep theirs too).

        The default freezes depthwise convs with a channel multiplier, which torch-pruning cannot prune, and
        timm's LambdaLayer, which reshapes its heads' output to its input width.
        """
        tied = frozen_timm_types()
        return [m for m in unwrap_model(model).modules() if is_multiplier_conv(m) or (tied and isinstance(m, tied))]

    def ignored_layers(self, model: nn.Module) -> list[nn.Module]:
        """Layers whose output channels must stay (the classifier by default)."""
        head = self.classifier(model)
        fixed = fixed_output_attention_types()  # timm attention layers whose output width is their heads
        heads_out = [m for m in unwrap_model(model).modules() if fixed and isinstance(m, fixed)]
        return ([head] if head is not None else []) + self.frozen_layers(model) + heads_out

    def num_heads(self, model: nn.Module) -> dict[nn.Module, int]:
        """``{qkv_linear: num_heads}`` for every attention block (empty for CNNs)."""
        return {}

    def customized_pruners(self, model: nn.Module) -> dict[Any, Any]:
        """``{layer type or instance: tp.pruner.BasePruningFunc}`` for layers the dependency graph cannot handle.

        The default covers timm's own per-channel layers (RMS, simple and Evo norms); families add theirs.
        """
        pruners: dict[Any, Any] = dict(timm_layer_pruners())
        pruners.update({frozen_class(type(m)): FROZEN for m in self.frozen_layers(model)})
        return pruners

    def pruner_kwargs(self, model: nn.Module) -> dict[str, Any]:
        """Extra keyword arguments for ``torch_pruning.pruner.BasePruner`` (customised pruners, head options).

        Overrides should start from ``super().pruner_kwargs(model)`` so the customised pruners stay.
        """
        pruners = self.customized_pruners(model)
        if not pruners:
            return {}
        # Composite layers that produce channels of their own (selective kernel, split attention, mixed
        # convs, patch merging) must be able to start a pruning group, like convolutions and linears.
        roots = [k for k, p in pruners.items() if isinstance(k, type) and getattr(p, "is_root", False)]
        kwargs: dict[str, Any] = {"customized_pruners": pruners}
        if roots:
            kwargs["root_module_types"] = [nn.modules.conv._ConvNd, nn.Linear, nn.LSTM, *roots]
        return kwargs

    def effective_round_to(self, requested: int) -> int:
        """The multiple kept channel counts are rounded to: the caller's, lowered to this family's cap."""
        return min(requested, self.round_to) if self.round_to else requested

    def attention_kwargs(self, model: nn.Module, *, attention: str, sparsity: float) -> dict[str, Any]:
        """``BasePruner`` keyword arguments saying how attention heads are pruned (none for CNNs).

        ``attention`` is ``"heads"`` (whole heads where ``whole_heads``) or ``"head_dim"``.
        """
        return {}

    def unwrapped_parameters(self, model: nn.Module) -> list[tuple[nn.Parameter, int]]:
        """Free parameters (cls tokens, position embeddings, layer scales) and their channel dimension."""
        return []

    def after_prune(self, model: nn.Module, num_heads: dict[nn.Module, int]) -> dict[str, dict[str, Any]]:
        """Fix attributes that torch-pruning does not know about; return them as ``{module: {attr: value}}``
        so the pruning record can replay them. ``num_heads`` is the pruner's (mutated) head dict.

        The default fixes timm's grouped norm layers; overrides should merge ``super().after_prune(...)``.
        """
        return fix_group_counts(unwrap_model(model))

    # --- growing back (inverse weights inheritance) ----------------------------------------------
    def growth_is_exact(self, pruned: nn.Module, full: nn.Module) -> bool:
        """Whether growing ``pruned`` back to ``full``'s widths with zero-out keeps the ticket's function: the
        family allows it (``grow_exact``) and no layer that pools channels changed width."""
        return self.grow_exact and not self.inexact_growth_layers(pruned, full)

    def inexact_growth_layers(self, pruned: nn.Module, full: nn.Module) -> list[str]:
        """Layers whose statistics pool several channels (norms, weight-standardised convolutions) and whose
        width ``pruned`` lost relative to the full-width ``full`` (same architecture): growing those widths back
        cannot reproduce the ticket exactly.

        Every other pruned dimension is safe to grow function-preservingly (new outgoing weights at zero):
        BatchNorm is per channel, and a LayerNorm over an untouched residual width does not see an MLP's or
        an attention's grown hidden width. An empty list means zero-out growth is exact.
        """
        full_modules = dict(unwrap_model(full).named_modules())
        names = []
        for name, m in unwrap_model(pruned).named_modules():
            ref = full_modules.get(name)
            width, ref_width = _pooled_width(m), _pooled_width(ref) if ref is not None else None
            if width is not None and ref_width is not None and width != ref_width:
                names.append(name)
        return names

    # --- fine-grained pruning -------------------------------------------------------------------
    def prunable_weight_layers(
        self, model: nn.Module, *, first_layer: bool = False, classifier: bool = False
    ) -> dict[str, nn.Module]:
        """``{qualified name: module}`` of the layers whose weights may be masked (convolutions and linears)."""
        inner = unwrap_model(model)
        head, stem = self.classifier(model), self.first_conv(model)
        layers: dict[str, nn.Module] = {}
        for name, module in inner.named_modules():
            if not isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear)):
                continue
            if module is head and not classifier:
                continue
            if module is stem and not first_layer:
                continue
            layers[name] = module
        return layers

    def example_inputs(self, model: nn.Module, input_size: list[int]) -> torch.Tensor:
        """A random input of batch one and ``input_size`` (``[C, H, W]``: :func:`robust_prune.models.input_size`),
        on the model's device (pruning traces with it)."""
        # drawn on the CPU RNG whatever the model's device (the same example everywhere), then moved there
        return torch.rand(1, *input_size, device="cpu").to(model_device(model))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, timm_modules={self.timm_modules!r})"


def _takes_keyword(model: nn.Module, name: str) -> bool:
    """Whether the model's class is constructed with keyword ``name`` (timm's models take ``img_size`` where
    their shape depends on it); a constructor that only passes ``**kwargs`` on defers to its base class."""
    for cls in type(model).__mro__:
        init = cls.__dict__.get("__init__")
        if init is None:
            continue
        try:
            params = inspect.signature(init).parameters
        except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
            return False
        if name in params:
            return True
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return False
    return False


def _pooled_width(m: nn.Module | None) -> int | None:
    """The width over which a layer pools statistics across channels: a norm layer's (None for BatchNorm and
    non-norms), or a weight-standardised convolution's fan-in (its filters are standardised over it)."""
    if m is None or isinstance(m, nn.modules.batchnorm._BatchNorm):
        return None
    if isinstance(m, weight_standardised_conv_types()):
        return int(m.in_channels)
    if isinstance(m, nn.GroupNorm):
        return int(m.num_channels) if m.num_groups != m.num_channels else None
    shape = getattr(m, "normalized_shape", None)
    if isinstance(m, nn.LayerNorm) or (shape is not None and "Norm" in type(m).__name__):
        return int(shape[-1]) if shape else None
    if type(m).__name__.startswith("EvoNorm2dS"):  # group statistics
        weight = getattr(m, "weight", None)
        return int(weight.shape[0]) if weight is not None else None
    return None
