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
from robust_prune.config import STRUCTURES, RobustifyConfig
from robust_prune.errors import ConfigError
from robust_prune.methods import list_methods
from robust_prune.pruning.importance import list_importances

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
            for importance in list_importances():
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


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


@CUDA
@pytest.mark.slow
@pytest.mark.parametrize(
    ("objective", "precision", "channels_last"),
    [("pgd-at", "bf16", True), ("pgd-at", "fp16", False), ("trades", "bf16", False), ("fgsm-rs", "fp16", True),
     ("trades", "no", False)],
)  # fmt: skip
def test_objectives_and_precisions_train_on_cuda(objective, precision, channels_last, tiny_bundle) -> None:
    torch.manual_seed(0)
    result = rp.robustify("test_resnet", tiny_bundle, method="dense", epochs=2, train_steps=2, eval_steps=2,
                          eval_n=16, objective=objective, mixed_precision=precision, channels_last=channels_last,
                          progress=False)  # fmt: skip
    assert {p.device.type for p in result.model.parameters()} == {"cuda"}
    assert all(torch.isfinite(torch.tensor(h.loss)) for h in result.history)
    assert result.history[-1].loss < result.history[0].loss * 1.5  # trained, not diverged


@CUDA
@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_a_killed_cuda_run_resumes_exactly(precision, tiny_bundle, tmp_path: Path, monkeypatch) -> None:
    """deterministic=True: a run killed after its first epoch's checkpoint and resumed ends with exactly the
    weights of an uninterrupted run (fp16: the GradScaler's scale comes back with the checkpoint)."""
    import robust_prune.training.runner as runner_module

    options = {"method": "dense", "epochs": 2, "train_steps": 2, "eval_steps": 2, "eval_n": 16, "progress": False,
               "mixed_precision": precision, "deterministic": True}  # fmt: skip
    torch.manual_seed(0)
    straight = rp.robustify(timm.create_model("test_resnet", num_classes=10), tiny_bundle, **options)
    original = runner_module.train

    def die_after_first_epoch(*args, on_epoch_end=None, **kwargs):
        def hook(epoch, *rest):
            on_epoch_end(epoch, *rest)
            if epoch == 0:
                raise KeyboardInterrupt

        return original(*args, on_epoch_end=hook, **kwargs)

    monkeypatch.setattr(runner_module, "train", die_after_first_epoch)
    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        rp.robustify(timm.create_model("test_resnet", num_classes=10), tiny_bundle, run_dir=tmp_path, **options)
    monkeypatch.setattr(runner_module, "train", original)
    torch.manual_seed(0)
    resumed = rp.robustify(timm.create_model("test_resnet", num_classes=10), tiny_bundle, resume=tmp_path, **options)
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key


@CUDA
@pytest.mark.slow
def test_a_lottery_with_two_rounds_on_cuda_from_a_model_already_there(tiny_bundle) -> None:
    torch.manual_seed(0)
    model = timm.create_model("test_resnet", num_classes=10).cuda()  # handed in on the GPU
    result = rp.robustify(model, tiny_bundle, method="lottery", rounds=2, epochs=1, finetune_epochs=1,
                          train_steps=1, eval_steps=2, eval_n=16, progress=False)  # fmt: skip
    assert {p.device.type for p in result.model.parameters()} == {"cuda"}
    assert len(result.record.extra["rounds"]) == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for machines without CUDA")
def test_the_gpu_benchmark_refuses_clearly_without_cuda(capsys) -> None:
    from benchmarks.__main__ import main

    assert main(["gpu"]) == 2
    err = capsys.readouterr().err
    assert "needs a CUDA GPU" in err and "torch.cuda.is_available() is False" in err
