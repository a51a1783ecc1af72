"""The pruning record: what was removed, stored as data (JSON + tensors), never as a pickle.

A channel-pruned model is rebuilt by creating the timm architecture and replaying the record's
torch-pruning history; a weight-pruned model keeps the architecture and carries its masks.

Example:
    >>> import timm, robust_prune as rp
    >>> result = rp.prune(timm.create_model("resnet10t", num_classes=10), 0.5)
    >>> again = result.record.build()   # fresh timm model, same pruned shapes
    >>> [p.shape for p in again.parameters()] == [p.shape for p in result.model.parameters()]
    True
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import timm
import torch
from torch import nn

from ..data.transforms import FALLBACK_SIZE
from ..distributed import model_device
from ..errors import PruningError
from ..models import eval_mode, input_size

__all__ = ["PruningRecord", "apply_module_attrs", "quiet_unwrapped_parameters", "rebuild_model", "replay_history"]

RECORD_VERSION = 1


def _unknown_input_size() -> list[int]:
    """The input size of a record that names none (hand-written; every saved record names its own)."""
    return [3, FALLBACK_SIZE, FALLBACK_SIZE]


@dataclass
class PruningRecord:
    """What pruning did to a timm model, in a form that survives JSON.

    Attributes:
        structure: ``"channel"``, ``"weight"`` or ``"none"`` (dense).
        sparsity: the requested fraction removed.
        adapter: the adapter that pruned it.
        architecture: timm's registered model name (``None`` for non-timm models, which cannot be rebuilt).
        model_args: keyword arguments of ``timm.create_model`` that rebuild the unpruned architecture.
        input_size: ``[channels, height, width]`` the model was trained at and the dependency graph traced at
            (:func:`robust_prune.models.input_size`).
        history: torch-pruning's pruning history, ``[module name, is_out_channels, indices]`` per step.
        module_attrs: attributes set after pruning (e.g. attention ``num_heads``), ``{module: {attr: value}}``.
        masks: weight masks ``{parameter name: bool tensor}`` (stored beside the weights, not in JSON).
        stats: measured outcome (achieved sparsity, parameters, MACs).
        extra: method-specific facts (lottery rounds, growth) that travel with the model.
    """

    structure: str = "none"
    sparsity: float = 0.0
    adapter: str = "generic"
    architecture: str | None = None
    model_args: dict[str, Any] = field(default_factory=dict)
    input_size: list[int] = field(default_factory=_unknown_input_size)
    history: list[list[Any]] = field(default_factory=list)
    module_attrs: dict[str, dict[str, Any]] = field(default_factory=dict)
    masks: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    stats: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form; masks are listed by name only (their tensors go to safetensors)."""
        return {
            "version": RECORD_VERSION,
            "structure": self.structure,
            "sparsity": self.sparsity,
            "adapter": self.adapter,
            "architecture": self.architecture,
            "model_args": copy.deepcopy(self.model_args),
            "input_size": list(self.input_size),
            "history": [[name, bool(out), [int(i) for i in idxs]] for name, out, idxs in self.history],
            "module_attrs": copy.deepcopy(self.module_attrs),
            "mask_names": sorted(self.masks),
            "stats": copy.deepcopy(self.stats),
            "extra": copy.deepcopy(self.extra),
        }

    @classmethod
    def for_dense_model(cls, model: nn.Module, *, image_size: int | None = None) -> PruningRecord:
        """The record of an unpruned timm model (wrappers looked through): enough to rebuild it from timm.

        ``image_size`` is the side of the data it was trained at (None: the model's own input size,
        :func:`robust_prune.models.input_size`).

        Example:
            >>> import timm
            >>> record = PruningRecord.for_dense_model(timm.create_model("test_resnet", num_classes=10), image_size=64)
            >>> record.model_args, record.input_size
            ({'num_classes': 10, 'in_chans': 3}, [3, 64, 64])
        """
        from robust_prune.adapter_api import get_adapter, unwrap_model

        inner = unwrap_model(model)
        adapter = get_adapter(inner, warn=False)
        return cls(
            structure="none",
            sparsity=0.0,
            adapter=adapter.name,
            architecture=adapter.architecture(inner),
            model_args=adapter.model_args(inner),
            input_size=input_size(inner, image_size),
        )

    def build_dense(self, *, seed: int | None = None) -> nn.Module:
        """A fresh, unpruned timm model of the record's architecture and arguments, in eval mode.

        Args:
            seed: seeds timm's initialisation on a forked RNG (the global RNG is left alone); None draws from
                the global RNG as ``timm.create_model`` does.

        Raises:
            PruningError: the record names no timm architecture, or timm cannot create it.
        """
        with _seeded(seed):
            return self._create().eval()

    def build(self, *, seed: int | None = None) -> nn.Module:
        """A fresh timm model with the record's pruned shapes (weights are timm's initialisation: load them next).

        Channel records are replayed on :meth:`build_dense`'s model; weight and dense records keep timm's shapes.
        With ``seed``, the whole build runs on a forked, seeded RNG.
        """
        with _seeded(seed):
            model = self._create()
            if self.structure == "channel":
                replay_history(model, self)
        return model.eval()

    def _create(self) -> nn.Module:
        from robust_prune.adapter_api import remember_creation_args

        if not self.architecture:
            raise PruningError("This record has no timm architecture name, so the model cannot be rebuilt from it.")
        try:
            model = timm.create_model(self.architecture, pretrained=False, **self.model_args)
        except (RuntimeError, TypeError, ValueError) as exc:
            raise PruningError(f"timm could not create {self.architecture!r} with {self.model_args}: {exc}") from exc
        remember_creation_args(model, self.model_args)
        return model

    @classmethod
    def from_dict(cls, data: dict[str, Any], masks: dict[str, torch.Tensor] | None = None) -> PruningRecord:
        if not isinstance(data, dict) or "structure" not in data:
            raise PruningError("Not a robust_prune pruning record (no 'structure' field).")
        if int(data.get("version", 1)) > RECORD_VERSION:
            raise PruningError(
                f"This pruning record has version {data['version']}; upgrade robust_prune to read it "
                "(pip install -U robust-prune)."
            )
        masks = dict(masks or {})
        missing = set(data.get("mask_names", [])) - set(masks)
        if missing:
            raise PruningError(f"The record names masks that were not supplied: {sorted(missing)[:5]}.")
        return cls(
            structure=data["structure"],
            sparsity=float(data.get("sparsity", 0.0)),
            adapter=data.get("adapter", "generic"),
            architecture=data.get("architecture"),
            model_args=dict(data.get("model_args", {})),
            input_size=list(data.get("input_size", _unknown_input_size())),
            history=[list(step) for step in data.get("history", [])],
            module_attrs=dict(data.get("module_attrs", {})),
            masks=masks,
            stats=dict(data.get("stats", {})),
            extra=dict(data.get("extra", {})),
        )


