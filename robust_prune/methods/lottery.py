"""``method="lottery"``: lottery tickets by iterative magnitude pruning (IMP) with rewinding (finding 2).

Each of ``rounds`` rounds trains the model (adversarially, the paper's adversarial pruning; clean with
``adversarial=False``), prunes the same fraction of what is left so that the last round reaches ``sparsity``,
and rewinds the surviving weights to their values at ``rewind_epoch`` of the first round (0 = the
initialisation). The final ticket is rewound once more (``reinit=False``) or keeps the final mask with freshly
initialised weights (``reinit=True``, the control) and is then adversarially trained for ``finetune.epochs``.
Every round trains ``pretrain.epochs`` from the rewind point with a fresh learning-rate schedule.

``structure="weight"`` masks single weights; ``structure="channel"`` removes channels each round, the record's
history accumulating round after round. Every round's training and pruning is a checkpointed stage
(``round-R``, ``prune-R``) and the rewind point is kept in the checkpoints, so a killed run resumes exactly.

Example:
    A tiny budget: 2 rounds of one PGD-1 epoch each on the digits.

    >>> import robust_prune as rp
    >>> result = rp.robustify("test_resnet", method="lottery", structure="weight", sparsity=0.75, rounds=2,
    ...                       rewind_epoch=0, epochs=1, finetune_epochs=0, train_steps=1, eval_n=8, eval_steps=1,
    ...                       progress=False)
    >>> [round["sparsity"] for round in result.record.extra["rounds"]]
    [0.5, 0.75]
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from robust_prune.adapters import unwrap_model

from ..config import RobustifyConfig, TrainConfig
from ..data import DataBundle
from ..errors import ConfigError
from ..measure import count_macs_params
from ..models import NormalizedModel
from ..pruning.api import PRUNERS
from ..pruning.lottery import (
    REINIT_SEED_OFFSET,
    merge_channel_records,
    reinitialise,
    rewind,
    round_fraction,
    round_sparsities,
)
from ..pruning.masks import make_permanent
from ..pruning.record import PruningRecord
from ..result import RobustifyResult
from ..runner import StageRunner
from . import register_method
from ._stages import Ticket, importance_loss, measured_ticket

__all__ = ["LotteryTicket", "find_ticket", "run", "ticket"]

REWIND = "rewind"  # the name the rewind point is kept under in the checkpoints


@dataclass
class LotteryTicket(Ticket):
    """A ticket found by :func:`find_ticket`, with the dense weights it was rewound to."""

    rewind_state: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)


def _round_config(config: RobustifyConfig) -> TrainConfig:
    train_cfg = config.pretrain
    return train_cfg if config.prune.adversarial else dataclasses.replace(train_cfg, objective="clean")


def _prune_round(
    model: nn.Module, config: RobustifyConfig, target: float, previous: float, bundle: DataBundle
) -> PruningRecord:
    p = config.prune
    # weights: masks accumulate, so the round's target is a share of all weights; channels: the round removes a
    # share of what is left
    fraction = target if p.structure == "weight" else round_fraction(target, previous)
    round_config = dataclasses.replace(p, sparsity=fraction, rounds=1)
    loss_fn = importance_loss(bundle, config)
    return PRUNERS[p.structure](model, round_config, image_size=bundle.image_size, loss_fn=loss_fn)


def _dense_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in unwrap_model(model).state_dict().items()}


def find_ticket(
    model: nn.Module,
    bundle: DataBundle,
    config: RobustifyConfig,
    *,
    runner: StageRunner | None = None,
    progress: bool = False,
) -> LotteryTicket:
    """Run IMP on ``model`` (in place) and leave it as the rewound (or re-initialised) ticket, ready to train.

    Args:
        model: a timm model wrapped in NormalizedModel (as ``robustify`` prepares it).
        bundle: the data; ``config.pretrain`` trains each round.
        config: ``config.prune`` holds sparsity, structure, rounds, rewind_epoch, reinit and adversarial.
        runner: checkpoints each round (a run-less :class:`~robust_prune.runner.StageRunner` when None).
        progress: show progress bars.

    Example:
        >>> from robust_prune import AttackConfig, PruneConfig, RobustifyConfig, TrainConfig
        >>> from robust_prune.api import prepare
        >>> model, bundle = prepare("test_resnet", "digits")
        >>> one_epoch = TrainConfig(epochs=1, attack=AttackConfig(eps=0.1, steps=1))
        >>> config = RobustifyConfig(method="lottery", pretrain=one_epoch,
        ...                          prune=PruneConfig(structure="weight", sparsity=0.75, rounds=2))
        >>> ticket = find_ticket(model, bundle, config)
        >>> ticket.record.extra["rewind_epoch"]
        0
    """
    runner = runner or StageRunner()
    p = config.prune
    round_cfg = _round_config(config)
    if p.rewind_epoch > round_cfg.epochs:
        raise ConfigError(
            f"rewind_epoch={p.rewind_epoch} is past the {round_cfg.epochs} training epochs of a round; "
            "choose rewind_epoch <= epochs (0 = the initialisation)."
        )
    train_eps, _ = config.budgets(bundle.default_eps)
    runner.restore(model)
    if p.rewind_epoch == 0 and runner.kept(REWIND) is None:
        runner.keep(REWIND, _dense_state(model))

    def snapshot(epoch: int, trained: nn.Module, *_: Any) -> None:
        if epoch + 1 == p.rewind_epoch and runner.kept(REWIND) is None:
            runner.keep(REWIND, _dense_state(trained))

    label = "adversarial pruning" if p.adversarial else "clean pruning"
    history = []
    targets = round_sparsities(p)
    for r in range(1, len(targets) + 1):
        history += runner.train(model, bundle.train, stage=f"round-{r}", label=f"{label} round {r}/{p.rounds}",
                                config=round_cfg, eps=train_eps, seed=config.seed + 1000 * r, progress=progress,
                                on_epoch_end=snapshot if r == 1 else None)  # fmt: skip
        if runner.needs(f"prune-{r}"):
            record = _prune_one_round(model, config, bundle, runner, r, targets, history)
            runner.finish_stage(f"prune-{r}", model, record=record)
    record, rewind_state = runner.record, runner.kept(REWIND)
    assert record is not None and rewind_state is not None, "every round leaves a record and the rewind point"
    return LotteryTicket(record, history, rewind_state)


def _prune_one_round(
    model: nn.Module,
    config: RobustifyConfig,
    bundle: DataBundle,
    runner: StageRunner,
    r: int,
    targets: list[float],
    history: list[Any],
) -> PruningRecord:
    """Prune round ``r`` to ``targets[r - 1]``, then rewind (or, after the last round, re-initialise)."""
    p = config.prune
    previous = targets[r - 2] if r > 1 else 0.0
    record = _prune_round(model, config, targets[r - 1], previous, bundle)
    rounds = list(runner.extra.get("rounds", [])) if r > 1 else []
    achieved = record.stats["sparsity"] if p.structure == "weight" else None
    if p.structure == "channel":
        inner = unwrap_model(model)
        example = torch.rand(1, *record.input_size, device=next(inner.parameters()).device)
        macs, params = count_macs_params(inner, example)
        record = merge_channel_records(runner.record if r > 1 else None, record, macs, params)
        achieved = record.stats["sparsity"]
    last = history[-1] if history else None
    rounds.append({
        "round": r,
        "target": targets[r - 1],
        "sparsity": achieved,
        "train_clean_accuracy": last.clean_accuracy if last else None,
        "train_adversarial_accuracy": last.adversarial_accuracy if last else None,
    })  # fmt: skip
    runner.extra["rounds"] = rounds  # checkpointed with the round's stage
    rewind_state = runner.kept(REWIND)
    assert rewind_state is not None, "the rewind point is kept before the first round ends"
    if r < p.rounds or not p.reinit:
        rewind(model, rewind_state, record)
    if r == p.rounds:
        if p.reinit:
            reinitialise(model, record, seed=config.seed + REINIT_SEED_OFFSET)
        record.sparsity = float(p.sparsity)
        record.extra = {
            "method": "lottery",
            "rounds": rounds,
            "rewind_epoch": p.rewind_epoch,
            "reinit": p.reinit,
            "adversarial": p.adversarial,
            "importance": p.importance,
            "scope": p.scope,
            "per_round_keep": p.per_round_keep(),
        }
    return record


def ticket(
    model: NormalizedModel, bundle: DataBundle, config: RobustifyConfig, *, runner: StageRunner, progress: bool
) -> Ticket:
    """:func:`find_ticket`, then adversarial training of the ticket (stage ``finetune``); weight masks are
    folded into the weights at the end (the record keeps them)."""
    found = find_ticket(model, bundle, config, runner=runner, progress=progress)
    train_eps, _ = config.budgets(bundle.default_eps)
    p = config.prune
    label = "adversarial training of the re-initialised ticket" if p.reinit else "adversarial training of the ticket"
    history = found.history + runner.train(model, bundle.train, stage="finetune", label=label,
                                           config=config.finetune, eps=train_eps, seed=config.seed + 1,
                                           progress=progress)  # fmt: skip
    if p.structure == "weight":
        found.record.masks = make_permanent(model)
    model.record = found.record
    return Ticket(found.record, history)


@register_method(
    "lottery",
    epochs=lambda config: config.pretrain.epochs * config.prune.rounds + config.finetune.epochs,
    help="lottery ticket: iterative magnitude pruning over --rounds with rewinding to --rewind-epoch",
    ticket=ticket,
)
def run(
    model: NormalizedModel, bundle: DataBundle, config: RobustifyConfig, *, runner: StageRunner, progress: bool
) -> RobustifyResult:
    """:func:`ticket`, then evaluate it."""
    return measured_ticket(ticket, model, bundle, config, runner=runner, progress=progress)
