"""Lottery tickets: iterative magnitude pruning (IMP) with rewinding, ``robustify(method="lottery")``.

Each of ``rounds`` rounds trains the model (adversarially, the paper's adversarial pruning; clean
with ``adversarial=False``), prunes the same fraction of what is left so that the last round reaches
``sparsity``, and rewinds the surviving weights to their values at ``rewind_epoch`` of the first
round (0 = the initialisation). The final ticket is rewound once more (``reinit=False``) or keeps
the final mask with freshly initialised weights (``reinit=True``, the control of finding 2) and is
then adversarially trained for ``finetune.epochs``. Every round trains ``pretrain.epochs`` from the
rewind point with a fresh learning-rate schedule.

``structure="weight"`` masks single weights (:mod:`.unstructured`); ``structure="channel"`` removes
channels with torch-pruning each round, the record's history accumulating round after round, and
rewinding replays that history on the dense checkpoint so surviving channels get its values.

Example:
    >>> import robust_prune as rp
    >>> result = rp.robustify("resnet10t", method="lottery", structure="weight", sparsity=0.8,
    ...                       rounds=4, rewind_epoch=1)  # doctest: +SKIP
    >>> result.record.extra["rounds"][-1]["sparsity"]  # doctest: +SKIP
    0.8
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import timm
import torch
from torch import nn

from robust_prune.adapters import unwrap_model

from ..api import RobustifyResult, _eval
from ..config import PruneConfig, RobustifyConfig, TrainConfig
from ..data import DataBundle
from ..errors import ConfigError, PruningError
from ..methods import _loss_fn, register_method
from ..models import NormalizedModel
from ..training import EpochStats, train
from .record import PruningRecord, rebuild_model, replay_history
from .structured import channel_prune, count_macs_params
from .unstructured import load_dense_weights, make_permanent, weight_prune

__all__ = ["LotteryTicket", "find_ticket", "reinitialise", "rewind", "round_sparsities", "rounds_for_rate"]

REINIT_SEED_OFFSET = 7919  # the re-initialised ticket's weights come from seed + this


def rounds_for_rate(sparsity: float, rate: float) -> int:
    """Rounds of pruning ``rate`` of what is left needed to reach ``sparsity`` (the last round may overshoot less).

    Example:
        >>> rounds_for_rate(0.8, 0.2)
        8
    """
    if not 0.0 < rate < 1.0:
        raise ConfigError(f"The per-round pruning rate must be in (0, 1), got {rate}.")
    if sparsity <= 0.0:
        return 1
    return max(1, math.ceil(math.log(1.0 - sparsity) / math.log(1.0 - rate) - 1e-9))


def round_sparsities(config: PruneConfig) -> list[float]:
    """Cumulative sparsity after each round: ``1 - keep**r`` with ``keep = config.per_round_keep()``.

    Example:
        >>> [round(s, 3) for s in round_sparsities(PruneConfig(sparsity=0.75, rounds=2))]
        [0.5, 0.75]
    """
    keep = config.per_round_keep()
    sparsities = [1.0 - keep**r for r in range(1, config.rounds + 1)]
    sparsities[-1] = config.sparsity
    return sparsities


@dataclass
class LotteryTicket:
    """The outcome of IMP: the model (changed in place, rewound or re-initialised), its record and history."""

    model: nn.Module
    record: PruningRecord
    history: list[EpochStats] = field(default_factory=list)
    rewind_state: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)


def _dense_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in unwrap_model(model).state_dict().items()}


def _fresh_timm(record: PruningRecord, seed: int) -> nn.Module:
    if not record.architecture:
        raise PruningError("Re-initialising needs a timm model: the record has no timm architecture name.")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if record.structure == "channel":
            return rebuild_model(record)
        return timm.create_model(record.architecture, pretrained=False, **record.model_args)


def rewind(model: nn.Module, state: dict[str, torch.Tensor], record: PruningRecord) -> None:
    """Give the surviving weights of a pruned ``model`` their values in the dense checkpoint ``state``, in place.

    Weight structure: masks stay, ``weight_orig`` takes the checkpoint's values. Channel structure: the
    record's history is replayed on a dense model holding ``state`` and the surviving channels are loaded.
    """
    inner = unwrap_model(model)
    if record.structure == "weight":
        load_dense_weights(inner, state)
        return
    if not record.architecture:
        raise PruningError("Rewinding channels needs a timm model: the record has no timm architecture name.")
    with torch.random.fork_rng(devices=[]):
        dense = timm.create_model(record.architecture, pretrained=False, **record.model_args)
    dense.load_state_dict(state)
    replay_history(dense, record)
    inner.load_state_dict(dense.state_dict())


def reinitialise(model: nn.Module, record: PruningRecord, *, seed: int) -> None:
    """Give the surviving weights of a pruned ``model`` a fresh timm initialisation (seeded), keeping the mask."""
    fresh = _fresh_timm(record, seed)
    if record.structure == "weight":
        load_dense_weights(model, fresh.state_dict())
    else:
        unwrap_model(model).load_state_dict(fresh.state_dict())


def _round_config(config: RobustifyConfig) -> TrainConfig:
    train_cfg = config.pretrain
    return train_cfg if config.prune.adversarial else dataclasses.replace(train_cfg, objective="clean")


def _prune_round(
    model: nn.Module, p: PruneConfig, target: float, previous: float, bundle: DataBundle, loss_fn: Any
) -> PruningRecord:
    if p.structure == "weight":
        return weight_prune(
            model, dataclasses.replace(p, sparsity=target, rounds=1), image_size=bundle.image_size, loss_fn=loss_fn
        )
    if p.importance == "robust":
        raise ConfigError("importance='robust' is a weight-level score; for channels use 'taylor' or 'magnitude'.")
    fraction = 1.0 - (1.0 - target) / (1.0 - previous)  # of the channels still there
    return channel_prune(
        model,
        fraction,
        importance=p.importance,
        global_pruning=p.scope == "global",
        round_to=p.round_to,
        image_size=bundle.image_size,
        loss_fn=loss_fn,
    )


def _merge_channel_records(records: list[PruningRecord], macs_after: int, params_after: int) -> PruningRecord:
    first = records[0]
    merged = dataclasses.replace(
        first,
        history=[step for r in records for step in r.history],
        module_attrs={k: v for r in records for k, v in r.module_attrs.items()},
    )
    macs0, params0 = first.stats["macs_before"], first.stats["params_before"]
    merged.stats = {
        "macs_before": macs0,
        "macs_after": macs_after,
        "macs_ratio": macs_after / max(macs0, 1),
        "params_before": params0,
        "params_after": params_after,
        "params_ratio": params_after / max(params0, 1),
        "sparsity": 1.0 - params_after / max(params0, 1),
    }
    return merged


def find_ticket(
    model: nn.Module, bundle: DataBundle, config: RobustifyConfig, *, progress: bool = False, loss_fn: Any = None
) -> LotteryTicket:
    """Run IMP on ``model`` (in place) and leave it as the rewound (or re-initialised) ticket, ready to train.

    Args:
        model: a timm model wrapped in NormalizedModel (as ``robustify`` prepares it).
        bundle: the data; ``config.pretrain`` trains each round.
        config: ``config.prune`` holds sparsity, structure, rounds, rewind_epoch, reinit and adversarial.
        progress: show progress bars.
        loss_fn: ``loss_fn(model) -> loss`` for gradient importances (``"robust"``, ``"taylor"``).

    Example:
        >>> ticket = find_ticket(model, bundle, RobustifyConfig(method="lottery"))  # doctest: +SKIP
        >>> ticket.record.extra["rewind_epoch"]  # doctest: +SKIP
        0
    """
    p = config.prune
    round_cfg = _round_config(config)
    if p.rewind_epoch > round_cfg.epochs:
        raise ConfigError(
            f"rewind_epoch={p.rewind_epoch} is past the {round_cfg.epochs} training epochs of a round; "
            "choose rewind_epoch <= epochs (0 = the initialisation)."
        )
    saved: dict[str, dict[str, torch.Tensor]] = {}
    if p.rewind_epoch == 0:
        saved["state"] = _dense_state(model)

    def snapshot(epoch: int, trained: nn.Module, *_: Any) -> None:
        if epoch + 1 == p.rewind_epoch and "state" not in saved:
            saved["state"] = _dense_state(trained)

    stage = "adversarial pruning" if p.adversarial else "clean pruning"
    history: list[EpochStats] = []
    records: list[PruningRecord] = []
    rounds: list[dict[str, Any]] = []
    previous = 0.0
    for r, target in enumerate(round_sparsities(p), start=1):
        history += train(
            model,
            bundle.train,
            config=round_cfg,
            eps=bundle.default_eps,
            seed=config.seed + 1000 * r,
            stage=f"{stage} round {r}/{p.rounds}",
            progress=progress,
            on_epoch_end=snapshot if r == 1 else None,
        )
        record = _prune_round(model, p, target, previous, bundle, loss_fn)
        records.append(record)
        achieved = record.stats["sparsity"] if p.structure == "weight" else 1.0 - record.stats["params_ratio"]
        rounds.append(
            {
                "round": r,
                "target": target,
                "sparsity": achieved,
                "train_clean_accuracy": history[-1].clean_accuracy if history else None,
                "train_adversarial_accuracy": history[-1].adversarial_accuracy if history else None,
            }
        )
        previous = target
        if p.structure == "channel":
            inner = unwrap_model(model)
            macs, params = count_macs_params(inner, torch.rand(1, *record.input_size))
            record = _merge_channel_records(records, macs, params)
            rounds[-1]["sparsity"] = record.stats["sparsity"]
        if r < p.rounds or not p.reinit:
            rewind(model, saved["state"], record)
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
    return LotteryTicket(model, record, history, saved["state"])


@register_method("lottery")
def _lottery(model: NormalizedModel, bundle: DataBundle, config: RobustifyConfig, progress: bool) -> RobustifyResult:
    p = config.prune
    loss_fn = _loss_fn(bundle, config) if p.importance in ("taylor", "robust") else None
    ticket = find_ticket(model, bundle, config, progress=progress, loss_fn=loss_fn)
    stage = "adversarial training of the re-initialised ticket" if p.reinit else "adversarial training of the ticket"
    history = ticket.history + train(
        model,
        bundle.train,
        config=config.finetune,
        eps=bundle.default_eps,
        seed=config.seed + 1,
        stage=stage,
        progress=progress,
    )
    if p.structure == "weight":
        ticket.record.masks = make_permanent(model)
    report = _eval(model, bundle, config, progress)
    return RobustifyResult(model.eval(), report, config, ticket.record, history, bundle.spec())
