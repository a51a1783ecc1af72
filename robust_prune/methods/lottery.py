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
from functools import partial

import torch
from torch import nn

from robust_prune.adapter_api import unwrap_model

from ..config import RobustifyConfig, TrainConfig
from ..data.loading import DataBundle
from ..errors import CheckpointError, ConfigError
from ..evaluation.measure import count_macs_params
from ..pruning.api import PRUNERS
from ..pruning.lottery import merge_channel_records, reinitialise, rewind, round_fraction, round_sparsities
from ..pruning.record import PruningRecord
from ..training.runner import StageContext, StageRunner, Step, Train
from . import register_method
from ._stages import Ticket, importance_loss, run_stages

__all__ = ["LotteryTicket", "find_ticket", "stages"]

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
        runner: checkpoints each round (a run-less :class:`~robust_prune.training.runner.StageRunner` when None).
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
    done = runner.carry_out(_find_stages(config), model, bundle, config, progress=progress)
    return LotteryTicket(done.record, done.history, _rewind_point(runner))


def _rewind_point(runner: StageRunner) -> dict[str, torch.Tensor]:
    kept = runner.kept(REWIND)
    if kept is None:  # taken before round 1 ends and written with every later checkpoint
        raise CheckpointError("The run directory holds no rewind point of the lottery ticket; start the run again.")
    return kept


def _keep_initialisation(context: StageContext) -> None:
    if context.config.prune.rewind_epoch == 0 and context.runner.kept(REWIND) is None:
        context.runner.keep(REWIND, _dense_state(context.model))


def _snapshot(context: StageContext, epoch: int, trained: nn.Module) -> None:
    if epoch + 1 == context.config.prune.rewind_epoch and context.runner.kept(REWIND) is None:
        context.runner.keep(REWIND, _dense_state(trained))


def _find_stages(config: RobustifyConfig) -> list[Train | Step]:
    """Stages ``round-R`` (training) and ``prune-R`` (pruning, rewinding) of each round."""
    p = config.prune
    round_cfg = _round_config(config)
    if p.rewind_epoch > round_cfg.epochs:
        raise ConfigError(
            f"rewind_epoch={p.rewind_epoch} is past the {round_cfg.epochs} training epochs of a round; "
            "choose rewind_epoch <= epochs (0 = the initialisation)."
        )
    label = "adversarial pruning" if p.adversarial else "clean pruning"
    targets = round_sparsities(p)
    found: list[Train | Step] = []
    for r in range(1, len(targets) + 1):
        first = r == 1  # the rewind point is taken before or during the first round
        found += [
            Train(f"round-{r}", round_cfg, f"{label} round {r}/{p.rounds}",
                  before=_keep_initialisation if first else None, on_epoch_end=_snapshot if first else None),
            Step(f"prune-{r}", partial(_prune_one_round, r=r, targets=targets)),
        ]  # fmt: skip
    return found


def _prune_one_round(context: StageContext, *, r: int, targets: list[float]) -> PruningRecord:
    """Prune round ``r`` to ``targets[r - 1]``, then rewind (or, after the last round, re-initialise)."""
    model, config, bundle, runner = context.model, context.config, context.bundle, context.runner
    p, history = config.prune, context.history
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
    rewind_state = _rewind_point(runner)
    if r < p.rounds or not p.reinit:
        rewind(model, rewind_state, record)
    if r == p.rounds:
        if p.reinit:
            reinitialise(model, record, seed=context.seed("reinit"))
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


def stages(config: RobustifyConfig) -> list[Train | Step]:
    """:func:`find_ticket`'s rounds, then adversarial training of the ticket (stage ``finetune``)."""
    reinit = config.prune.reinit
    label = "adversarial training of the re-initialised ticket" if reinit else "adversarial training of the ticket"
    return [*_find_stages(config), Train("finetune", config.finetune, label)]


register_method(
    "lottery",
    run=run_stages,
    stages=stages,
    epochs=lambda config: config.pretrain.epochs * config.prune.rounds + config.finetune.epochs,
    help="lottery ticket: iterative magnitude pruning over --rounds with rewinding to --rewind-epoch",
    card="Iterative magnitude pruning with rewinding to an early checkpoint under adversarial training "
    "(finding 2: inherited lottery-ticket weights beat re-initialised sparse networks).",
    ticket=True,
)
