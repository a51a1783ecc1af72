"""``method="dense"``: adversarial training of the unpruned model, the baseline every method is compared with."""

from __future__ import annotations

from ..config import RobustifyConfig
from ..training.runner import Step, Train
from . import register_method
from ._stages import run_stages

__all__ = ["stages"]


def stages(config: RobustifyConfig) -> list[Train | Step]:
    """Adversarial training of ``config.pretrain`` (stage ``pretrain``)."""
    return [Train("pretrain", config.pretrain, "adversarial training")]


register_method(
    "dense",
    run=run_stages,
    stages=stages,
    epochs=lambda config: config.pretrain.epochs,
    help="adversarial training of the unpruned model (the baseline)",
    card="Adversarial training (PGD-AT) of the unpruned model: the baseline of the paper.",
)
