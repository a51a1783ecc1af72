"""Run directories and checkpoints: atomic layout, resume points, NaN handling, typed errors on damaged files."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import robust_prune.training.adversarial as training
import robust_prune.training.runner as runner_module
from robust_prune import AttackConfig, RobustifyConfig, TrainConfig
from robust_prune.atomic import temp_name
from robust_prune.errors import (
    CheckpointError,
    ConfigError,
    RunDirectoryExistsError,
    RunDirectoryMismatchError,
    TrainingDivergedError,
)
from robust_prune.training.checkpoint import RunDirectory, config_fingerprint
from robust_prune.training.runner import StageRunner

torch.set_num_threads(1)


def _tiny() -> tuple[nn.Module, DataLoader]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 10))
    x = torch.rand(24, 3, 4, 4)
    y = torch.arange(24) % 10
    loader = DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(0))
    return model, loader


def _config(epochs: int = 3, lr: float = 0.1) -> TrainConfig:
    return TrainConfig(epochs=epochs, objective="clean", attack=AttackConfig(eps=0.0, steps=1), lr=lr)


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _runner(run_dir: RunDirectory | None) -> StageRunner:
    if run_dir is not None:
        run_dir.start()
    return StageRunner(run_dir)


def _train_stage(run_dir: RunDirectory | None, model: nn.Module, loader: DataLoader, config: TrainConfig) -> list:
    run = _runner(run_dir)
    return run.train(model, loader, stage="pretrain", config=config, eps=0.0, seed=0, progress=False)


def _die_after_epoch(monkeypatch: pytest.MonkeyPatch, last: int) -> None:
    """Make the runner's train() stop (KeyboardInterrupt) right after epoch ``last`` (0-based) was checkpointed."""
    original = runner_module.train

    def train_then_die(*args: Any, on_epoch_end: Any = None, **kwargs: Any) -> Any:
        def hook(epoch: int, *rest: Any) -> None:
            on_epoch_end(epoch, *rest)
            if epoch == last:
                raise KeyboardInterrupt

        return original(*args, on_epoch_end=hook, **kwargs)

    monkeypatch.setattr(runner_module, "train", train_then_die)


def test_layout_and_latest_checkpoint(tmp_path: Path) -> None:
    model, loader = _tiny()
    run_dir = RunDirectory(tmp_path / "run", RobustifyConfig(method="dense"))
    history = _train_stage(run_dir, model, loader, _config())
    assert [h.epoch for h in history] == [1, 2, 3]
    files = _files(tmp_path / "run")
    assert files == ["checkpoints/000003/meta.json", "checkpoints/000003/model.safetensors",
                     "checkpoints/000003/state.pt", "checkpoints/LATEST", "run.json"]  # fmt: skip
    latest = RunDirectory(tmp_path / "run", RobustifyConfig(method="dense"), resume=True).latest()
    assert latest is not None and latest.stage == "pretrain" and latest.stage_finished
    assert torch.equal(latest.model_state()["1.weight"], model[1].weight.detach())
    assert set(latest.train_state()) >= {"rng"}


def test_resume_from_an_epoch_matches_an_uninterrupted_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, loader = _tiny()
    straight = _train_stage(None, model, loader, _config(epochs=3))
    expected = {k: v.clone() for k, v in model.state_dict().items()}

    _die_after_epoch(monkeypatch, last=1)  # a run that dies right after its epoch-2 checkpoint
    model, loader = _tiny()
    config = RobustifyConfig(method="dense")
    with pytest.raises(KeyboardInterrupt):
        _train_stage(RunDirectory(tmp_path / "run", config), model, loader, _config(epochs=3))
    monkeypatch.setattr(runner_module, "train", training.train)

    model, loader = _tiny()
    resumed_dir = RunDirectory(tmp_path / "run", config, resume=True)
    assert resumed_dir.latest().epoch == 2
    history = _train_stage(resumed_dir, model, loader, _config(epochs=3))
    assert [h.epoch for h in history] == [1, 2, 3]
    assert [round(h.loss, 6) for h in history] == [round(h.loss, 6) for h in straight]
    for key, value in model.state_dict().items():
        assert torch.equal(value, expected[key]), key


