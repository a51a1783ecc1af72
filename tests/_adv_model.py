"""A small adversarially trained model shared by the evaluation, attack and diagnostics tests (trained once)."""

from __future__ import annotations

import functools

import torch
from torch import nn

from robust_prune.api import prepare
from robust_prune.config import AttackConfig, TrainConfig
from robust_prune.data.loading import DataBundle
from robust_prune.distributed import model_device
from robust_prune.training.adversarial import train

EPS = 0.1


@functools.cache
def adversarially_trained() -> tuple[nn.Module, DataBundle]:
    """timm test_resnet, PGD-AT on the embedded digits (eps 0.1, 5 steps), 3 epochs at one thread; eval mode.

    About 25 s of CPU: clean ~95%, PGD-20 ~35% on the first 64 test points. It stays where train() left it (the
    GPU when there is one; evaluate() keeps a model on its own device), and :func:`digits_points` are put there.
    """
    torch.set_num_threads(1)
    state = torch.get_rng_state()
    torch.manual_seed(0)
    model, bundle = prepare("test_resnet", "digits", batch_size=64, seed=0)
    config = TrainConfig(epochs=3, lr=0.05, attack=AttackConfig(eps=EPS, steps=5))
    train(model, bundle.train, config=config, progress=False)
    torch.set_rng_state(state)
    return model.eval(), bundle


def digits_points(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` test images and labels of the digits bundle, on the shared model's device."""
    model, bundle = adversarially_trained()
    xs, ys = [], []
    for x, y in bundle.test:
        xs.append(x)
        ys.append(y)
        if sum(len(b) for b in ys) >= n:
            break
    device = model_device(model)
    return torch.cat(xs)[:n].to(device), torch.cat(ys)[:n].to(device)
