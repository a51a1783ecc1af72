"""Weight-level (fine-grained) sparsity with ``torch.nn.utils.prune``; the architecture stays the same.

The family's adapter decides which layers are prunable (convolutions and linears; the stem and the
classifier on request). Scores are ranked globally (one threshold over all prunable weights, the
default) or per layer (the same fraction everywhere), and exactly ``round(sparsity * n)`` weights are
masked, so the achieved sparsity equals the request. Masks are ``weight_mask`` buffers that stay in
force through training (``weight = weight_orig * weight_mask`` on every forward);
:func:`~robust_prune.pruning.masks.make_permanent` folds them into plain weights at the end.

Example:
    >>> import timm
    >>> from robust_prune import PruneConfig
    >>> m = timm.create_model("resnet10t", num_classes=10)
    >>> record = weight_prune(m, PruneConfig(sparsity=0.8, structure="weight"), image_size=32)
    >>> round(record.stats["sparsity"], 3)
    0.8
    >>> from robust_prune.pruning.masks import make_permanent
    >>> masks = make_permanent(m)   # plain timm module again, zeros in place of pruned weights
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from robust_prune.adapter_api import get_adapter, timm_module, unwrap_model

from ..config import PruneConfig
from ..distributed import mean_across
from ..errors import PruningError
from ..models import input_size
from .guard import Steps, guarded
from .importance import Importance, get_importance
from .masks import apply_masks, current_masks
from .pruner import LossFn, check_structure, compute_gradients
from .record import PruningRecord

__all__ = ["load_dense_weights", "mask_stats", "prunable_layers", "weight_prune"]


def prunable_layers(model: nn.Module, config: PruneConfig) -> dict[str, nn.Module]:
    """``{module name: module}`` of the layers whose weights ``config`` may mask (the adapter decides)."""
    inner = unwrap_model(model)
    adapter = get_adapter(inner, warn=False)
    layers = adapter.prunable_weight_layers(
        inner, first_layer=config.prune_first_layer, classifier=config.prune_classifier
    )
    if not layers:
        raise PruningError(f"The '{adapter.name}' adapter found no prunable convolution or linear layer.")
    return layers


def _effective_weight(module: nn.Module) -> torch.Tensor:
    """The weight the module computes with (``weight_orig * weight_mask`` when masked)."""
    if hasattr(module, "weight_mask"):
        return (module.weight_orig * module.weight_mask).detach()
    return module.weight.detach()


def _weight_grad(module: nn.Module) -> torch.Tensor | None:
    param = module.weight_orig if hasattr(module, "weight_mask") else module.weight
    return None if param.grad is None else param.grad.detach()


def _scores(
    layers: dict[str, nn.Module], criterion: Importance, model: nn.Module, loss_fn: LossFn | None
) -> dict[str, torch.Tensor]:
    if criterion.gradients:
        compute_gradients(model, criterion, loss_fn)
    scores: dict[str, torch.Tensor] = {}
    for name, module in layers.items():
        s = criterion.weight_scores(_effective_weight(module), _weight_grad(module) if criterion.gradients else None)
        s = mean_across(s.float()).cpu().clone()  # the same scores on every process: the same weights go
        if hasattr(module, "weight_mask"):  # what is already pruned stays pruned
            s[~module.weight_mask.bool().cpu()] = -float("inf")
        scores[name] = s
    if criterion.gradients:
        model.zero_grad(set_to_none=True)
    return scores


def _lowest(scores: torch.Tensor, k: int) -> torch.Tensor:
    """A bool mask keeping all but the ``k`` lowest entries (stable sort: ties break by position)."""
    keep = torch.ones(scores.numel(), dtype=torch.bool, device=scores.device)
    if k > 0:
        keep[torch.argsort(scores.flatten(), stable=True)[:k]] = False
    return keep.view(scores.shape)


def _choose_masks(scores: dict[str, torch.Tensor], sparsity: float, scope: str) -> dict[str, torch.Tensor]:
    if scope == "layerwise":
        return {name: _lowest(s, round(sparsity * s.numel())) for name, s in scores.items()}
    flat = torch.cat([s.flatten() for s in scores.values()])
    keep = _lowest(flat, round(sparsity * flat.numel()))
    masks, start = {}, 0
    for name, s in scores.items():
        masks[name] = keep[start : start + s.numel()].view(s.shape)
        start += s.numel()
    return masks


def load_dense_weights(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load a dense ``state_dict`` into a (possibly masked) model, keeping its masks: rewinding.

    Masked parameters get their ``*_orig`` set from the dense values, so surviving weights take the
    checkpoint's values and pruned ones stay zero in the forward pass.
    """
    inner = unwrap_model(model)
    with torch.no_grad():
        for name, tensor in list(inner.named_parameters()) + list(inner.named_buffers()):
            if name.endswith("_mask"):
                continue
            key = name[: -len("_orig")] if name.endswith("_orig") else name
            if key not in state:
                raise PruningError(f"The checkpoint has no value for {key!r}; it is not from this model.")
            tensor.copy_(state[key])
        for pname in current_masks(inner):
            module_name, _, attr = pname.rpartition(".")
            module = inner.get_submodule(module_name)
            setattr(module, attr, getattr(module, f"{attr}_orig") * getattr(module, f"{attr}_mask"))


