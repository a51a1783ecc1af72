"""The evaluation-only attacks: APGD-CE, APGD-DLR, CW, Square and AutoAttack as a per-point cascade.

``build_extra_attack`` is called by :func:`robust_prune.evaluation.attacks.build_attack` for every name other than
``fgsm`` and ``pgd``. ``autoattack`` is the reference budget of fra31/auto-attack and RobustBench
(APGD-CE 100 iterations, APGD-T 100 iterations x 9 targets, FAB-T 100 iterations x 9 targets,
Square 5,000 queries), not torchattacks' lighter default; ``autoattack-fast`` is the explicitly
cheaper variant. Targets are ``min(9, n_classes - 1)``.

Example:
    >>> import timm
    >>> from robust_prune import AttackConfig
    >>> attack = build_extra_attack(timm.create_model("test_resnet"), AttackConfig(name="autoattack", eps=8 / 255))
    >>> [(name, getattr(sub, "steps", None) or sub.n_queries) for name, sub in attack.stages(n_classes=10)]
    [('apgd-ce', 100), ('apgd-t', 100), ('fab-t', 100), ('square', 5000)]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torchattacks
from torch import nn

from ..config import AttackConfig
from ..errors import ConfigError

__all__ = ["AutoAttackBudget", "AutoAttackCascade", "AUTOATTACK_BUDGETS", "build_extra_attack", "CW_MIN_STEPS"]

CW_MIN_STEPS = 100
SQUARE_QUERIES = 5000


@dataclass(frozen=True)
class AutoAttackBudget:
    """Iterations, targets and queries of an AutoAttack cascade."""

    apgd_steps: int
    apgdt_steps: int
    fab_steps: int
    targets: int
    square_queries: int

    def describe(self) -> str:
        parts = [f"APGD-CE {self.apgd_steps} it", f"APGD-T {self.apgdt_steps} it x {self.targets} targets"]
        if self.fab_steps:
            parts.append(f"FAB-T {self.fab_steps} it x {self.targets} targets")
        if self.square_queries:
            parts.append(f"Square {self.square_queries} queries")
        return ", ".join(parts)


AUTOATTACK_BUDGETS = {
    "autoattack": AutoAttackBudget(apgd_steps=100, apgdt_steps=100, fab_steps=100, targets=9, square_queries=5000),
    "autoattack-fast": AutoAttackBudget(apgd_steps=20, apgdt_steps=20, fab_steps=0, targets=3, square_queries=500),
}


def _num_classes(model: nn.Module, images: torch.Tensor) -> int:
    with torch.no_grad():
        return int(model(images[:1]).shape[1])


def _need_classes(name: str, n_classes: int, minimum: int) -> None:
    if n_classes < minimum:
        raise ConfigError(
            f"{name} uses the DLR loss, which needs at least {minimum} classes; this model has {n_classes}. "
            "Use 'apgd-ce' or 'pgd' instead."
        )


def _inside_ball(x_adv: torch.Tensor, x: torch.Tensor, norm: str, eps: float) -> torch.Tensor:
    delta = (x_adv - x).flatten(1)
    size = delta.abs().amax(1) if norm == "Linf" else delta.norm(dim=1)
    in_box = (x_adv >= 0).flatten(1).all(1) & (x_adv <= 1).flatten(1).all(1)
    return (size <= eps * (1 + 1e-5) + 1e-7) & in_box


class AutoAttackCascade(torchattacks.attack.Attack):
    """AutoAttack as a cascade: each sub-attack runs only on the points every earlier one failed on.

    A point counts as broken only if the sub-attack's output is misclassified and inside the eps-ball
    and the [0, 1] box. ``breakdown`` holds, after each call, how many points each sub-attack broke.
    """

    def __init__(self, model: nn.Module, *, norm: str, eps: float, budget: AutoAttackBudget, seed: int = 0) -> None:
        super().__init__("AutoAttack", model)
        self.norm, self.eps, self.budget, self.seed = norm, float(eps), budget, seed
        self.breakdown: dict[str, int] = {}
        self.skipped: list[str] = []
        self.supported_mode = ["default"]

    def stages(self, n_classes: int) -> list[tuple[str, torchattacks.attack.Attack]]:
        """The configured sub-attacks for a model with ``n_classes`` outputs."""
        b, targets = self.budget, max(1, min(self.budget.targets, n_classes - 1))
        kw: dict[str, Any] = {"norm": self.norm, "eps": self.eps, "seed": self.seed}
        stages: list[tuple[str, torchattacks.attack.Attack]] = [
            ("apgd-ce", torchattacks.APGD(self.model, steps=b.apgd_steps, loss="ce", n_restarts=1, **kw))
        ]
        self.skipped = []
        if n_classes >= 4:
            apgdt = torchattacks.APGDT(self.model, steps=b.apgdt_steps, n_restarts=1, n_classes=n_classes, **kw)
            apgdt.n_target_classes = targets
            stages.append(("apgd-t", apgdt))
        else:
            self.skipped.append("apgd-t (needs >= 4 classes)")
        if b.fab_steps:
            fab = torchattacks.FAB(
                self.model, steps=b.fab_steps, n_restarts=1, multi_targeted=True, n_classes=n_classes, **kw
            )
            fab.n_target_classes = targets
            stages.append(("fab-t", fab))
        if b.square_queries:
            stages.append(("square", torchattacks.Square(self.model, n_queries=b.square_queries, n_restarts=1, **kw)))
        for _, attack in stages:
            attack.set_model_training_mode(model_training=False)
        return stages

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        images, labels = images.clone().detach(), labels.clone().detach()
        adv = images.clone()
        with torch.no_grad():
            unbroken = self.get_logits(images).argmax(1) == labels
        stages = self.stages(_num_classes(self.model, images))
        self.breakdown = {name: 0 for name, _ in stages}
        for name, attack in stages:
            idx = unbroken.nonzero().flatten()
            if len(idx) == 0:
                break
            x_sub = attack(images[idx], labels[idx]).detach()
            with torch.no_grad():
                fooled = self.get_logits(x_sub).argmax(1) != labels[idx]
            fooled &= _inside_ball(x_sub, images[idx], self.norm, self.eps)
            adv[idx[fooled]] = x_sub[fooled]
            unbroken[idx[fooled]] = False
            self.breakdown[name] = int(fooled.sum())
        return adv


class _DLRGuard(torchattacks.APGD):
    """APGD with the DLR loss, refusing models with fewer than 4 classes with a clear error."""

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        _need_classes("apgd-dlr", _num_classes(self.model, images), 4)
        return super().forward(images, labels)


def build_extra_attack(model: nn.Module, config: AttackConfig) -> torchattacks.attack.Attack:
    """A configured torchattacks object for the names other than ``fgsm`` and ``pgd``.

    ``config.steps`` is the iteration count of APGD-CE and APGD-DLR, the Adam step count of CW
    (``evaluate`` uses at least ``CW_MIN_STEPS``) and the query count of Square; AutoAttack's budget
    is fixed by its name.

    Example:
        >>> import timm
        >>> model = timm.create_model("test_resnet")
        >>> attack = build_extra_attack(model, AttackConfig(name="apgd-ce", eps=0.1, steps=50))
        >>> type(attack).__name__, attack.steps, attack.loss
        ('APGD', 50, 'ce')
    """
    eps = float(config.eps) if config.eps is not None else None
    if config.name == "cw":  # an L2 minimal-perturbation attack: no eps
        return torchattacks.CW(model, c=1.0, kappa=0.0, steps=config.steps, lr=0.01)
    if eps is None:
        raise ConfigError("The attack's eps is not set; pass eps= or let the dataset supply its default.")
    common: dict[str, Any] = {"norm": config.norm, "eps": eps, "seed": config.seed}
    if config.name == "apgd-ce":
        return torchattacks.APGD(model, steps=config.steps, n_restarts=config.restarts, loss="ce", **common)
    if config.name == "apgd-dlr":
        return _DLRGuard(model, steps=config.steps, n_restarts=config.restarts, loss="dlr", **common)
    if config.name == "square":
        return torchattacks.Square(model, n_queries=config.steps, n_restarts=config.restarts, **common)
    if config.name in AUTOATTACK_BUDGETS:
        return AutoAttackCascade(model, budget=AUTOATTACK_BUDGETS[config.name], **common)
    raise ConfigError(
        f"No attack named {config.name!r} here; choose one of fgsm, pgd, apgd-ce, apgd-dlr, cw, "
        "square, autoattack, autoattack-fast."
    )
