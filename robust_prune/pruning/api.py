"""``prune()``: one entry point for both structures, returning the model and its record."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..config import PruneConfig
from ..errors import ConfigError
from ..models import NormalizedModel
from .pruner import LossFn, Pruner
from .record import PruningRecord
from .structured import channel_prune
from .unstructured import weight_prune

__all__ = ["PRUNERS", "PruneResult", "prune"]

# The pruner of each structure; both take (model, PruneConfig, *, image_size, loss_fn) -> PruningRecord.
PRUNERS: dict[str, Pruner] = {"channel": channel_prune, "weight": weight_prune}


@dataclass
class PruneResult:
    """The pruned model (the same object that was passed in, changed in place; a NormalizedModel also carries the
    record) and what was done to it."""

    model: nn.Module
    record: PruningRecord

    def __iter__(self):  # allows ``model, record = prune(...)``
        return iter((self.model, self.record))


def prune(
    model: nn.Module,
    sparsity: float | PruneConfig,
    *,
    structure: str | None = None,
    importance: str | None = None,
    scope: str | None = None,
    prune_first_layer: bool | None = None,
    prune_classifier: bool | None = None,
    round_to: int | None = None,
    attention: str | None = None,
    image_size: int | None = None,
    loss_fn: LossFn | None = None,
) -> PruneResult:
    """Prune ``model`` in place to ``sparsity`` and return it with its pruning record.

    Options left at None take :class:`~robust_prune.PruneConfig`'s defaults; or pass a whole ``PruneConfig`` as
    ``sparsity`` (and no option beside it).

    Args:
        model: a timm model, optionally wrapped in NormalizedModel.
        sparsity: fraction in [0, 1) of channels (``structure="channel"``) or prunable weights (``"weight"``), or
            a :class:`~robust_prune.PruneConfig`.
        structure: ``"channel"`` (default) removes whole channels with torch-pruning; ``"weight"`` masks single
            weights.
        importance: ``"magnitude"`` (default), ``"taylor"``/``"robust"`` (gradients of ``loss_fn``), ``"random"``,
            or a criterion registered with :func:`robust_prune.pruning.importance.register_importance`.
        scope: ``"layerwise"`` (the same fraction in every layer) or ``"global"`` (one ranking over all layers);
            ``None``: global for weights, layerwise for channels.
        prune_first_layer, prune_classifier: allow masking the stem / classifier (weight structure).
        round_to: channel structure: round kept channel counts to the nearest multiple of this (None: 8; 1: the
            exact fraction; see :class:`~robust_prune.PruneConfig`).
        attention: channel structure: ``"heads"`` (default) removes whole attention heads, ``"head_dim"`` the same
            dimensions of every head.
        image_size: the side of the data the model is trained on: the model is traced, and recorded, at this size
            (None: the model's own input size, its timm ``pretrained_cfg['input_size']``, else 32; a model with a
            fixed input size always takes that).
        loss_fn: ``loss_fn(model) -> loss`` for gradient-based importance.

    Example:
        >>> import timm, robust_prune as rp
        >>> model, record = rp.prune(timm.create_model("resnet10t", num_classes=10), 0.5)
        >>> record.structure, record.input_size   # traced at resnet10t's own input size
        ('channel', [3, 176, 176])
    """
    options = {
        "structure": structure,
        "importance": importance,
        "scope": scope,
        "prune_first_layer": prune_first_layer,
        "prune_classifier": prune_classifier,
        "round_to": round_to,
        "attention": attention,
    }
    given = {name: value for name, value in options.items() if value is not None}
    if isinstance(sparsity, PruneConfig):
        if given:
            raise ConfigError(f"Pass either a PruneConfig or options, not both (got {', '.join(sorted(given))}).")
        config = sparsity
    else:
        config = PruneConfig(sparsity=sparsity, **given)
    record = PRUNERS[config.structure](model, config, image_size=image_size, loss_fn=loss_fn)
    if isinstance(model, NormalizedModel):
        model.record = record
    return PruneResult(model, record)
