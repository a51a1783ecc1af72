"""``importance="taylor"``: channels by the first-order Taylor estimate of the loss change (the run's adversarial
loss in ``robustify``); the weight structure's counterpart is ``"robust"``."""

from __future__ import annotations

import torch_pruning as tp

from .registry import Importance, register_importance

__all__ = ["Taylor"]


@register_importance
class Taylor(Importance):
    """torch-pruning's ``GroupTaylorImportance``: ``|w * dL/dw|`` summed over each channel group."""

    name = "taylor"
    structures = ("channel",)
    gradients = True

    def channel_scorer(self) -> tp.importance.Importance:
        return tp.importance.GroupTaylorImportance()
