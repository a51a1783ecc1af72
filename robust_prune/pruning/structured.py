"""Channel pruning with torch-pruning's dependency graph; the model really gets smaller.

The family's adapter supplies every architecture-specific setting (ignored layers, attention heads,
round_to, customised pruners, fix-ups). torch-pruning's pruning history is kept as data so the
pruned model can be rebuilt from a fresh timm model.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch_pruning as tp
from torch import nn

from robust_prune.adapter_api import Adapter, get_adapter, timm_module, unwrap_model

from ..config import PruneConfig
from ..distributed import mean_across
from ..errors import PruningError
from ..evaluation.measure import count_macs_params, output_width, size_stats
from ..models import eval_mode, input_size
from .guard import Broken, Steps, guarded
from .importance import Importance, get_importance
from .pruner import LossFn, check_structure, compute_gradients
from .record import PruningRecord, quiet_unwrapped_parameters

__all__ = ["channel_prune"]


class _RoundingPruner(tp.pruner.BasePruner):
    """torch-pruning's pruner, rounding a layer's kept channels to the *nearest* multiple of ``round_to``.

    torch-pruning rounds down, which empties a layer narrower than ``round_to`` and takes up to ``round_to - 1``
    channels more than asked. Here a layer keeps its exact count where rounding would empty it or prune nothing.
    """

    def _round_to(self, n_pruned: int, current_channels: int, round_to: int) -> int:
        keep = round_to * math.floor((current_channels - n_pruned) / round_to + 0.5)
        return n_pruned if keep <= 0 or keep >= current_channels else current_channels - keep

    def estimate_importance(self, group: Any) -> torch.Tensor:
        """The group's scores, averaged over the processes: every process ranks the same numbers, so all of them
        prune the same channels (whatever their data, RNG or kernels did to their own scores)."""
        scores = super().estimate_importance(group)
        return scores if scores is None else mean_across(scores)


def _check_pruned(model: nn.Module, example: torch.Tensor, expected: torch.Size) -> None:
    try:
        with torch.no_grad():
            out = model(example)
    except Exception as exc:  # any failure here means the graph was pruned inconsistently
        raise Broken(f"the pruned model no longer runs ({type(exc).__name__}: {str(exc)[:200]})") from exc
    if out.shape != expected:
        raise Broken(f"pruning changed the output shape from {tuple(expected)} to {tuple(out.shape)}")


def channel_prune(
    model: nn.Module, config: PruneConfig, *, image_size: int | None = None, loss_fn: LossFn | None = None
) -> PruningRecord:
    """Remove ``config.sparsity`` of the channels of every prunable layer, in place; return the record.

    Args:
        model: a timm model (wrappers such as NormalizedModel are looked through).
        config: the pruning (``structure="channel"``): ``sparsity`` of the channels removed from each layer
            (``scope="layerwise"``) or overall (``"global"``), chosen by ``importance``; kept counts rounded to the
            nearest multiple of ``round_to`` (an adapter may lower it, ``Adapter.round_to``; layers too narrow for
            it keep the exact count); ``attention="heads"`` removes whole attention heads where the adapter can
            (else head dimensions), ``"head_dim"`` the same dimensions from every head.
        image_size: the side of the data the model is trained on, which the graph is traced at (None: the model's
            own input size, :func:`robust_prune.models.input_size`; a fixed size wins).
        loss_fn: ``loss_fn(model) -> loss`` (called with ``model`` as passed) whose gradients feed a gradient
            importance (``"taylor"``), e.g. an adversarial loss.

    Example:
        >>> import timm
        >>> m = timm.create_model("resnet10t", num_classes=10)
        >>> record = channel_prune(m, PruneConfig(sparsity=0.5), image_size=32)
        >>> record.stats["macs_ratio"] < 0.5, record.input_size
        (True, [3, 32, 32])
    """
    check_structure(config, "channel")
    adapter = get_adapter(unwrap_model(model))
    adapter.check_supported(unwrap_model(model))
    criterion = get_importance(config.importance)

    # On a copy, in bounded time; the caller's model takes the result only if every step succeeded (guard.py).
    def work(copy: nn.Module, steps: Steps) -> PruningRecord:
        inner = unwrap_model(copy)
        example = adapter.example_inputs(inner, input_size(inner, image_size))
        with eval_mode(inner):
            return _channel_prune(copy, inner, adapter, example, config, criterion, loss_fn=loss_fn, steps=steps)

    known = tuple(k for k in adapter.customized_pruners(unwrap_model(model)) if isinstance(k, type))
    return guarded(model, work, family=_family(model, adapter), structure="channel", known=known)


def _family(model: nn.Module, adapter: Adapter) -> str:
    return timm_module(model) or (adapter.name if adapter.name != "generic" else type(unwrap_model(model)).__name__)


def _channel_prune(
    model: nn.Module,
    inner: nn.Module,
    adapter: Adapter,
    example: torch.Tensor,
    config: PruneConfig,
    criterion: Importance,
    *,
    loss_fn: LossFn | None,
    steps: Steps,
) -> PruningRecord:
    sparsity = config.sparsity
    steps.now = "run the model before pruning"
    with torch.no_grad():
        expected = inner(example).shape
    macs0, params0 = count_macs_params(inner, example)
    width0 = output_width(inner)
    num_heads = adapter.num_heads(inner)
    attention = adapter.attention_kwargs(inner, attention=config.attention, sparsity=sparsity)
    kwargs = {**adapter.pruner_kwargs(inner), **attention}
    multiple = adapter.effective_round_to(config.round_to)
    # torch-pruning's defaults for these are shared mutable dicts (FIELD-NOTES): always pass fresh ones.
    in_groups = dict(kwargs.pop("in_channel_groups", None) or {})
    out_groups = dict(kwargs.pop("out_channel_groups", None) or {})
    if criterion.gradients:
        steps.now = "compute the importance gradients"
        compute_gradients(model, criterion, loss_fn)
    steps.now = "trace the dependency graph"
    with adapter.graph_context(inner), torch.enable_grad(), quiet_unwrapped_parameters():
        pruner = _RoundingPruner(
            inner,
            example,
            importance=criterion.channel_scorer(),
            pruning_ratio=float(sparsity),
            global_pruning=config.scope == "global",
            ignored_layers=adapter.ignored_layers(inner),
            round_to=multiple if multiple > 1 else None,  # None: torch-pruning's exact path, bit for bit
            num_heads=num_heads,
            unwrapped_parameters=adapter.unwrapped_parameters(inner) or None,
            in_channel_groups=in_groups,
            out_channel_groups=out_groups,
            **kwargs,
        )
        steps.now = "prune the channels"
        pruner.step()
    inner.zero_grad(set_to_none=True)
    steps.now = f"fix up the pruned layers ({type(adapter).__name__}.after_prune)"
    module_attrs = adapter.after_prune(inner, num_heads)
    undeclared = sorted({a for attrs in module_attrs.values() for a in attrs} - set(adapter.recorded_attrs))
    if undeclared:  # a saved model would be refused on load (robust_prune.publishing.trust)
        raise PruningError(
            f"The {adapter.name} adapter's after_prune set {undeclared}, which {type(adapter).__name__}.recorded_attrs "
            "does not declare; add them there."
        )
    steps.now = "check the pruned model"
    _check_pruned(inner, example, expected)
    steps.now = "measure the pruned model"
    macs1, params1 = count_macs_params(inner, example)
    stats = size_stats(macs0, params0, macs1, params1)
    # what rounding achieved: the kept share of all conv/linear output channels (measure.channel_ratio's measure)
    stats.update(channel_ratio=output_width(inner) / max(width0, 1), round_to=multiple)
    history = [[name, bool(out), [int(i) for i in idxs]] for name, out, idxs in pruner.DG.pruning_history()]
    return PruningRecord(
        structure="channel",
        sparsity=float(sparsity),
        adapter=adapter.name,
        architecture=adapter.architecture(inner),
        model_args=adapter.model_args(inner),
        input_size=list(example.shape[1:]),
        history=history,
        module_attrs=module_attrs,
        stats=stats,
    )
