"""Every method x structure x importance, end to end at tiny size, on each device this machine has.

``cpu`` runs on machines without a GPU (CI); ``cuda`` runs unchanged wherever ``torch.cuda.is_available()``. On a
GPU machine robustify trains on the GPU, so the ``cpu`` case is skipped there (its path is CI's). Each case checks
that the final model sits on the device it trained on, that its outputs are finite, and that a saved and reloaded
copy gives the same outputs (the reload moved to that device).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch

import robust_prune as rp
from robust_prune import distributed
from robust_prune.config import IMPORTANCES, STRUCTURES, RobustifyConfig
from robust_prune.errors import ConfigError
from robust_prune.methods import list_methods

DEVICES = [
    pytest.param("cpu", marks=pytest.mark.skipif(torch.cuda.is_available(), reason="robustify trains on the GPU here")),
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")),
]


def _cases() -> list[tuple[str, str | None, str | None]]:
    """Every valid (method, structure, importance); dense prunes nothing, so it is one case."""
    cases: list[tuple[str, str | None, str | None]] = []
    for method in list_methods():
        if method == "dense":
            cases.append((method, None, None))
            continue
        for structure in STRUCTURES:
            for importance in IMPORTANCES:
                try:
                    RobustifyConfig.from_dict(
                        {"method": method, "prune": {"structure": structure, "importance": importance}}
                    )
                except ConfigError:
                    continue
                cases.append((method, structure, importance))
    return cases


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("method", "structure", "importance"), _cases(), ids=lambda v: str(v))
def test_every_method_runs_on_the_device(device, method, structure, importance, tiny_bundle, tmp_path: Path) -> None:
    assert distributed.device().type == device
    torch.manual_seed(0)
    model = timm.create_model("test_resnet", num_classes=10)
    options = {} if method == "dense" else {"structure": structure, "importance": importance, "sparsity": 0.5}
    result = rp.robustify(model, tiny_bundle, method=method, epochs=1, finetune_epochs=1, grow_epochs=1,
                          train_steps=1, eval_steps=2, eval_n=16, progress=False, **options)  # fmt: skip
    net = result.model
    assert {p.device.type for p in net.parameters()} == {device}
    assert result.report.latency_device.startswith(device)
    x = next(iter(tiny_bundle.test))[0][:8].to(device)
    with torch.no_grad():
        out = net.eval()(x)
    assert torch.isfinite(out).all()
    result.save_pretrained(tmp_path / "saved")
    again = rp.from_pretrained(tmp_path / "saved").to(device).eval()
    with torch.no_grad():
        torch.testing.assert_close(again(x), out, rtol=1e-4, atol=1e-5)
