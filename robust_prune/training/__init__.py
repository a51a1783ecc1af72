"""Training: adversarial training on Accelerate, and the stage runner that checkpoints a run and resumes it."""

from .adversarial import (
    AttackGradientScaled,
    EpochStats,
    adversarial_loss,
    check_precision,
    make_accelerator,
    train,
    train_one_batch,
)

__all__ = [
    "EpochStats",
    "train",
    "train_one_batch",
    "adversarial_loss",
    "make_accelerator",
    "check_precision",
    "AttackGradientScaled",
]
