"""Attack names -> configured torchattacks objects, run without side effects.

Every attack here takes pixel-space inputs in [0, 1] (normalisation is inside the model) and leaves
the global RNG state, the parameters' ``.grad`` and every module's train/eval flag exactly as it
found them: torchattacks reseeds the global generator (APGD, FAB, Square), leaves gradients behind
(FAB, CW) and calls ``model.train()`` on the whole model afterwards.

Example:
    >>> import timm
    >>> from robust_prune.data.loading import first_n, load_data
    >>> model = timm.create_model("test_resnet", num_classes=10).eval()
    >>> x, y = first_n(load_data("digits").test, 8)
    >>> from robust_prune import AttackConfig
    >>> from robust_prune.evaluation.attacks import run_attack
    >>> x_adv = run_attack(model, x, y, AttackConfig(name="pgd", eps=8 / 255, steps=10))
    >>> bool((x_adv - x).abs().max() <= 8 / 255 + 1e-6), bool(x_adv.min() >= 0 and x_adv.max() <= 1)
    (True, True)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torchattacks
from torch import nn

from ..config import AttackConfig
from ..errors import ConfigError
from ..models import eval_mode

__all__ = ["build_attack", "run_attack", "run_attack_detailed", "preserve_state"]


@contextlib.contextmanager
def preserve_state(model: nn.Module, *, seed: int | None = None) -> Iterator[None]:
    """Run the block with ``model`` in eval mode; restore the global RNG, parameter gradients and every module's
    train/eval flag on exit.

    With ``seed``, the body runs under ``torch.manual_seed(seed)`` on a forked generator.
    """
    grads = [(p, None if p.grad is None else p.grad.detach().clone()) for p in model.parameters()]
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices), eval_mode(model):
        if seed is not None:
            torch.manual_seed(seed)
        try:
            yield
        finally:
            for param, grad in grads:
                param.grad = grad


def build_attack(model: nn.Module, config: AttackConfig) -> torchattacks.attack.Attack:
    """A torchattacks object configured from ``config`` (eps must be resolved, except for ``cw``).

    Example:
        >>> import timm
        >>> attack = build_attack(timm.create_model("test_resnet"), AttackConfig(name="pgd", eps=0.1, steps=10))
        >>> type(attack).__name__, attack.steps
        ('PGD', 10)
    """
    if config.name not in ("fgsm", "pgd"):
        from ._attack_zoo import build_extra_attack  # the evaluation-only attacks

        return build_extra_attack(model, config)
    if config.eps is None:
        raise ConfigError("The attack's eps is not set; pass eps= or let the dataset supply its default.")
    eps, alpha, steps = float(config.eps), float(config.resolved_step_size()), int(config.steps)
    name, linf = config.name, config.norm == "Linf"
    if name == "fgsm":
        if not linf:
            raise ConfigError("FGSM here is an L-inf attack; use name='pgd', norm='L2', steps=1 for an L2 step.")
        return torchattacks.FGSM(model, eps=eps)
    if linf:
        return torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=config.random_start)
    return torchattacks.PGDL2(model, eps=eps, alpha=alpha, steps=steps, random_start=config.random_start)


def run_attack(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, config: AttackConfig) -> torch.Tensor:
    """Adversarial examples for ``images`` under ``config``, computed in eval mode with no side effects.

    PGD restarts keep, per image, the first restart that fools the model.

    Example:
        >>> import timm
        >>> from robust_prune.data.loading import first_n, load_data
        >>> model = timm.create_model("test_resnet", num_classes=10).eval()
        >>> x, y = first_n(load_data("digits").test, 8)
        >>> x_adv = run_attack(model, x, y, AttackConfig(name="apgd-ce", eps=0.1, steps=5))
        >>> x_adv.shape == x.shape and bool((x_adv - x).abs().max() <= 0.1 + 1e-6)
        True
    """
    return run_attack_detailed(model, images, labels, config)[0]


def run_attack_detailed(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, config: AttackConfig
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Like :func:`run_attack`, also returning what the attack reports about itself.

    The dictionary holds ``breakdown`` (points broken per AutoAttack sub-attack), ``skipped`` and
    ``budget`` for AutoAttack; it is empty for the other attacks.

    Example:
        >>> import timm
        >>> from robust_prune.data.loading import first_n, load_data
        >>> model = timm.create_model("test_resnet", num_classes=10).eval()
        >>> x, y = first_n(load_data("digits").test, 8)
        >>> x_adv, info = run_attack_detailed(model, x, y, AttackConfig(name="autoattack", eps=0.5))
        >>> sorted(info["breakdown"])  # points broken per sub-attack (each runs on what the earlier left)
        ['apgd-ce', 'apgd-t', 'fab-t', 'square']
    """
    info: dict[str, Any] = {}
    with preserve_state(model, seed=config.seed):
        attack = build_attack(model, config)
        attack.set_model_training_mode(model_training=False)
        restarts = config.restarts if config.name == "pgd" else 1
        best = attack(images, labels)
        for _ in range(restarts - 1):
            with torch.no_grad():
                fooled = model(best).argmax(1) != labels
            if bool(fooled.all()):
                break
            candidate = attack(images, labels)
            best = torch.where(fooled.view(-1, 1, 1, 1), best, candidate)
        if hasattr(attack, "breakdown"):
            info = {
                "breakdown": dict(attack.breakdown),
                "skipped": list(getattr(attack, "skipped", [])),
                "budget": attack.budget.describe(),
            }
    return best.detach(), info
