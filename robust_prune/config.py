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
    "DEFAULT_LR",
    "FINETUNE_LR_FACTOR",
    "GROW_INITS",
    "GROW_OUT_SCALE",
    "method_prune_defaults",
    "OBJECTIVES",
    "STRUCTURES",
    "ATTENTION_MODES",
]

ATTACK_NAMES = ("fgsm", "pgd", "apgd-ce", "apgd-dlr", "cw", "square", "autoattack", "autoattack-fast")
NORMS = ("Linf", "L2")
OBJECTIVES = ("pgd-at", "trades", "fgsm-rs", "clean")
STRUCTURES = ("channel", "weight")
# Importance criteria (magnitude, taylor, random, robust, and any a user registers) live in
# robust_prune.pruning.importance: each declares the structures it scores and whether it needs gradients.
SCOPES = ("global", "layerwise")
# How channel pruning treats multi-head attention: remove whole heads (the kept heads keep their width, so the
# attention kernels keep efficient shapes) or the same dimensions from every head (the head count stays).
ATTENTION_MODES = ("heads", "head_dim")
# Kept channel counts are rounded to a multiple of this by default: most CPU and GPU kernels run a width of
# 8k much faster than 8k - 3 (1 prunes the exact fraction, as before issue 15).
DEFAULT_ROUND_TO = 8
SCHEDULES = ("cosine", "constant")
MIXED_PRECISIONS = ("no", "bf16", "fp16")  # fp16 trains with a gradient scaler and needs CUDA
# Seconds that tracing and pruning one model (or growing a ticket back) may take before it counts as failed: a
# dependency graph that does not trace in this time is refused (pruning.guard). Raise it for very large models.
PRUNE_TIME_LIMIT_S = 60.0
# Issue 17: inverse weights inheritance. How grow() fills new entries (robust_prune.inheritance.growth_fills) and
# small-out's std as a fraction of each tensor's inherited-weight std. method="iwi"'s defaults live in its registration
# (robust_prune.methods.iwi.IWI_DEFAULT).
GROW_INITS = ("zero-out", "zero", "random", "small-out", "net2net")
GROW_OUT_SCALE = 0.1


def method_prune_defaults(method: str | None) -> dict[str, Any]:
    """The :class:`PruneConfig` fields whose default depends on the method, as its registration declares them
    (``iwi``'s ticket structure and sparsity; {} for an unknown name). ``RobustifyConfig`` and
    ``options.build_config`` both apply them."""
    from .methods import get_method, list_methods

    return dict(get_method(method).prune_defaults) if method in list_methods() else {}


