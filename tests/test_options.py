"""One set of defaults: robustify()'s keywords, RobustifyConfig() and the CLI's flags describe the same run."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import torch
import torch.nn.functional as F

import robust_prune as rp
from robust_prune import methods
from robust_prune.cli import build_parser, main
from robust_prune.config import FINETUNE_LR_FACTOR, OBJECTIVES, AttackConfig, PruneConfig, RobustifyConfig, TrainConfig
from robust_prune.errors import ConfigError
from robust_prune.methods._stages import IMPORTANCE_BATCHES, importance_loss
from robust_prune.options import OPTIONS, build_config, config_paths


@pytest.fixture
def captured_config(monkeypatch: pytest.MonkeyPatch) -> list[RobustifyConfig]:
    """Replace every method's run with one that records the config robustify() built, and trains nothing."""
    seen: list[RobustifyConfig] = []

    def capture(model, bundle, config, *, runner, progress):
        seen.append(config)
        return None

    for name in methods.list_methods():
        monkeypatch.setitem(methods._REGISTRY, name, dataclasses.replace(methods.get_method(name), run=capture))
    return seen


@pytest.mark.parametrize("method", methods.list_methods())
def test_robustify_runs_the_config_dataclass_defaults(method: str, captured_config: list[RobustifyConfig]) -> None:
    rp.robustify("test_resnet", method=method, progress=False)
    assert captured_config == [RobustifyConfig(method=method)]


@pytest.mark.parametrize("method", methods.list_methods())
def test_cli_defaults_print_the_same_config(method: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["robustify", "--method", method, "--print-config"]) == 0
    assert RobustifyConfig.from_json(capsys.readouterr().out) == RobustifyConfig(method=method)


def test_every_config_field_is_a_keyword_and_a_flag() -> None:
    reached = {path for option in OPTIONS for path in option.paths}
    assert set(config_paths()) <= reached
    keywords = set(inspect.signature(rp.robustify).parameters)
    assert {option.name for option in OPTIONS} <= keywords
    parser = build_parser()
    robustify_parser = parser._subparsers._group_actions[0].choices["robustify"]  # noqa: SLF001
    flags = {s for action in robustify_parser._actions for s in action.option_strings}  # noqa: SLF001
    assert {option.flag for option in OPTIONS if option.name != "attack"} <= flags


def test_flags_set_the_fields_they_name(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["robustify", "--print-config", "--weight-decay", "0.001", "--finetune-lr", "0.003", "--eps", "0.2",
            "--train-steps", "3", "--no-adversarial", "--attacks", "pgd,fgsm", "--round-to", "4", "--attention",
            "head_dim", "--attack-seed", "4", "--objective", "trades", "--grow-epochs", "5", "--n", "40"]  # fmt: skip
    assert main(argv) == 0
    cfg = RobustifyConfig.from_json(capsys.readouterr().out)
    for stage in (cfg.pretrain, cfg.finetune, cfg.grow_train):
        assert stage.weight_decay == 0.001 and stage.objective == "trades"
        assert (stage.attack.eps, stage.attack.steps, stage.attack.seed) == (0.2, 3, 4)
    assert (cfg.pretrain.lr, cfg.finetune.lr, cfg.grow_train.lr) == (0.02, 0.003, 0.02)  # TRADES' default lr
    assert cfg.prune.adversarial is False and (cfg.prune.round_to, cfg.prune.attention) == (4, "head_dim")
    assert cfg.eval_attacks == ("pgd", "fgsm") and cfg.eval_n == 40 and cfg.grow_train.epochs == 5
    assert cfg == build_config(weight_decay=0.001, finetune_lr=0.003, eps=0.2, train_steps=3, adversarial=False,
                               eval_attacks=("pgd", "fgsm"), round_to=4, attention="head_dim", attack_seed=4,
                               objective="trades", grow_epochs=5, eval_n=40)  # fmt: skip


def test_defaults_that_depend_on_an_option_follow_it() -> None:
    """An option must reach the dataclass before its defaults are resolved (weight pruning ranks globally)."""
    assert build_config(structure="weight").prune == PruneConfig(structure="weight")
    assert build_config(structure="weight").prune.scope == "global"
    trades = build_config(objective="trades", eps=0.2)
    assert trades.pretrain == TrainConfig(objective="trades", attack=AttackConfig(eps=0.2, steps=5), lr=0.02)
    assert trades.finetune.lr == 0.02 * FINETUNE_LR_FACTOR and trades.grow_train.lr == 0.02


def test_options_beside_a_config_are_refused_not_ignored() -> None:
    with pytest.raises(ConfigError, match="config= is given, so epochs, lr would be ignored"):
        rp.robustify("test_resnet", config=RobustifyConfig(method="dense"), epochs=3, lr=0.1)
    with pytest.raises(ConfigError, match="attack= and eps both set the training attack"):
        rp.robustify("test_resnet", attack=rp.AttackConfig(steps=2), eps=0.1)


def test_gradient_importances_score_the_runs_own_loss(tiny_bundle) -> None:
    model, _ = rp.api.prepare("test_resnet", tiny_bundle)
    model.eval()  # no BatchNorm updates between the two computations below
    clean = importance_loss(tiny_bundle, build_config(objective="clean", importance="taylor"))
    # the 128 training images are exactly IMPORTANCE_BATCHES batches, whatever order the loader shuffles them in
    batches = [b for _, b in zip(range(IMPORTANCE_BATCHES), tiny_bundle.train)]
    expected = sum(F.cross_entropy(model(x), y) for x, y in batches) / IMPORTANCE_BATCHES
    torch.testing.assert_close(clean(model), expected)
    adversarial = importance_loss(tiny_bundle, build_config(objective="pgd-at", importance="taylor"))
    assert float(adversarial(model).detach()) > float(expected.detach()) + 0.01  # attacked inputs cost more
    assert importance_loss(tiny_bundle, build_config(importance="magnitude")) is None


@pytest.mark.slow
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_every_objective_trains_at_its_default_learning_rate(objective: str) -> None:
    """On the digits with resnet10t, TRADES at PGD-AT's 0.05 went backwards (loss 4.09 -> 4.21 in two epochs,
    39% clean test accuracy); every objective at its own default must learn."""
    torch.manual_seed(0)
    result = rp.robustify("resnet10t", method="dense", objective=objective, epochs=2, eval_attacks=(), eval_n=120,
                          progress=False)  # fmt: skip
    losses = [h.loss for h in result.history]
    assert losses[-1] < losses[0], losses
    assert result.report.clean_accuracy >= 0.8
