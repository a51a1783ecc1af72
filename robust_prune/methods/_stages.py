"""What the methods share: the run that carries out a method's stages and measures the result, sealing a ticket, and
the loss that gradient importances score with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from ..config import RobustifyConfig
from ..data.loading import DataBundle
from ..distributed import model_device
from ..evaluation.report import RobustnessReport
from ..models import NormalizedModel
from ..pruning.importance import get_importance
from ..pruning.masks import make_permanent
from ..pruning.record import PruningRecord
from ..result import RobustifyResult, evaluate_for
from ..training.adversarial import EpochStats, adversarial_loss
from ..training.runner import StageRunner
from . import get_method

__all__ = ["IMPORTANCE_BATCHES", "Ticket", "importance_loss", "run_stages", "seal_ticket"]

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


def seal_ticket(model: NormalizedModel, record: PruningRecord, config: RobustifyConfig) -> None:
    """Finish a ticket that a method's stages made: weight masks are folded into the weights (the record keeps
    them) and the model carries its record."""
    if config.prune.structure == "weight":
        record.masks = make_permanent(model)
    model.record = record


def run_stages(
    model: NormalizedModel, bundle: DataBundle, config: RobustifyConfig, *, runner: StageRunner, progress: bool
) -> RobustifyResult:
    """Every method's run: ``runner`` carries out the stages ``config.method`` declares, the model is measured.

    A ticket method's ticket is sealed first (:func:`seal_ticket`); a record that carries its ticket's report
    (``iwi``'s) hands it to the result.
    """
    method = get_method(config.method)
    done = runner.carry_out(method.stages(config), model, bundle, config, progress=progress)
    if method.ticket:
        seal_ticket(model, done.record, config)
    report = evaluate_for(model, bundle, config, progress=progress)
    ticket = done.record.extra.get("ticket_report")
    ticket_report = RobustnessReport.from_dict(ticket) if ticket is not None else None
    return RobustifyResult(model, report, config, done.record, done.history, bundle.spec(), ticket_report=ticket_report)
