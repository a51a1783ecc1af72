"""What the channel and the weight pruner share: one signature (:class:`Pruner`), the check that a config is for
the pruner's structure, and the gradients a gradient importance scores with."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
from torch import nn

from ..config import PruneConfig
from ..distributed import average_gradients
from ..errors import ConfigError, PruningError
from .importance import Importance
from .record import PruningRecord

__all__ = ["LossFn", "Pruner", "check_structure", "compute_gradients"]

LossFn = Callable[[nn.Module], torch.Tensor]


class Pruner(Protocol):
    """``pruner(model, config, *, image_size=None, loss_fn=None) -> PruningRecord``: prune ``model`` in place as
    ``config`` says (:func:`~robust_prune.pruning.structured.channel_prune`,
    :func:`~robust_prune.pruning.unstructured.weight_prune`). ``image_size`` is the side of the data the model
    is trained on (None: the model's own input size); ``loss_fn(model) -> loss`` feeds gradient importances."""

    def __call__(
        self, model: nn.Module, config: PruneConfig, *, image_size: int | None = None, loss_fn: LossFn | None = None
    ) -> PruningRecord: ...


def check_structure(config: PruneConfig, structure: str) -> None:
    """Refuse a config for the other structure (its scope and importance were chosen for that one)."""
    if not isinstance(config, PruneConfig):
        raise ConfigError(f"The {structure} pruner takes a PruneConfig, got {type(config).__name__}.")
    if config.structure != structure:
        raise ConfigError(
            f"This PruneConfig has structure={config.structure!r}; the {structure} pruner needs "
            f"structure={structure!r} (robust_prune.prune picks the pruner from the config)."
        )


def compute_gradients(model: nn.Module, criterion: Importance, loss_fn: LossFn | None) -> None:
    """Fill ``model``'s gradients with those of ``loss_fn(model)``, averaged over the processes, for ``criterion``
    to score with."""
    if loss_fn is None:
        raise PruningError(
            f"importance={criterion.name!r} scores with gradients: pass loss_fn(model) -> loss (robustify passes the "
            "run's own adversarial training loss)."
        )
    model.zero_grad(set_to_none=True)
    loss_fn(model).backward()
    average_gradients(model)  # N processes score with the gradient one process would have
