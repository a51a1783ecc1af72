"""``deterministic=True``: the run trains under PyTorch's deterministic settings, which are put back afterwards."""

from __future__ import annotations

import os

import pytest
import torch

import robust_prune as rp
import robust_prune.training.adversarial as training


@pytest.mark.parametrize("flag", [True, False])
def test_robustify_trains_under_the_deterministic_settings_only_when_asked(flag, tiny_bundle, monkeypatch) -> None:
    seen = []
    original = training.train

    def spy(*args, **kwargs):
        seen.append((torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic,
                     torch.backends.cudnn.benchmark, os.environ.get("CUBLAS_WORKSPACE_CONFIG")))  # fmt: skip
        return original(*args, **kwargs)

    monkeypatch.setattr("robust_prune.training.runner.train", spy)
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic)
    rp.robustify("test_resnet", (tiny_bundle.train, tiny_bundle.test), method="dense", epochs=1, eps=0.1,
                 train_steps=1, eval_steps=2, eval_n=16, deterministic=flag, progress=False)  # fmt: skip
    expected = (True, True, False, ":4096:8") if flag else (before[0], before[1], torch.backends.cudnn.benchmark, None)
    assert seen == [expected]
    assert (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.deterministic) == before
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
