"""Adversarial training: objectives, determinism under a seed, and numerical faults."""

import copy

import pytest
import torch
import torch.nn.functional as F

from robust_prune import AttackConfig, TrainConfig
from robust_prune.api import prepare
from robust_prune.errors import TrainingDivergedError
from robust_prune.training import train, train_one_batch


def _model():
    torch.manual_seed(0)
    model, _ = prepare("test_resnet", "digits")
    return model


@pytest.mark.parametrize("objective", ["pgd-at", "trades", "fgsm-rs", "clean"])
def test_each_objective_trains_with_finite_loss(objective, tiny_bundle):
    model = _model()
    cfg = TrainConfig(epochs=1, objective=objective, attack=AttackConfig(eps=0.1, steps=2))
    history = train(model, tiny_bundle.train, config=cfg, progress=False)
    assert len(history) == 1 and history[0].images == 128
    assert torch.isfinite(torch.tensor(history[0].loss))
    assert not model.training


def test_training_is_deterministic_under_a_seed(tiny_bundle):
    cfg = TrainConfig(epochs=1, attack=AttackConfig(eps=0.1, steps=2))
    weights = []
    for _ in range(2):
        tiny_bundle.train.generator.manual_seed(0)
        model = _model()
        train(model, tiny_bundle.train, config=cfg, seed=3, progress=False)
        weights.append(model.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_pgd_training_raises_adversarial_accuracy(tiny_bundle):
    model = _model()
    cfg = TrainConfig(epochs=3, lr=0.05, attack=AttackConfig(eps=0.1, steps=2))
    history = train(model, tiny_bundle.train, config=cfg, progress=False)
    assert history[-1].adversarial_accuracy > history[0].adversarial_accuracy


def test_nan_loss_names_stage_epoch_and_cause(tiny_bundle):
    model = _model()
    with torch.no_grad():
        model.model.get_classifier().weight.fill_(float("nan"))
    cfg = TrainConfig(epochs=1, attack=AttackConfig(eps=0.1, steps=1))
    with pytest.raises(TrainingDivergedError, match=r"fine-tune: .*epoch 1, batch 1.*learning rate"):
        train(model, tiny_bundle.train, config=cfg, stage="fine-tune", progress=False)


def test_one_batch_step_returns_the_loss_it_descends(tiny_bundle):
    x, y = next(iter(tiny_bundle.train))
    model = _model()
    clean = AttackConfig(eps=0.0, steps=1)
    losses = []
    for _ in range(4):
        before = copy.deepcopy(model).train()
        with torch.no_grad():
            expected = F.cross_entropy(before(x), y).item()  # the same forward in training mode, before the step
        losses.append(train_one_batch(model, x, y, attack=clean, objective="clean", lr=0.05))
        assert losses[-1] == pytest.approx(expected, rel=1e-5)
    assert losses[-1] < losses[0]  # the step descends on the loss it returns
    adversarial = train_one_batch(copy.deepcopy(model), x, y, attack=AttackConfig(eps=0.1, steps=3))
    clean_now = train_one_batch(copy.deepcopy(model), x, y, attack=clean, objective="clean")
    assert adversarial > clean_now  # PGD-AT's loss is at the attacked images
