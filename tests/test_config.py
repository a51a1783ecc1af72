"""Config dataclasses: validation with actionable errors, and JSON round trips."""

import pytest
import timm

from robust_prune import AttackConfig, PruneConfig, RobustifyConfig, TrainConfig
from robust_prune.errors import ConfigError
from robust_prune.evaluation.attacks import build_attack


def test_robustify_config_round_trips_through_json():
    cfg = RobustifyConfig(
        method="prune",
        pretrain=TrainConfig(epochs=2, objective="trades", attack=AttackConfig(eps=0.1, steps=3)),
        prune=PruneConfig(sparsity=0.7, structure="channel"),
        eval_attacks=("pgd", "fgsm"),
    )
    again = RobustifyConfig.from_json(cfg.to_json())
    assert again == cfg
    assert isinstance(again.pretrain.attack, AttackConfig)


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda: AttackConfig(eps=-0.1), "eps must be >= 0"),
        (lambda: AttackConfig(steps=0), "steps must be a positive integer"),
        (lambda: AttackConfig(name="deepfool"), "Unknown attack"),
        (lambda: PruneConfig(sparsity=1.0), "sparsity must be in [0, 1)"),
        (lambda: PruneConfig(sparsity=float("nan")), "finite"),
        (lambda: PruneConfig(structure="block"), "Unknown structure"),
        (lambda: TrainConfig(objective="mart"), "Unknown training objective"),
        (lambda: RobustifyConfig(method="magic"), "Unknown method"),
    ],
    ids=[
        "negative-eps", "zero-steps", "unknown-attack", "sparsity-1", "sparsity-nan", "structure", "objective", "method"
    ],
)
def test_bad_values_raise_config_error_naming_the_problem(make, fragment):
    with pytest.raises(ConfigError) as info:
        make()
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)


def test_unknown_json_fields_are_rejected():
    with pytest.raises(ConfigError, match="Unknown TrainConfig option"):
        TrainConfig.from_dict({"epochs": 1, "learning_rate": 0.1})


def test_the_attack_steps_by_2_5_eps_over_steps_unless_told():
    model = timm.create_model("test_resnet", num_classes=10)
    assert build_attack(model, AttackConfig(eps=0.1, steps=10)).alpha == pytest.approx(0.025)  # Madry et al.
    assert build_attack(model, AttackConfig(eps=0.1, steps=10, step_size=0.05)).alpha == pytest.approx(0.05)


def test_total_epochs_counts_every_phase():
    cfg = RobustifyConfig(method="prune", pretrain=TrainConfig(epochs=4), finetune=TrainConfig(epochs=2))
    assert cfg.total_epochs() == 6
    assert RobustifyConfig(method="dense", pretrain=TrainConfig(epochs=5)).total_epochs() == 5