def apply_module_attrs(model: nn.Module, module_attrs: dict[str, dict[str, Any]]) -> None:
    """Set recorded attributes (attention heads and the like) on a model's submodules.

    Only attributes the module already has are set: a record never adds new state to a model.

    Raises:
        PruningError: the record names a submodule or an attribute the model does not have.
    """
    for name, attrs in module_attrs.items():
        try:
            module = model.get_submodule(name) if name else model
        except AttributeError:
            raise PruningError(f"The record sets attributes of {name!r}, which this model does not have.") from None
        for attr, value in attrs.items():
            if not hasattr(module, attr):
                raise PruningError(f"The record sets {name}.{attr}, an attribute this model's {name!r} does not have.")
            setattr(module, attr, value)


def replay_history(model: nn.Module, record: PruningRecord) -> nn.Module:
    """Replay a channel record on an unpruned model of the same architecture, in place."""
    import torch_pruning as tp

    from robust_prune.adapter_api import adapter_by_name

    if not record.history:
        apply_module_attrs(model, record.module_attrs)
        return model
    adapter = adapter_by_name(record.adapter)
    example = torch.rand(1, *record.input_size, device=model_device(model))
    kwargs = adapter.pruner_kwargs(model)
    # ignored parameters (e.g. a position embedding left alone) were skipped when pruning: skip them here too
    ignored_params = [p for p in adapter.ignored_layers(model) if isinstance(p, nn.Parameter)]
    with eval_mode(model), adapter.graph_context(model), torch.enable_grad(), quiet_unwrapped_parameters():
        graph = tp.DependencyGraph().build_dependency(
            model,
            example_inputs=example,
            unwrapped_parameters=adapter.unwrapped_parameters(model) or None,
            customized_pruners=kwargs.get("customized_pruners"),
            ignored_params=ignored_params,
        )
        try:
            graph.load_pruning_history([tuple(step) for step in record.history])
        except (AttributeError, IndexError, RuntimeError) as exc:
            raise PruningError(
                f"Could not replay the pruning record on {record.architecture}: {exc}. "
                "The record was made for a different architecture or model arguments."
            ) from exc
    apply_module_attrs(model, record.module_attrs)
    return model


def rebuild_model(record: PruningRecord) -> nn.Module:
    """A fresh timm model with the record's pruned shapes (weights still random: load them next).

    The same as ``record.build()``.
    """
    return record.build()


@contextlib.contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    """Run the block on a forked global RNG seeded with ``seed``; with None, on the global RNG itself."""
    with torch.random.fork_rng(devices=[], enabled=seed is not None):
        if seed is not None:
            torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def quiet_unwrapped_parameters() -> Iterator[None]:
    """torch-pruning warns about every parameter outside a layer it knows (layer scales, tokens); the
    family's adapter decides how those are pruned, so the warning is only noise to a user."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Unwrapped parameters detected")
        yield
