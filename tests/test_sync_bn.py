"""Synchronised BatchNorm (robust_prune.training.sync_bn) against torch's own batch norm, in a one-process gloo group:
the same outputs, input and parameter gradients and running statistics, for plain and timm BatchNorm layers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from timm.layers import BatchNormAct2d
from torch import nn

from robust_prune.training.sync_bn import synced_batchnorm, use_sync_bn


@pytest.fixture
def one_process_group(tmp_path: Path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


@pytest.mark.parametrize("make", [lambda: nn.BatchNorm2d(3), lambda: BatchNormAct2d(3, act_layer=nn.ReLU)])
def test_synced_batch_norm_matches_torchs_on_one_process(make, one_process_group) -> None:
    torch.manual_seed(0)
    reference, synced = make().train(), make().train()
    with torch.no_grad():
        for bn in (reference, synced):
            bn.weight.copy_(torch.tensor([0.5, 1.0, 2.0]))
            bn.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    x = torch.randn(6, 3, 5, 5) * 3 + 1
    outputs, grads = [], []
    for bn, sync in ((reference, False), (synced, True)):
        xi = x.clone().requires_grad_(True)
        with synced_batchnorm(sync):
            out = bn(xi)
        (out * torch.linspace(-1, 1, out.numel()).view(out.shape)).sum().backward()
        outputs.append(out.detach())
        grads.append((xi.grad, bn.weight.grad, bn.bias.grad))
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-5, atol=1e-5)
    for a, b in zip(grads[1], grads[0]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(synced.running_mean, reference.running_mean)
    torch.testing.assert_close(synced.running_var, reference.running_var)
    assert not torch.equal(reference.running_var, torch.ones(3))  # updated: the comparison above means something
    with synced_batchnorm(True):  # eval mode: the running statistics, untouched
        torch.testing.assert_close(synced.eval()(x), reference.eval()(x))


def test_sync_bn_is_automatic_below_the_threshold_on_several_processes() -> None:
    assert use_sync_bn(None, per_process_batch=32, processes=2)
    assert not use_sync_bn(None, per_process_batch=64, processes=2)
    assert not use_sync_bn(True, per_process_batch=8, processes=1)  # nothing to synchronise with
    assert not use_sync_bn(False, per_process_batch=8, processes=4)
