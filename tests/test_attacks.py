"""Attacks: configured from AttackConfig, inside their budget, and free of side effects."""

from __future__ import annotations

import pytest
import timm
import torch
from torch import nn

from robust_prune import AttackConfig
from robust_prune.config import ATTACK_NAMES
from robust_prune.errors import ConfigError
from robust_prune.evaluation._attack_zoo import AutoAttackCascade, build_extra_attack
from robust_prune.evaluation.attacks import preserve_state, run_attack, run_attack_detailed
from robust_prune.models import NormalizedModel

torch.set_num_threads(1)


def _tiny(num_classes: int = 10) -> nn.Module:
    torch.manual_seed(0)
    return NormalizedModel(timm.create_model("test_resnet", num_classes=num_classes), [0.5] * 3, [0.25] * 3)


def _points(n: int = 4, num_classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, 3, 32, 32, generator=g), torch.randint(0, num_classes, (n,), generator=g)


def _fit_labels(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Labels the model predicts, so every point starts correct and each attack really runs."""
    with torch.no_grad():
        return model.eval()(x).argmax(1)


@pytest.mark.parametrize("name", ATTACK_NAMES)
def test_attack_leaves_rng_grad_and_modes_untouched(name: str) -> None:
    model = _tiny()
    x, _ = _points(3)
    y = _fit_labels(model, x)
    model.train()
    frozen = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)][0]
    frozen.eval()  # a frozen BatchNorm inside a training model: torchattacks would flip it back to train
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.5)
    modes = [m.training for m in model.modules()]
    rng = torch.get_rng_state()
    config = AttackConfig(name=name, eps=8 / 255, steps=3, seed=7)
    x_adv = run_attack(model, x, y, config)
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(p.grad is not None and torch.all(p.grad == 0.5) for p in model.parameters())
    assert [m.training for m in model.modules()] == modes
    assert x_adv.shape == x.shape and 0 <= float(x_adv.min()) and float(x_adv.max()) <= 1
    if name != "cw":
        assert float((x_adv - x).abs().max()) <= 8 / 255 + 1e-6


def test_attack_between_training_steps_changes_nothing() -> None:
    """Two SGD steps with dropout noise give the same parameters and RNG stream with or without an attack between."""

    def run(with_attack: bool) -> tuple[list[torch.Tensor], torch.Tensor]:
        model = _tiny()
        x, y = _points(4)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        torch.manual_seed(123)
        for step in range(2):
            model.train()
            opt.zero_grad()
            noise = torch.rand_like(x) * 0.01  # stands in for augmentation / dropout randomness
            loss = nn.functional.cross_entropy(model(x + noise), y)
            loss.backward()
            if with_attack and step == 0:
                for name in ("pgd", "apgd-ce", "square", "cw"):
                    run_attack(model, x, y, AttackConfig(name=name, eps=0.03, steps=2, seed=step))
            opt.step()
        return [p.detach().clone() for p in model.parameters()], torch.rand(3)

    params_a, next_a = run(False)
    params_b, next_b = run(True)
    assert torch.equal(next_a, next_b)
    assert all(torch.equal(a, b) for a, b in zip(params_a, params_b))


def test_preserve_state_seeds_locally() -> None:
    model = _tiny()
    before = torch.get_rng_state()
    with preserve_state(model, seed=3):
        a = torch.rand(2)
    with preserve_state(model, seed=3):
        b = torch.rand(2)
    assert torch.equal(a, b) and torch.equal(torch.get_rng_state(), before)


@pytest.mark.parametrize("n_classes,targets", [(10, 9), (100, 9), (5, 4)])
def test_autoattack_is_configured_to_the_reference_budget(n_classes: int, targets: int) -> None:
    model = _tiny(n_classes)
    attack = build_extra_attack(model, AttackConfig(name="autoattack", eps=8 / 255))
    assert isinstance(attack, AutoAttackCascade)
    stages = dict(attack.stages(n_classes))
    assert list(stages) == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert stages["apgd-ce"].steps == 100 and stages["apgd-ce"].loss == "ce"
    assert stages["apgd-t"].steps == 100 and stages["apgd-t"].n_target_classes == targets
    assert stages["fab-t"].steps == 100 and stages["fab-t"].n_target_classes == targets
    assert stages["fab-t"].multi_targeted
    assert stages["square"].n_queries == 5000
    assert all(s.eps == pytest.approx(8 / 255) for s in stages.values())


def test_autoattack_fast_builds_a_cheaper_cascade_under_its_own_name() -> None:
    model = _tiny(10)
    fast = build_extra_attack(model, AttackConfig(name="autoattack-fast", eps=8 / 255))
    stages = dict(fast.stages(10))
    assert list(stages) == ["apgd-ce", "apgd-t", "square"]  # no FAB-T
    assert stages["apgd-ce"].steps == stages["apgd-t"].steps == 20 and stages["apgd-t"].n_target_classes == 3
    assert stages["square"].n_queries == 500
    reference = dict(build_extra_attack(model, AttackConfig(name="autoattack", eps=8 / 255)).stages(10))
    assert reference["apgd-ce"].steps == 100 and reference["square"].n_queries == 5000  # "autoattack" is unchanged


def test_autoattack_cascade_reports_breakdown() -> None:
    model = _tiny()
    x, _ = _points(4)
    y = _fit_labels(model, x)
    x_adv, info = run_attack_detailed(model, x, y, AttackConfig(name="autoattack-fast", eps=0.5))
    with torch.no_grad():
        fooled = int((model(x_adv).argmax(1) != y).sum())
    assert sum(info["breakdown"].values()) == fooled == 4  # eps 0.5 breaks an untrained model
    assert info["breakdown"]["apgd-ce"] >= 1 and "APGD-CE" in info["budget"]


def test_apgd_dlr_needs_four_classes() -> None:
    model = _tiny(3)
    x, y = _points(2, 3)
    with pytest.raises(ConfigError, match="at least 4 classes"):
        run_attack(model, x, y, AttackConfig(name="apgd-dlr", eps=0.03, steps=2))


def test_pgd_l2_and_restarts_stay_in_ball() -> None:
    model = _tiny()
    x, _ = _points(3)
    y = _fit_labels(model, x)
    x_adv = run_attack(model, x, y, AttackConfig(name="pgd", norm="L2", eps=0.5, steps=3, restarts=2))
    assert float((x_adv - x).flatten(1).norm(dim=1).max()) <= 0.5 + 1e-4


def test_fgsm_l2_is_a_clear_error() -> None:
    model = _tiny()
    x, y = _points(2)
    with pytest.raises(ConfigError, match="L-inf"):
        run_attack(model, x, y, AttackConfig(name="fgsm", norm="L2", eps=0.5))
