"""What several methods share: a ticket's outcome, and the loss that gradient importances score with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from ..config import RobustifyConfig
from ..data import DataBundle
from ..distributed import model_device
from ..models import NormalizedModel
from ..pruning.importance import get_importance
from ..pruning.record import PruningRecord
from ..result import RobustifyResult, evaluate_for
from ..runner import StageRunner
from ..training import EpochStats, adversarial_loss

__all__ = ["IMPORTANCE_BATCHES", "Ticket", "importance_loss", "measured_ticket"]

IMPORTANCE_BATCHES = 4  # training batches whose loss gradients score channels (taylor) or weights (robust)


@dataclass
class Ticket:
    """A pruned, trained model's record and the training history that made it (the model changed in place)."""

    record: PruningRecord
    history: list[EpochStats] = field(default_factory=list)


def importance_loss(bundle: DataBundle, config: RobustifyConfig) -> Callable[[nn.Module], torch.Tensor] | None:
    """``loss_fn(model)`` for gradient importances: the run's own training loss (``config.pretrain``'s objective
    and attack) averaged over a few training batches; None when the importance needs no gradients."""
    if not get_importance(config.prune.importance).gradients:
        return None
    stage = config.pretrain
    train_eps, _ = config.budgets(bundle.default_eps)
    attack = stage.attack if stage.attack.eps is not None else stage.attack.with_eps(train_eps)

    def loss_fn(model: nn.Module) -> torch.Tensor:
        device = model_device(model)
        total = torch.zeros((), device=device)
        for i, (x, y) in enumerate(bundle.train):
            if i >= IMPORTANCE_BATCHES:
                break
            loss, _, _ = adversarial_loss(
                model, x.to(device), y.to(device), objective=stage.objective, attack=attack,
                trades_beta=stage.trades_beta,
            )  # fmt: skip
            total = total + loss
        return total / IMPORTANCE_BATCHES

    return loss_fn


def measured_ticket(
    make_ticket: Callable[..., Ticket],
    model: NormalizedModel,
    bundle: DataBundle,
    config: RobustifyConfig,
    *,
    runner: StageRunner,
    progress: bool,
) -> RobustifyResult:
    """Make a ticket with ``make_ticket`` (a method's ``ticket`` function), then evaluate it: the whole run of the
    methods whose result is the ticket itself (``prune``, ``lottery``)."""
    made = make_ticket(model, bundle, config, runner=runner, progress=progress)
    report = evaluate_for(model, bundle, config, progress=progress)
    return RobustifyResult(model, report, config, made.record, made.history, bundle.spec())
