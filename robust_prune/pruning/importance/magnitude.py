"""``importance="magnitude"``: the size of the weights (the default)."""

from __future__ import annotations

import torch
import torch_pruning as tp

from .registry import Importance, register_importance

__all__ = ["Magnitude"]


@register_importance
class Magnitude(Importance):
    """Channels by the L2 norm of their group's weights (torch-pruning's ``GroupMagnitudeImportance(p=2)``),
    weights by ``|w|``."""

    name = "magnitude"

    def channel_scorer(self) -> tp.importance.Importance:
        return tp.importance.GroupMagnitudeImportance(p=2)

    def weight_scores(self, weight: torch.Tensor, grad: torch.Tensor | None) -> torch.Tensor:
        return weight.abs()
