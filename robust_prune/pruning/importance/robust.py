"""``importance="robust"``: weights by ``|w * dL_adv/dw|`` (HYDRA-like: the run's adversarial loss in
``robustify``); the channel structure's counterpart is ``"taylor"``."""

from __future__ import annotations

import torch

from .registry import Importance, register_importance

__all__ = ["Robust"]


@register_importance
class Robust(Importance):
    """``|w * grad|`` per weight; zero where the loss does not reach the layer."""

    name = "robust"
    structures = ("weight",)
    gradients = True

    def weight_scores(self, weight: torch.Tensor, grad: torch.Tensor | None) -> torch.Tensor:
        return (weight * grad).abs() if grad is not None else torch.zeros_like(weight)
