"""A method is declared once: its stages as data the runner carries out (each stage with its own seed), its epochs,
its config defaults and its model-card text, all read from its registration."""

from __future__ import annotations

import pytest

import robust_prune as rp
from robust_prune import methods
from robust_prune.publishing.model_card import build_model_card
from robust_prune.training import runner
from robust_prune.training.runner import Train, stage_seed

CONFIGS = [
    rp.RobustifyConfig(method="dense"),
    rp.RobustifyConfig(method="prune"),
    rp.RobustifyConfig(method="lottery", prune=rp.PruneConfig(rounds=3)),
    rp.RobustifyConfig(method="iwi"),
    rp.RobustifyConfig(method="iwi", ticket_method="lottery", prune=rp.PruneConfig(rounds=2)),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.method}-{c.ticket_method}-{c.prune.rounds}")
def test_declared_stages_spend_the_epochs_the_method_counts(config: rp.RobustifyConfig) -> None:
    stages = methods.get_method(config.method).stages(config)
    names = [stage.name for stage in stages]
    assert len(set(names)) == len(names), "stage names are checkpoint names: unique within a method"
    trained = sum(stage.config.epochs for stage in stages if isinstance(stage, Train))
    assert trained == config.total_epochs()


def test_every_training_stage_draws_its_own_seed(tiny_bundle, monkeypatch: pytest.MonkeyPatch) -> None:
    """iwi on a 2-round lottery ticket trains 4 stages, each with its own random stream, moving with the run's seed."""
    seeds: dict[int, dict[str, int]] = {}
    real_train = runner.train

    def recording_train(*args, stage, seed, **kwargs):
        seeds[run_seed][stage] = seed
        return real_train(*args, stage=stage, seed=seed, **kwargs)

    monkeypatch.setattr(runner, "train", recording_train)
    for run_seed in (0, 1):
        seeds[run_seed] = {}
        rp.robustify("test_resnet", (tiny_bundle.train, tiny_bundle.test), method="iwi", ticket_method="lottery",
                     structure="weight", sparsity=0.5, rounds=2, epochs=1, finetune_epochs=1, grow_epochs=1,
                     attack=rp.AttackConfig(eps=0.1, steps=1), eval_n=8, eval_steps=1, seed=run_seed,
                     progress=False)  # fmt: skip
    stages = ["adversarial pruning round 1/2", "adversarial pruning round 2/2", "adversarial training of the ticket",
              "adversarial training (grown)"]  # fmt: skip
    assert list(seeds[0]) == stages
    assert len(set(seeds[0].values())) == len(stages)
    assert all(seeds[1][stage] - seeds[0][stage] == 1 for stage in stages)


def test_a_stage_without_a_declared_seed_is_refused() -> None:
    assert stage_seed(0, "round-1") != stage_seed(0, "round-2")
    with pytest.raises(ValueError, match="No seed is declared"):
        stage_seed(0, "polish")


@pytest.mark.parametrize("method", methods.list_methods())
def test_the_model_card_describes_the_method_from_its_registration(method: str) -> None:
    config = {"architecture": "test_resnet", "num_classes": 10, "robust_prune": {"method": method}}
    card = str(build_model_card(config, None, repo_id="me/x"))
    assert methods.get_method(method).card in card
    assert "Method `mystery`." in str(build_model_card({**config, "robust_prune": {"method": "mystery"}}, None))
