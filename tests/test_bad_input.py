"""Bad input gets a typed error that says what to do, and nothing is written half (or at all)."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import load_file
from torch.utils.data import DataLoader, TensorDataset

import robust_prune as rp
from robust_prune.cli import main
from robust_prune.errors import (
    CheckpointError,
    ConfigError,
    DatasetError,
    RunDirectoryExistsError,
    RunDirectoryMismatchError,
)
from robust_prune.training.checkpoint import RunDirectory

torch.set_num_threads(1)


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def _latest_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "checkpoints" / (run_dir / "checkpoints" / "LATEST").read_text().strip()
                         / "model.safetensors"))  # fmt: skip


def _loaders(train_x: torch.Tensor, n_test: int = 8) -> tuple[DataLoader, DataLoader]:
    y = torch.arange(len(train_x)) % 10
    test = TensorDataset(torch.rand(n_test, 3, 32, 32), torch.arange(n_test) % 10)
    return DataLoader(TensorDataset(train_x, y), batch_size=16), DataLoader(test, batch_size=8)


def _config(method: str = "dense", epochs: int = 1) -> rp.RobustifyConfig:
    attack = rp.AttackConfig(eps=0.1, steps=1)  # user loaders carry no budget of their own
    return rp.RobustifyConfig(
        method=method, data="loaders", pretrain=rp.TrainConfig(epochs=epochs, attack=attack),
        finetune=rp.TrainConfig(epochs=0, attack=attack), eval_steps=2, eval_attacks=("fgsm",),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("options", "hint"),
    [
        ({"attack": "negative-eps"}, "eps must be >= 0"),
        ({"attack": "zero-steps"}, "steps must be a positive integer"),
        ({"sparsity": 1.0}, "sparsity must be in \\[0, 1\\)"),
        ({"sparsity": -0.1}, "sparsity must be in \\[0, 1\\)"),
        ({"method": "magic"}, "Unknown method 'magic'. Choose one of"),
        ({"structure": "layer"}, "Unknown structure 'layer'. Choose one of"),
        ({"eval_attacks": ("pgd", "deepfool")}, "Unknown attack 'deepfool'. Choose one of"),
        ({"objective": "mixup"}, "Unknown training objective"),
    ],
    ids=lambda v: str(v)[:30],
)
def test_invalid_options_raise_config_error_and_write_nothing(tmp_path: Path, options: dict, hint: str) -> None:
    run_dir = tmp_path / "run"
    with pytest.raises(ConfigError, match=hint):
        if options.get("attack") == "negative-eps":
            options = {"attack": rp.AttackConfig(eps=-0.1)}
        elif options.get("attack") == "zero-steps":
            options = {"attack": rp.AttackConfig(steps=0)}
        rp.robustify("test_resnet", run_dir=run_dir, progress=False, **options)
    assert not run_dir.exists()


@pytest.mark.parametrize(
    ("argv", "hint"),
    [
        (["--sparsity", "1.0"], "sparsity"),
        (["--eps", "-0.5"], "eps"),
        (["--train-steps", "0"], "steps"),
        (["--method", "magic"], "method"),
    ],
)
def test_cli_reports_bad_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], hint: str
) -> None:
    run_dir = tmp_path / "run"
    code = main(["robustify", "--model", "test_resnet", "--run-dir", str(run_dir), "--out", str(tmp_path / "o"), *argv])
    assert code == 2
    assert hint in capsys.readouterr().err
    assert not run_dir.exists() and not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("images", "hint"),
    [
        (torch.rand(16, 3, 32, 16), "square"),
        (torch.rand(16, 32, 32), "shape \\(N, C, H, W\\)"),
        (torch.rand(16, 1, 32, 32), "channels"),
        (torch.rand(16, 3, 32, 32) * 4 - 2, "outside \\[0, 1\\]"),
        (torch.rand(0, 3, 32, 32), "empty"),
    ],
    ids=["not-square", "no-channel-dim", "wrong-channels", "normalised", "empty"],
)
def test_bad_datasets_raise_dataset_error(tmp_path: Path, images: torch.Tensor, hint: str) -> None:
    run_dir = tmp_path / "run"
    with pytest.raises(DatasetError, match=hint):
        rp.robustify(timm.create_model("test_resnet", num_classes=10), _loaders(images), config=_config(),
                     run_dir=run_dir, progress=False)  # fmt: skip
    assert not run_dir.exists()


def test_resume_into_another_configuration(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    RunDirectory(run_dir, _config(method="dense")).start()
    before = _files(run_dir)
    with pytest.raises(RunDirectoryMismatchError, match="different configuration.*method"):
        rp.robustify(timm.create_model("test_resnet", num_classes=10), _loaders(torch.rand(16, 3, 32, 32)),
                     config=_config(method="prune"), resume=run_dir, progress=False)  # fmt: skip
    assert _files(run_dir) == before


def test_resume_of_a_folder_that_is_not_ours(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "weights.bin").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="not a robust_prune run directory"):
        rp.robustify(timm.create_model("test_resnet", num_classes=10), _loaders(torch.rand(16, 3, 32, 32)),
                     config=_config(), resume=foreign, progress=False)  # fmt: skip
    assert _files(foreign) == ["weights.bin"]
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        rp.robustify(timm.create_model("test_resnet", num_classes=10), _loaders(torch.rand(16, 3, 32, 32)),
                     config=_config(), run_dir=a_file, progress=False)  # fmt: skip


@pytest.mark.parametrize("damage", ["truncated", "corrupted"])
def test_resume_from_a_damaged_checkpoint(tmp_path: Path, damage: str) -> None:
    run_dir = tmp_path / "run"
    data = _loaders(torch.rand(16, 3, 32, 32))
    torch.manual_seed(0)
    rp.robustify(timm.create_model("test_resnet", num_classes=10), data, config=_config(), run_dir=run_dir,
                 progress=False)  # fmt: skip
    latest = run_dir / "checkpoints" / (run_dir / "checkpoints" / "LATEST").read_text().strip()
    weights = latest / "model.safetensors"
    blob = weights.read_bytes()
    weights.write_bytes(blob[: len(blob) // 3] if damage == "truncated" else b"garbage" + blob[7:])
    before = _files(run_dir)
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        rp.robustify(timm.create_model("test_resnet", num_classes=10), data, config=_config(), resume=run_dir,
                     progress=False)  # fmt: skip
    assert _files(run_dir) == before


def test_starting_again_in_a_run_directory_keeps_its_checkpoints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "run"
    data = _loaders(torch.rand(16, 3, 32, 32))
    rp.robustify(timm.create_model("test_resnet", num_classes=10), data, config=_config(), run_dir=run_dir,
                 progress=False)  # fmt: skip
    before = _files(run_dir)
    assert any(name.startswith("checkpoints/0") for name in before)
    with pytest.raises(RunDirectoryExistsError, match="--resume.*--overwrite"):
        rp.robustify(timm.create_model("test_resnet", num_classes=10), data, config=_config(), run_dir=run_dir,
                     progress=False)  # fmt: skip
    assert _files(run_dir) == before
    old = _latest_weights(run_dir)
    torch.manual_seed(1)  # another start: the new run's checkpoints cannot be the old ones by chance
    again = rp.robustify(timm.create_model("test_resnet", num_classes=10), data, config=_config(), run_dir=run_dir,
                         progress=False, overwrite=True)  # fmt: skip
    assert _files(run_dir) == before  # the same layout...
    new = _latest_weights(run_dir)
    assert not torch.equal(new["model.fc.weight"], old["model.fc.weight"])  # ...holding the new run's weights
    assert all(torch.equal(new[k], v) for k, v in again.model.state_dict().items())

    argv = ["robustify", "--model", "test_resnet", "--method", "dense", "--epochs", "0", "--eval-n", "8",
            "--eval-steps", "1", "--no-progress", "--run-dir", str(tmp_path / "cli"), "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    checkpoints = _files(tmp_path / "cli")
    assert main(argv) == 2
    assert "--resume" in capsys.readouterr().err and _files(tmp_path / "cli") == checkpoints
    assert main([*argv, "--overwrite"]) == 0