# The SGD learning rate (momentum 0.9, cosine schedule) each objective trains at by default. TRADES' KL term
# makes its loss larger and steeper: at 0.05 it diverged on the digits with resnet10t (loss 4.56 -> 6.14 in
# two epochs, clean accuracy 0.18), at 0.02 it trains.
DEFAULT_LR = {"pgd-at": 0.05, "trades": 0.02, "fgsm-rs": 0.05, "clean": 0.05}
# Fine-tuning a trained (pruned) model starts at this fraction of the training learning rate.
FINETUNE_LR_FACTOR = 0.5
# The training adversary's constructor arguments: PGD-5 (AttackConfig's own 10 steps are an evaluation budget).
TRAIN_ATTACK = {"steps": 5}
# Each training stage of a run, as TrainConfig constructor arguments (the rest are TrainConfig's defaults).
STAGES = {"pretrain": {"epochs": 6}, "finetune": {"epochs": 3}, "grow_train": {"epochs": 3}}

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
        lr: the initial SGD learning rate; ``None`` is the objective's default (:data:`DEFAULT_LR`).
        momentum, weight_decay: SGD settings; the learning rate follows ``schedule`` (cosine or constant).
        trades_beta: the TRADES trade-off.
        mixed_precision: ``"no"``, ``"bf16"`` (autocast) or ``"fp16"`` (autocast and a gradient scaler; CUDA only).
        checkpoint_every: checkpoint each this many epochs when a run directory is given.
        sync_bn: synchronise BatchNorm statistics over the processes of a multi-process run; None: when each
            process sees fewer than :data:`robust_prune.training.sync_bn.SYNC_BN_BELOW` images per step.

    Example:
        >>> TrainConfig(epochs=2, objective="trades").learning_rate
        0.02
    """

    epochs: int = 6
    objective: str = "pgd-at"
    attack: AttackConfig = field(default_factory=lambda: AttackConfig(**TRAIN_ATTACK))
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    trades_beta: float = 6.0
    mixed_precision: str = "no"
    channels_last: bool = False
    checkpoint_every: int = 1
    sync_bn: bool | None = None

    _nested = {"attack": AttackConfig}

    def __post_init__(self) -> None:
        if not isinstance(self.epochs, int) or self.epochs < 0:
            raise ConfigError(f"epochs must be an integer >= 0, got {self.epochs!r}.")
        _choice(self.objective, OBJECTIVES, "training objective")
        _choice(self.schedule, SCHEDULES, "learning-rate schedule")
        _choice(self.mixed_precision, MIXED_PRECISIONS, "mixed precision")
        for name in ("lr", "momentum", "weight_decay", "trades_beta"):
            value = getattr(self, name)
            if value is None and name == "lr":
                continue
            _finite(value, name)
            if value < 0:
                raise ConfigError(f"{name} must be >= 0, got {value}.")
        if self.lr == 0 and self.epochs > 0:
            raise ConfigError("lr is 0: training would not change the model. Use epochs=0 to skip training.")
        if not isinstance(self.checkpoint_every, int) or self.checkpoint_every < 1:
            raise ConfigError(f"checkpoint_every must be a positive integer, got {self.checkpoint_every!r}.")
        if self.sync_bn not in (None, True, False):
            raise ConfigError(f"sync_bn must be True, False or None (automatic), got {self.sync_bn!r}.")

    @property
    def learning_rate(self) -> float:
        """``lr``, or the objective's default learning rate when ``lr`` is None."""
        return self.lr if self.lr is not None else DEFAULT_LR[self.objective]


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
            ``"robust"`` (|w * grad of the adversarial loss|, weight), or any criterion registered with
            :func:`robust_prune.pruning.importance.register_importance`.
        scope: ``"global"`` ranking across layers or ``"layerwise"`` uniform sparsity; ``None`` picks the
            structure's default (``"global"`` magnitude for weights, ``"layerwise"`` for channels).
        prune_first_layer, prune_classifier: whether the stem and the classifier may lose weights.
        round_to: channel structure: kept channel counts are rounded to the nearest multiple of this (default 8;
            layers too narrow for it, and families whose adapter opts out, keep the exact count); 1 prunes the
            exact fraction. The achieved fraction is in the record's ``stats["channel_ratio"]``.
        attention: channel structure: ``"heads"`` removes whole attention heads (``sparsity`` of each layer's
            heads, rounded, at least one kept) where the family's adapter can, ``"head_dim"`` removes the same
            dimensions from every head; families that cannot remove whole heads prune head dimensions.
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
    round_to: int = DEFAULT_ROUND_TO
    attention: str = "heads"
    rounds: int = 1
    rewind_epoch: int = 0
    reinit: bool = False
    adversarial: bool = True

    def __post_init__(self) -> None:
        _check_sparsity(self.sparsity)
        _choice(self.structure, STRUCTURES, "structure")
        from .pruning.importance import check_importance  # lazy: pruning imports this module

        check_importance(self.importance, self.structure)
        if self.scope is None:
            object.__setattr__(self, "scope", "global" if self.structure == "weight" else "layerwise")
        _choice(self.scope, SCOPES, "scope")
        if not isinstance(self.rounds, int) or self.rounds < 1:
            raise ConfigError(f"rounds must be a positive integer, got {self.rounds!r}.")
        if not isinstance(self.rewind_epoch, int) or self.rewind_epoch < 0:
            raise ConfigError(f"rewind_epoch must be an integer >= 0, got {self.rewind_epoch!r}.")
        if self.round_to is None:  # "the default", like scope
            object.__setattr__(self, "round_to", DEFAULT_ROUND_TO)
        if not isinstance(self.round_to, int) or isinstance(self.round_to, bool) or self.round_to < 1:
            raise ConfigError(f"round_to must be a positive integer (1: no rounding), got {self.round_to!r}.")
        _choice(self.attention, ATTENTION_MODES, "attention")

    def per_round_keep(self) -> float:
        """Fraction kept in each round so that ``rounds`` rounds reach ``sparsity``."""
        return (1.0 - self.sparsity) ** (1.0 / self.rounds)


def _stage(name: str) -> TrainConfig:
    return TrainConfig(**STAGES[name])


