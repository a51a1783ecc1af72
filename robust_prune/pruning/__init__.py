"""Pruning: structured channels (torch-pruning) and, in ``unstructured``, single weights (torch.nn.utils.prune)."""

from .api import PruneResult, prune
from .record import PruningRecord, apply_module_attrs, rebuild_model, replay_history
from .structured import channel_prune

__all__ = [
    "PruneResult",
    "PruningRecord",
    "apply_module_attrs",
    "channel_prune",
    "prune",
    "rebuild_model",
    "replay_history",
]
