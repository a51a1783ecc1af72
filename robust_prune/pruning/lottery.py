"""Lottery-ticket operations: the round schedule of iterative magnitude pruning, rewinding and re-initialising.

The IMP loop itself (train, prune, rewind, round after round, checkpointed) is ``method="lottery"``
(:mod:`robust_prune.methods.lottery`); these are the operations it is made of, each usable on its own.
Rewinding gives the surviving weights of a pruned model their values at an earlier checkpoint of the dense
model; re-initialising gives them a fresh timm initialisation instead (the control of the paper's finding 2).

Example:
    >>> from robust_prune import PruneConfig
    >>> [round(s, 3) for s in round_sparsities(PruneConfig(sparsity=0.75, structure="weight", rounds=2))]
    [0.5, 0.75]
"""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from robust_prune.adapter_api import unwrap_model

from ..config import PruneConfig
from ..errors import ConfigError
from ..evaluation.measure import size_stats
from .record import PruningRecord, replay_history
from .unstructured import load_dense_weights

__all__ = [
    "merge_channel_records",
    "reinitialise",
    "rewind",
    "round_fraction",
    "round_sparsities",
    "rounds_for_rate",
]


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


def round_fraction(target: float, previous: float) -> float:
    """The fraction of what is left to remove so that cumulative sparsity goes from ``previous`` to ``target``.

    Example:
        >>> round(round_fraction(0.75, 0.5), 3)
        0.5
    """
    return 1.0 - (1.0 - target) / (1.0 - previous)


def merge_channel_records(
    previous: PruningRecord | None, new: PruningRecord, macs_after: int, params_after: int
) -> PruningRecord:
    """One channel record for several pruning rounds: ``previous`` (the rounds before, None for the first)
    followed by ``new``, with the size statistics measured after the last round."""
    first = previous or new
    merged = dataclasses.replace(
        first,
        history=[*(previous.history if previous else []), *new.history],
        module_attrs={**(previous.module_attrs if previous else {}), **new.module_attrs},
    )
    stats = size_stats(first.stats["macs_before"], first.stats["params_before"], macs_after, params_after)
    merged.stats = {**stats, "sparsity": 1.0 - stats["params_ratio"]}
    return merged


def rewind(model: nn.Module, state: dict[str, torch.Tensor], record: PruningRecord) -> None:
    """Give the surviving weights of a pruned ``model`` their values in the dense checkpoint ``state``, in place.

    Weight structure: masks stay, ``weight_orig`` takes the checkpoint's values. Channel structure: the
    record's history is replayed on a dense model holding ``state`` and the surviving channels are loaded.
    """
    inner = unwrap_model(model)
    if record.structure == "weight":
        load_dense_weights(inner, state)
        return
    dense = record.build_dense(seed=0)  # its initial values are overwritten: seeded only to leave the RNG alone
    dense.load_state_dict(state)
    replay_history(dense, record)
    inner.load_state_dict(dense.state_dict())


def reinitialise(model: nn.Module, record: PruningRecord, *, seed: int) -> None:
    """Give the surviving weights of a pruned ``model`` a fresh timm initialisation (seeded), keeping the mask."""
    fresh = record.build(seed=seed)
    if record.structure == "weight":
        load_dense_weights(model, fresh.state_dict())
    else:
        unwrap_model(model).load_state_dict(fresh.state_dict())
