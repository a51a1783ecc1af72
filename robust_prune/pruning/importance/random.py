"""``importance="random"``: the control; scores come from the global RNG (seed it)."""

from __future__ import annotations

import torch
import torch_pruning as tp

from .registry import Importance, register_importance

__all__ = ["Random"]


@register_importance
class Random(Importance):
    """Uniform random scores (torch-pruning's ``RandomImportance`` for channels)."""

    name = "random"

    def channel_scorer(self) -> tp.importance.Importance:
        return tp.importance.RandomImportance()

    def weight_scores(self, weight: torch.Tensor, grad: torch.Tensor | None) -> torch.Tensor:
        return torch.rand(weight.shape, device="cpu")  # the CPU RNG on every device (scores are ranked on the CPU)