@dataclass(frozen=True)
class RobustifyConfig(_JsonConfig):
    """Everything one ``robustify()`` run does, stored next to its results. These defaults are the defaults of
    ``robustify()`` and of ``robust-prune robustify`` too (both build their config through :mod:`robust_prune.options`).

    Learning rates left at ``None`` are filled in from the training objective: ``pretrain`` at the objective's
    :data:`DEFAULT_LR`, ``finetune`` at :data:`FINETUNE_LR_FACTOR` times ``pretrain``'s, ``grow_train`` at
    ``pretrain``'s.

    Args:
        method: a registered method (:func:`robust_prune.methods.list_methods`).
        data: the data's name (``"digits"``, a torchvision name, an image folder, or ``"loaders"``).
        seed: makes the whole run deterministic on one machine (on the CPU; on CUDA, seeded runs are reproducible only
            up to the last bits of non-deterministic kernels unless ``deterministic``).
        deterministic: run with PyTorch's deterministic algorithms (:mod:`robust_prune.training.determinism`): bit-exact
            CUDA runs, at a cost in speed.
        pretrain: adversarial training before pruning (``dense``: all of it; ``lottery``: each round).
        finetune: adversarial fine-tuning of the pruned model (the ticket, for ``lottery`` and ``iwi``).
        grow_train: ``iwi``: adversarial training of the grown full-width model.
        prune: what to remove and how (default ``PruneConfig()`` with the method's registered
            ``prune_defaults``: for ``method="iwi"``, ``IWI_DEFAULT``'s structure and sparsity).
        ticket_method, grow_init: ``iwi``: where the ticket comes from and how growth fills new weights
            (defaults: the iwi registration's, ``robust_prune.methods.iwi.IWI_DEFAULT``).
        grow_scale, grow_out_scale: ``iwi``: :func:`~robust_prune.grow`'s ``scale`` (std of new channels'
            incoming weights; None: timm's) and ``out_scale`` (``small-out``'s relative std).
        eval_attacks, eval_eps, eval_steps, eval_n: the report's attacks, L-inf budget (None: the training
            attack's L-inf eps if set, else the dataset's), PGD steps and test points (None: all).

    Example:
        >>> cfg = RobustifyConfig(method="dense")
        >>> RobustifyConfig.from_json(cfg.to_json()) == cfg
        True
        >>> cfg.pretrain.lr, cfg.finetune.lr
        (0.05, 0.025)
    """

    method: str = "prune"
    data: str = "digits"
    seed: int = 0
    deterministic: bool = False
    pretrain: TrainConfig = field(default_factory=lambda: _stage("pretrain"))
    finetune: TrainConfig = field(default_factory=lambda: _stage("finetune"))
    grow_train: TrainConfig = field(default_factory=lambda: _stage("grow_train"))
    prune: PruneConfig = None  # type: ignore[assignment]  # filled in: PruneConfig() with the method's prune defaults
    ticket_method: str = None  # type: ignore[assignment]  # filled in from the method that reads it (iwi)
    grow_init: str = None  # type: ignore[assignment]  # filled in from the method that reads it (iwi)
    grow_scale: float | None = None
    grow_out_scale: float = GROW_OUT_SCALE
    eval_attacks: tuple[str, ...] = ("pgd",)
    eval_eps: float | None = None
    eval_steps: int = 20
    eval_n: int | None = None

    _nested = {"pretrain": TrainConfig, "finetune": TrainConfig, "grow_train": TrainConfig, "prune": PruneConfig}

    def __post_init__(self) -> None:
        from .methods import config_defaults, list_methods, ticket_methods

        for name, value in config_defaults().items():  # the defaults of fields only one method reads
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        _choice(self.method, tuple(list_methods()), "method")
        _choice(self.ticket_method, tuple(ticket_methods()), "ticket method")
        _choice(self.grow_init, GROW_INITS, "grow init")
        if self.prune is None:
            object.__setattr__(self, "prune", PruneConfig(**method_prune_defaults(self.method)))
        if self.grow_scale is not None:
            _finite(self.grow_scale, "grow_scale")
            if self.grow_scale < 0:
                raise ConfigError(f"grow_scale must be >= 0 or None, got {self.grow_scale}.")
        _finite(self.grow_out_scale, "grow_out_scale")
        if self.grow_out_scale < 0:
            raise ConfigError(f"grow_out_scale must be >= 0, got {self.grow_out_scale}.")
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
        self._fill_learning_rates()

    def _fill_learning_rates(self) -> None:
        lr = self.pretrain.learning_rate
        filled = {
            "pretrain": lr,
            "finetune": self.finetune.lr if self.finetune.lr is not None else lr * FINETUNE_LR_FACTOR,
            "grow_train": self.grow_train.lr if self.grow_train.lr is not None else lr,
        }
        for name, value in filled.items():
            stage = getattr(self, name)
            if stage.lr != value:
                object.__setattr__(self, name, dataclasses.replace(stage, lr=value))

    def total_epochs(self) -> int:
        """Training epochs the method spends in all (for equal-budget comparisons); the method's registry entry
        counts them."""
        from .methods import get_method

        return get_method(self.method).epochs(self)

    def budgets(self, data_eps: float | None) -> tuple[float, float]:
        """The L-inf eps the training attacks fall back to and the eps the report is measured at.

        A run is reported at the threat model it was trained for: ``eval_eps`` if set, else the training
        attack's L-inf eps if set, else the data's default. Training uses its attack's eps, else ``eval_eps``,
        else the data's default.

        Raises:
            ConfigError: neither the options nor the data name an eps (a user's loaders carry none).

        Example:
            >>> from robust_prune import AttackConfig, TrainConfig
            >>> RobustifyConfig().budgets(0.1)
            (0.1, 0.1)
            >>> RobustifyConfig(pretrain=TrainConfig(attack=AttackConfig(eps=0.2))).budgets(0.1)
            (0.2, 0.2)
        """
        attack = self.pretrain.attack
        trained = attack.eps if attack.norm == "Linf" else None
        report = next((e for e in (self.eval_eps, trained, data_eps) if e is not None), None)
        train = next((e for e in (attack.eps, self.eval_eps, data_eps) if e is not None), None)
        if report is None or train is None:
            raise ConfigError(
                "The data carries no attack budget (a user's (train, test) loaders have none): pass "
                "attack=AttackConfig(eps=...) for training and/or eval_eps=... for the report (pixel units, "
                "e.g. 8/255 for CIFAR-10)."
            )
        return float(train), float(report)