def mask_stats(model: nn.Module, layers: dict[str, nn.Module]) -> dict[str, object]:
    """Achieved sparsity over the prunable weights (global and per layer) and over all parameters, and the layers
    left with no weight at all (``emptied_layers``)."""
    per_layer: dict[str, float] = {}
    pruned = total = 0
    for name, module in layers.items():
        w = _effective_weight(module)
        zeros = int((w == 0).sum()) if not hasattr(module, "weight_mask") else int((module.weight_mask == 0).sum())
        per_layer[f"{name}.weight"] = zeros / max(w.numel(), 1)
        pruned, total = pruned + zeros, total + w.numel()
    params = sum(p.numel() for n, p in unwrap_model(model).named_parameters())
    return {
        "sparsity": pruned / max(total, 1),
        "prunable_weights": total,
        "pruned_weights": pruned,
        "params": params,
        "params_nonzero": params - pruned,
        "sparsity_all_params": pruned / max(params, 1),
        "per_layer": per_layer,
        "emptied_layers": sorted(name for name, fraction in per_layer.items() if fraction >= 1.0),
    }


def weight_prune(
    model: nn.Module, config: PruneConfig, *, image_size: int | None = None, loss_fn: LossFn | None = None
) -> PruningRecord:
    """Mask ``config.sparsity`` of the prunable weights of ``model`` in place; return the record.

    Already masked weights stay masked (iterative pruning ranks only what survives). Scores come from
    ``config.importance`` (:mod:`robust_prune.pruning.importance`): ``"magnitude"`` |w|, ``"random"`` (a control;
    the global RNG, seed it), ``"robust"`` |w * dL_adv/dw| (HYDRA-like, needs ``loss_fn``). ``config.scope``
    ``"global"`` ranks all layers together, ``"layerwise"`` removes the same fraction from each.

    Args:
        model: a timm model, optionally wrapped (NormalizedModel).
        config: the pruning (``structure="weight"``): sparsity, importance, scope, prune_first_layer,
            prune_classifier.
        image_size: the side of the data the model is trained on, recorded as its input size (None: the model's
            own, :func:`robust_prune.models.input_size`).
        loss_fn: ``loss_fn(model) -> loss`` (called with ``model`` as passed) for a gradient importance
            (``"robust"``).

    Example:
        >>> import timm
        >>> m = timm.create_model("resnet10t", num_classes=10)
        >>> rec = weight_prune(m, PruneConfig(sparsity=0.5, structure="weight", scope="layerwise"))
        >>> sorted(set(round(v, 2) for v in rec.stats["per_layer"].values()))
        [0.5]
    """
    check_structure(config, "weight")
    criterion = get_importance(config.importance)
    inner = unwrap_model(model)
    adapter = get_adapter(inner, warn=False)
    layers = prunable_layers(inner, config)

    # In place (parameters keep their identity), with a snapshot put back on any failure (guard.py).
    def work(m: nn.Module, steps: Steps) -> None:
        steps.now = "score the weights"
        scores = _scores(layers, criterion, m, loss_fn)
        chosen = _choose_masks(scores, config.sparsity, config.scope)
        steps.now = "mask the weights"
        apply_masks(inner, {f"{name}.weight": keep for name, keep in chosen.items()})

    family = timm_module(inner) or type(inner).__name__
    # no time bound: nothing is traced, and ranking a large model's weights on a busy CPU may take minutes
    guarded(model, work, family=family, structure="weight", mode="restore", time_limit=0)
    stats = mask_stats(inner, layers)
    if stats["emptied_layers"]:
        warnings.warn(
            f"Pruning a fraction {config.sparsity:g} of the weights with {config.scope} ranking removed every "
            f"weight of {len(stats['emptied_layers'])} layer(s): {', '.join(stats['emptied_layers'])}; they no longer "
            "compute anything. Use scope='layerwise' or a lower sparsity to keep every layer.",
            stacklevel=2,
        )
    return PruningRecord(
        structure="weight",
        sparsity=float(config.sparsity),
        adapter=adapter.name,
        architecture=adapter.architecture(inner),
        model_args=adapter.model_args(inner),
        input_size=input_size(inner, image_size),
        masks=current_masks(inner),
        stats=stats,
        extra={"importance": config.importance, "scope": config.scope},
    )
