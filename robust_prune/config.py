"""Configuration dataclasses. Each validates itself on creation and round-trips through JSON.

Example:
    >>> from robust_prune import AttackConfig, TrainConfig
    >>> cfg = TrainConfig(epochs=3, attack=AttackConfig(eps=0.1, steps=5))
    >>> TrainConfig.from_json(cfg.to_json()) == cfg
    True
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, TypeVar

from .errors import ConfigError

__all__ = [
    "AttackConfig",
    "TrainConfig",
    "PruneConfig",
    "RobustifyConfig",
    "ATTACK_NAMES",
    "OBJECTIVES",
    "METHODS",
    "STRUCTURES",
    "IMPORTANCES",
]

ATTACK_NAMES = ("fgsm", "pgd", "apgd-ce", "apgd-dlr", "cw", "square", "autoattack", "autoattack-fast")
NORMS = ("Linf", "L2")
OBJECTIVES = ("pgd-at", "trades", "fgsm-rs", "clean")
METHODS = ("dense", "prune", "lottery", "iwi")
STRUCTURES = ("channel", "weight")
IMPORTANCES = ("magnitude", "taylor", "random", "robust")
SCOPES = ("global", "layerwise")
GROW_INITS = ("zero-out", "zero", "random")

T = TypeVar("T", bound="_JsonConfig")


def _choice(value: str, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise ConfigError(f"Unknown {what} {value!r}. Choose one of: {', '.join(allowed)}.")


def _finite(value: float, what: str) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise ConfigError(f"{what} must be a finite number, got {value!r}.")


class _JsonConfig:
    """JSON round trip for the config dataclasses (nested configs are rebuilt by field type)."""

    _nested: dict[str, type] = {}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, **kwargs)

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        if not isinstance(data, dict):
            raise ConfigError(f"{cls.__name__} expects a JSON object, got {type(data).__name__}.")
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = set(data) - names
        if unknown:
            raise ConfigError(f"Unknown {cls.__name__} option(s): {', '.join(sorted(unknown))}.")
        kwargs = dict(data)
        for name, sub in cls._nested.items():
            if isinstance(kwargs.get(name), dict):
                kwargs[name] = sub.from_dict(kwargs[name])  # type: ignore[attr-defined]
        return cls(**kwargs)

    @classmethod
    def from_json(cls: type[T], text: str) -> T:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"Not valid JSON for {cls.__name__}: {exc}.") from exc
        return cls.from_dict(data)


@dataclass(frozen=True)
class AttackConfig(_JsonConfig):
    """One adversary, in pixel units (inputs in [0, 1]).

    Args:
        name: one of ``ATTACK_NAMES``.
        norm: ``"Linf"`` or ``"L2"``.
        eps: perturbation budget in pixel units; ``None`` takes the dataset's default.
        steps: iterations (PGD, APGD) or queries (Square).
        step_size: PGD step; ``None`` means ``2.5 * eps / steps``.
        restarts: random restarts (PGD, APGD).
        random_start: start PGD from a uniform point in the eps-ball.
        seed: seeds the attack's own random numbers; the global RNG is left alone.

    Example:
        >>> AttackConfig(name="pgd", eps=8 / 255, steps=20).resolved_step_size()
        0.0039...
    """

    name: str = "pgd"
    norm: str = "Linf"
    eps: float | None = None
    steps: int = 10
    step_size: float | None = None
    restarts: int = 1
    random_start: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        _choice(self.name, ATTACK_NAMES, "attack")
        _choice(self.norm, NORMS, "norm")
        if self.eps is not None:
            _finite(self.eps, "eps")
            if self.eps < 0:
                raise ConfigError(f"eps must be >= 0 (pixel units in [0, 1]), got {self.eps}.")
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ConfigError(f"steps must be a positive integer, got {self.steps!r}.")
        if self.step_size is not None:
            _finite(self.step_size, "step_size")
            if self.step_size <= 0:
                raise ConfigError(f"step_size must be > 0, got {self.step_size}.")
        if not isinstance(self.restarts, int) or self.restarts < 1:
            raise ConfigError(f"restarts must be a positive integer, got {self.restarts!r}.")

    def with_eps(self, eps: float) -> AttackConfig:
        """A copy with ``eps`` filled in (used to apply a dataset's default budget)."""
        return dataclasses.replace(self, eps=eps)

    def resolved_step_size(self) -> float:
        if self.step_size is not None:
            return self.step_size
        if self.eps is None:
            raise ConfigError("eps is not set; pass eps= or let the dataset supply its default.")
        return 2.5 * self.eps / self.steps


@dataclass(frozen=True)
class TrainConfig(_JsonConfig):
    """One phase of (adversarial) training.

    Args:
        epochs: passes over the training data.
        objective: ``"pgd-at"`` (Madry), ``"trades"``, ``"fgsm-rs"`` (fast AT) or ``"clean"``.
        attack: the training adversary (eps ``None`` takes the dataset's default).
        lr, momentum, weight_decay: SGD settings; the learning rate follows a cosine schedule.
        trades_beta: the TRADES trade-off.
        mixed_precision: ``"no"`` or ``"bf16"``.
        checkpoint_every: checkpoint each this many epochs when a run directory is given.

    Example:
        >>> TrainConfig(epochs=2, objective="trades").objective
        'trades'
    """

    epochs: int = 5
    objective: str = "pgd-at"
    attack: AttackConfig = field(default_factory=lambda: AttackConfig(steps=5))
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    trades_beta: float = 6.0
    mixed_precision: str = "no"
    channels_last: bool = False
    checkpoint_every: int = 1

    _nested = {"attack": AttackConfig}

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or self.epochs < 0:
            raise ConfigError(f"epochs must be an integer >= 0, got {self.epochs!r}.")
        _choice(self.objective, OBJECTIVES, "training objective")
        _choice(self.schedule, ("cosine", "constant"), "learning-rate schedule")
        _choice(self.mixed_precision, ("no", "bf16"), "mixed precision")
        for name in ("lr", "momentum", "weight_decay", "trades_beta"):
            value = getattr(self, name)
            _finite(value, name)
            if value < 0:
                raise ConfigError(f"{name} must be >= 0, got {value}.")
        if self.lr == 0 and self.epochs > 0:
            raise ConfigError("lr is 0: training would not change the model. Use epochs=0 to skip training.")
        if not isinstance(self.checkpoint_every, int) or self.checkpoint_every < 1:
            raise ConfigError(f"checkpoint_every must be a positive integer, got {self.checkpoint_every!r}.")


def _check_sparsity(sparsity: float) -> None:
    _finite(sparsity, "sparsity")
    if not 0.0 <= sparsity < 1.0:
        raise ConfigError(
            f"sparsity must be in [0, 1): the fraction of weights or channels to remove, got {sparsity}. "
            "1.0 would remove everything."
        )


@dataclass(frozen=True)
class PruneConfig(_JsonConfig):
    """What to remove and how to choose it.

    Args:
        sparsity: fraction of channels (``structure="channel"``) or prunable weights (``"weight"``) removed.
        structure: ``"channel"`` (torch-pruning, the model gets smaller) or ``"weight"`` (masks).
        importance: ``"magnitude"``, ``"taylor"`` (adversarial loss, channel), ``"random"`` (control) or
            ``"robust"`` (|w * grad of the adversarial loss|, weight).
        scope: ``"global"`` ranking across layers or ``"layerwise"`` uniform sparsity; ``None`` picks the
            structure's default (``"global"`` magnitude for weights, ``"layerwise"`` for channels).
        prune_first_layer, prune_classifier: whether the stem and the classifier may lose weights.
        rounds: iterative pruning rounds (lottery); each removes the same fraction of what is left.
        rewind_epoch: lottery rewinding point (0 = the initialisation).
        reinit: re-initialise surviving weights instead of rewinding (the lottery control).
        adversarial: adversarial (True) or clean (False) training during pruning.

    Example:
        >>> PruneConfig(sparsity=0.8, structure="weight", rounds=4).per_round_keep()
        0.668...
    """

    sparsity: float = 0.5
    structure: str = "channel"
    importance: str = "magnitude"
    scope: str | None = None
    prune_first_layer: bool = False
    prune_classifier: bool = False
    round_to: int | None = None
    rounds: int = 1
    rewind_epoch: int = 0
    reinit: bool = False
    adversarial: bool = True

    def __post_init__(self) -> None:
        _check_sparsity(self.sparsity)
        _choice(self.structure, STRUCTURES, "structure")
        _choice(self.importance, IMPORTANCES, "importance")
        if self.scope is None:
            object.__setattr__(self, "scope", "global" if self.structure == "weight" else "layerwise")
        _choice(self.scope, SCOPES, "scope")
        if not isinstance(self.rounds, int) or self.rounds < 1:
            raise ConfigError(f"rounds must be a positive integer, got {self.rounds!r}.")
        if not isinstance(self.rewind_epoch, int) or self.rewind_epoch < 0:
            raise ConfigError(f"rewind_epoch must be an integer >= 0, got {self.rewind_epoch!r}.")
        if self.round_to is not None and (not isinstance(self.round_to, int) or self.round_to < 1):
            raise ConfigError(f"round_to must be a positive integer or None, got {self.round_to!r}.")

    def per_round_keep(self) -> float:
        """Fraction kept in each round so that ``rounds`` rounds reach ``sparsity``."""
        return (1.0 - self.sparsity) ** (1.0 / self.rounds)


@dataclass(frozen=True)
class RobustifyConfig(_JsonConfig):
    """Everything one ``robustify()`` run did, stored next to its results.

    Example:
        >>> cfg = RobustifyConfig(method="dense")
        >>> RobustifyConfig.from_json(cfg.to_json()).method
        'dense'
    """

    method: str = "prune"
    data: str = "digits"
    seed: int = 0
    pretrain: TrainConfig = field(default_factory=TrainConfig)
    finetune: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=3))
    grow_train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=3))
    prune: PruneConfig = field(default_factory=PruneConfig)
    ticket_method: str = "prune"
    grow_init: str = "zero-out"
    eval_attacks: tuple[str, ...] = ("pgd",)
    eval_eps: float | None = None
    eval_steps: int = 20
    eval_n: int | None = None

    _nested = {"pretrain": TrainConfig, "finetune": TrainConfig, "grow_train": TrainConfig, "prune": PruneConfig}

    def __post_init__(self) -> None:
        _choice(self.method, METHODS, "method")
        _choice(self.ticket_method, ("prune", "lottery"), "ticket method")
        _choice(self.grow_init, GROW_INITS, "grow init")
        if isinstance(self.eval_attacks, list):
            object.__setattr__(self, "eval_attacks", tuple(self.eval_attacks))
        for name in self.eval_attacks:
            _choice(name, ATTACK_NAMES, "attack")
        if self.eval_eps is not None:
            _finite(self.eval_eps, "eval_eps")
            if self.eval_eps < 0:
                raise ConfigError(f"eval_eps must be >= 0, got {self.eval_eps}.")
        if not isinstance(self.eval_steps, int) or self.eval_steps < 1:
            raise ConfigError(f"eval_steps must be a positive integer, got {self.eval_steps!r}.")
        if self.eval_n is not None and (not isinstance(self.eval_n, int) or self.eval_n < 1):
            raise ConfigError(f"eval_n must be a positive integer or None, got {self.eval_n!r}.")
        if not isinstance(self.seed, int):
            raise ConfigError(f"seed must be an integer, got {self.seed!r}.")

    def total_epochs(self) -> int:
        """Training epochs the method spends in all (for equal-budget comparisons)."""
        p = self.prune
        if self.method == "dense":
            return self.pretrain.epochs
        if self.method == "prune":
            return self.pretrain.epochs + self.finetune.epochs
        if self.method == "lottery":
            return self.pretrain.epochs * p.rounds + self.finetune.epochs
        ticket = self.pretrain.epochs * (p.rounds if self.ticket_method == "lottery" else 1) + self.finetune.epochs
        return ticket + self.grow_train.epochs
