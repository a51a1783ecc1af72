"""``prune()``: one entry point for both structures, returning the model and its record."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..config import PruneConfig
from ..models import NormalizedModel
from .record import PruningRecord
from .structured import LossFn, channel_prune
from .unstructured import weight_prune

__all__ = ["PruneResult", "prune"]


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
    sparsity: float,
    *,
    structure: str = "channel",
    importance: str = "magnitude",
    scope: str | None = None,
    prune_first_layer: bool = False,
    prune_classifier: bool = False,
    round_to: int | None = None,
    attention: str = "heads",
    image_size: int = 32,
    loss_fn: LossFn | None = None,
) -> PruneResult:
    """Prune ``model`` in place to ``sparsity`` and return it with its pruning record.

    Args:
        model: a timm model, optionally wrapped in NormalizedModel.
        sparsity: fraction in [0, 1) of channels (``structure="channel"``) or prunable weights (``"weight"``).
        structure: ``"channel"`` removes whole channels with torch-pruning; ``"weight"`` masks single weights.
        importance: ``"magnitude"``, ``"taylor"``/``"robust"`` (gradients of ``loss_fn``) or ``"random"``.
        scope: ``"layerwise"`` (the same fraction in every layer) or ``"global"`` (one ranking over all layers);
            ``None``: global for weights, layerwise for channels.
        prune_first_layer, prune_classifier: allow masking the stem / classifier (weight structure).
        round_to: channel structure: round kept channel counts to the nearest multiple of this (None: 8; 1: the
            exact fraction; see :class:`~robust_prune.PruneConfig`).
        attention: channel structure: ``"heads"`` removes whole attention heads, ``"head_dim"`` the same
            dimensions of every head.
        image_size: input size used to trace the model.
        loss_fn: ``loss_fn(model) -> loss`` for gradient-based importance.

    Example:
        >>> import timm, robust_prune as rp
        >>> model, record = rp.prune(timm.create_model("resnet10t", num_classes=10), 0.5)
        >>> record.structure
        'channel'
    """
    config = PruneConfig(
        sparsity=sparsity,
        structure=structure,
        importance=importance,
        scope=scope,
        prune_first_layer=prune_first_layer,
        prune_classifier=prune_classifier,
        round_to=round_to,
        attention=attention,
    )
    if config.structure == "channel":
        record = channel_prune(
            model,
            config.sparsity,
            importance=config.importance,
            global_pruning=config.scope == "global",
            round_to=config.round_to,
            attention=config.attention,
            image_size=image_size,
            loss_fn=loss_fn,
        )
    else:
        record = weight_prune(model, config, image_size=image_size, loss_fn=loss_fn)
    if isinstance(model, NormalizedModel):
        model.record = record
    return PruneResult(model, record)