def test_fp16_resume_continues_at_the_saved_loss_scale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The GradScaler's state goes into the checkpoint and comes back on resume: a resumed fp16 run is exact.

    fp16 autocast and GradScaler run on the CPU here (train() refuses fp16 without CUDA; the check is lifted for the
    test). Large inputs overflow fp16 gradients at the initial scale 2**16, so the scale halves during the first
    epochs: a resume that restarted at 2**16 would skip steps and end elsewhere.
    """
    monkeypatch.setattr(training, "check_precision", lambda *a, **k: None)

    def tiny() -> tuple[nn.Module, DataLoader]:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 10))
        with torch.no_grad():
            model[1].weight *= 200  # large logits, so fp16 gradients overflow and the loss scale moves
        x, y = torch.rand(24, 3, 4, 4), torch.arange(24) % 10  # images in [0, 1], as train() requires
        return model, DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True,
                                 generator=torch.Generator().manual_seed(0))  # fmt: skip

    config = dataclasses.replace(_config(epochs=3, lr=1e-4), mixed_precision="fp16")
    model, loader = tiny()
    _train_stage(None, model, loader, config)
    expected = {k: v.clone() for k, v in model.state_dict().items()}

    _die_after_epoch(monkeypatch, last=1)
    run_config = RobustifyConfig(method="dense")
    with pytest.raises(KeyboardInterrupt):
        _train_stage(RunDirectory(tmp_path / "run", run_config), *tiny(), config)
    monkeypatch.setattr(runner_module, "train", training.train)
    resumed = RunDirectory(tmp_path / "run", run_config, resume=True)
    saved = resumed.latest().train_state()["scaler"]
    assert saved["scale"] < 2.0**16, saved  # the scale moved: the comparison below can tell a reset
    model, loader = tiny()
    _train_stage(resumed, model, loader, config)
    for key, value in model.state_dict().items():
        assert torch.equal(value, expected[key]), key


def test_finished_stage_is_skipped_with_its_history(tmp_path: Path) -> None:
    model, loader = _tiny()
    config = RobustifyConfig(method="dense")
    first = _train_stage(RunDirectory(tmp_path / "run", config), model, loader, _config())
    model2, loader2 = _tiny()
    again = _train_stage(RunDirectory(tmp_path / "run", config, resume=True), model2, loader2, _config())
    assert [h.to_dict() for h in again] == [h.to_dict() for h in first]
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), model2.state_dict().values()))


def test_nan_loss_names_stage_epoch_batch_and_keeps_last_good_checkpoint(tmp_path: Path) -> None:
    model, loader = _tiny()
    loader = DataLoader(loader.dataset, batch_size=24)  # one batch per epoch
    run_dir = RunDirectory(tmp_path / "run", RobustifyConfig(method="dense"))
    with pytest.raises(TrainingDivergedError, match=r"pretrain.*epoch \d.*batch 1.*learning rate.*eps") as info:
        _train_stage(run_dir, model, loader, _config(epochs=4, lr=1e30))
    failed_epoch = int(re.search(r"epoch (\d)", str(info.value)).group(1))
    assert failed_epoch > 1
    latest = RunDirectory(tmp_path / "run", RobustifyConfig(method="dense"), resume=True).latest()
    assert latest is not None and latest.epoch == failed_epoch - 1 and not latest.stage_finished
    assert torch.isfinite(latest.model_state()["1.weight"]).all()
    assert not [p for p in (tmp_path / "run").rglob("*") if p.name.startswith(".")]


def test_resume_into_other_configuration_is_refused(tmp_path: Path) -> None:
    RunDirectory(tmp_path / "run", RobustifyConfig(method="dense")).start()
    before = _files(tmp_path / "run")
    with pytest.raises(RunDirectoryMismatchError, match="method"):
        RunDirectory(tmp_path / "run", RobustifyConfig(method="prune"), resume=True)
    with pytest.raises(RunDirectoryMismatchError):
        RunDirectory(tmp_path / "run", RobustifyConfig(method="dense"), resume=True, identity={"model": "x"})
    assert _files(tmp_path / "run") == before


def test_resume_without_a_run(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="no run to resume"):
        RunDirectory(tmp_path / "missing", RobustifyConfig(), resume=True)
    assert not (tmp_path / "missing").exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("hello")
    with pytest.raises(CheckpointError, match="not a robust_prune run directory"):
        RunDirectory(foreign, RobustifyConfig(), resume=True)
    (foreign / "run.json").write_text(json.dumps({"something": "else"}))
    with pytest.raises(CheckpointError, match="not written by robust_prune"):
        RunDirectory(foreign, RobustifyConfig(), resume=True)
    (foreign / "run.json").write_text("{ truncated")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        RunDirectory(foreign, RobustifyConfig(), resume=True)
    assert _files(foreign) == ["notes.txt", "run.json"]


@pytest.mark.parametrize("damage", ["truncate-weights", "garbage-state", "foreign-state", "delete-meta", "bad-meta"])
def test_damaged_checkpoint_raises_checkpoint_error(tmp_path: Path, damage: str) -> None:
    model, loader = _tiny()
    config = RobustifyConfig(method="dense")
    _train_stage(RunDirectory(tmp_path / "run", config), model, loader, _config(epochs=1))
    folder = tmp_path / "run" / "checkpoints" / "000001"
    if damage == "truncate-weights":
        data = (folder / "model.safetensors").read_bytes()
        (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    elif damage == "garbage-state":
        (folder / "state.pt").write_bytes(b"\x00not a checkpoint" * 10)
    elif damage == "foreign-state":
        torch.save({"something": torch.zeros(2)}, folder / "state.pt")
    elif damage == "delete-meta":
        (folder / "meta.json").unlink()
    else:
        (folder / "meta.json").write_text("[1, 2")
    before = _files(tmp_path / "run")
    with pytest.raises(CheckpointError):
        run_dir = RunDirectory(tmp_path / "run", config, resume=True)
        model2, loader2 = _tiny()
        _runner(run_dir).restore(model2)
    assert _files(tmp_path / "run") == before


def test_weights_of_another_model_are_refused(tmp_path: Path) -> None:
    model, loader = _tiny()
    config = RobustifyConfig(method="dense")
    _train_stage(RunDirectory(tmp_path / "run", config), model, loader, _config(epochs=1))
    run = _runner(RunDirectory(tmp_path / "run", config, resume=True))
    with pytest.raises(CheckpointError):
        run.restore(nn.Sequential(nn.Flatten(), nn.Linear(5, 10)))


def test_no_run_directory_is_a_no_op(tmp_path: Path) -> None:
    model, loader = _tiny()
    run = StageRunner(None)
    assert not run.enabled
    assert run.restore(model) is None and run.needs("anything")
    history = run.train(model, loader, stage="s", config=_config(epochs=1), eps=0.0, progress=False)
    assert len(history) == 1
    run.finish_stage("s", model)
    assert not run.needs("s")


def test_fingerprint_depends_on_config_and_identity() -> None:
    a = config_fingerprint(RobustifyConfig(seed=1))
    assert a == config_fingerprint(RobustifyConfig(seed=1))
    assert a != config_fingerprint(RobustifyConfig(seed=2))
    assert a != config_fingerprint(RobustifyConfig(seed=1), {"model": "resnet18"})


def test_a_fresh_start_deletes_nothing_unless_asked(tmp_path: Path) -> None:
    model, loader = _tiny()
    config = RobustifyConfig(method="dense")
    _train_stage(RunDirectory(tmp_path / "run", config), model, loader, _config(epochs=1))
    before = {path: (tmp_path / "run" / path).read_bytes() for path in _files(tmp_path / "run")}
    with pytest.raises(RunDirectoryExistsError, match="--resume.*--overwrite"):
        RunDirectory(tmp_path / "run", config)  # the same configuration, started again
    with pytest.raises(RunDirectoryMismatchError, match="--overwrite"):
        RunDirectory(tmp_path / "run", RobustifyConfig(method="prune"))
    with pytest.raises(ConfigError, match="contradict"):
        RunDirectory(tmp_path / "run", config, resume=True, overwrite=True)
    assert {path: (tmp_path / "run" / path).read_bytes() for path in _files(tmp_path / "run")} == before

    fresh = RunDirectory(tmp_path / "run", RobustifyConfig(method="prune"), overwrite=True)
    fresh.start()
    assert _files(tmp_path / "run") == ["run.json"]
    assert json.loads((tmp_path / "run" / "run.json").read_text())["fingerprint"] == fresh.fingerprint
    RunDirectory(tmp_path / "run", RobustifyConfig(method="prune")).start()  # no checkpoint left: a plain start


def test_a_fresh_start_removes_only_the_library_s_own_temporaries(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    mine = [run / ".notes.tmp", run / "checkpoints" / ".notes.tmp"]
    for path in mine:
        path.write_text("a user's own notes")
    (run / ".cache.tmp").mkdir()  # a user's folder named like a temporary file
    (run / ".cache.tmp" / "data.txt").write_text("kept")
    ours = [run / temp_name("run.json.abc123"), run / "checkpoints" / temp_name("000001")]
    ours[0].write_text("{half")
    ours[1].mkdir()  # an interrupted checkpoint is a folder
    (ours[1] / "model.safetensors").write_bytes(b"half")
    RunDirectory(run, RobustifyConfig(method="dense")).start()
    assert all(p.read_text() == "a user's own notes" for p in mine)
    assert (run / ".cache.tmp" / "data.txt").read_text() == "kept"
    assert not any(p.exists() for p in ours)
    assert (run / "run.json").is_file()
