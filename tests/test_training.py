"""Adversarial training: objectives, determinism under a seed, and numerical faults."""

import copy

import pytest
import torch
import torch.nn.functional as F

from robust_prune import AttackConfig, TrainConfig
from robust_prune.api import prepare
from robust_prune.errors import TrainingDivergedError
from robust_prune.training.adversarial import train, train_one_batch
from robust_prune.training.determinism import deterministic


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
        with deterministic():  # exact on CUDA too (a no-op for the CPU's kernels)
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


def test_fp16_attack_gradients_do_not_underflow():
    """Under fp16 autocast the training attack's input gradients (~1e-6 per pixel for a batch-mean loss) partly
    flush to zero; through AttackGradientScaled (what train() attacks under fp16) they survive, in the same
    direction as fp32's."""
    import torch.nn.functional as F

    from robust_prune.training.adversarial import AttackGradientScaled

    torch.manual_seed(0)
    model, bundle = prepare("test_resnet", "digits", batch_size=128, seed=0)
    model.eval()
    x, y = next(iter(bundle.train))

    def input_grad(attacked, dtype):
        x_ = x.clone().requires_grad_(True)
        with torch.autocast("cpu", dtype=torch.float16, enabled=dtype == torch.float16):
            loss = F.cross_entropy(attacked(x_), y)
        return torch.autograd.grad(loss, x_)[0]

    fp32 = input_grad(model, torch.float32)
    plain, scaled = input_grad(model, torch.float16), input_grad(AttackGradientScaled(model), torch.float16)
    zeros = {name: float((g == 0).float().mean()) for name, g in [("fp32", fp32), ("plain", plain), ("scaled", scaled)]}
    assert zeros["plain"] > 0.002, zeros  # the underflow is real here, so the test can tell the difference
    assert zeros["scaled"] < zeros["plain"] / 10, zeros
    agree = {
        name: float((g.sign() == fp32.sign()).float().mean())
        for name, g in (("plain", plain), ("scaled", scaled))
    }
    assert agree["scaled"] > agree["plain"], agree


# Tensor methods that copy a value to the host: on CUDA each one waits for the GPU to finish.
_HOST_SYNCS = ("item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__")


@pytest.mark.parametrize("objective", ["pgd-at", "trades"])
def test_no_host_sync_per_training_step(objective, tiny_bundle, monkeypatch):
    """The number of host reads in an epoch does not grow with its steps (with the progress read, every
    PROGRESS_EVERY steps, moved past the end): a per-step ``.item()`` / ``.cpu()`` / ``bool(tensor)`` fails this."""
    from torch.utils.data import DataLoader, Subset

    from robust_prune.training import adversarial as training

    counts: dict[str, int] = {}
    for name in _HOST_SYNCS:
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            counts[_name] = counts.get(_name, 0) + 1
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    monkeypatch.setattr(training, "PROGRESS_EVERY", 10**6)
    config = TrainConfig(epochs=1, objective=objective, attack=AttackConfig(eps=0.1, steps=1))
    dataset = tiny_bundle.train.dataset

    def syncs(batches: int) -> dict[str, int]:
        counts.clear()
        loader = DataLoader(Subset(dataset, range(8 * batches)), batch_size=8)
        train(_model(), loader, config=config, progress=False)
        return dict(counts)

    few, many = syncs(2), syncs(6)
    assert sum(few.values()) > 0, "nothing was counted: the patch does not see the loop's reads"
    assert many == few, f"host reads grow with the steps: 2 steps {few}, 6 steps {many}"


def test_a_run_says_its_global_batch_and_lr(tiny_bundle, capsys):
    cfg = TrainConfig(epochs=1, lr=0.03, attack=AttackConfig(eps=0.1, steps=1))
    train(_model(), tiny_bundle.train, config=cfg, stage="pretrain", progress=True)
    assert "pretrain: global batch 32, lr 0.03" in capsys.readouterr().out


def test_a_global_batch_that_does_not_split_over_the_processes_is_refused(tiny_bundle):
    from robust_prune.errors import ConfigError
    from robust_prune.training.adversarial import _global_batch

    cfg = TrainConfig(epochs=1, attack=AttackConfig(eps=0.1, steps=1))
    with pytest.raises(ConfigError, match="batch size 32 is the global batch.*3 processes.*multiple of 3, e.g. 30"):
        _global_batch(tiny_bundle.train, 3, cfg, stage="pretrain", lr=0.05, show=False)
    assert _global_batch(tiny_bundle.train, 2, cfg, stage="pretrain", lr=0.05, show=False)  # 16 each: synchronised
