"""A real run killed with SIGKILL in the middle of an epoch, resumed, ends with the uninterrupted run's weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

CHILD = Path(__file__).with_name("_robustify_child.py")
ARGS = ["--epochs", "3", "--finetune-epochs", "1", "--n-train", "48", "--n-test", "16", "--eval-attacks", ""]
# method: its options, the stage whose epoch-1 checkpoint is followed by the kill (inside epoch 2), and the
# number of epochs the whole run trains
RUNS = {
    "prune": (["--method", "prune"], "pretrain", 3 + 1),
    "lottery": (["--method", "lottery", "--structure", "weight", "--sparsity", "0.75", "--rounds", "2",
                 "--rewind-epoch", "1"], "round-2", 2 * 3 + 1),  # fmt: skip
    "iwi": (["--method", "iwi", "--grow-epochs", "3"], "grown", 3 + 1 + 3),
}


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _run(*extra: str, cwd: Path) -> None:
    done = subprocess.run([sys.executable, str(CHILD), *ARGS, *extra], env=_env(), cwd=cwd, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]


def _latest_meta(run_dir: Path) -> dict | None:
    pointer = run_dir / "checkpoints" / "LATEST"
    try:
        return json.loads((run_dir / "checkpoints" / pointer.read_text().strip() / "meta.json").read_text())
    except (OSError, ValueError):
        return None


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(RUNS))
def test_sigkill_mid_epoch_then_resume_matches_uninterrupted_run(tmp_path: Path, method: str) -> None:
    options, stage, epochs = RUNS[method]
    run_dir = tmp_path / "run"
    # --delay makes an epoch last ~1 s, so the kill lands inside epoch 2 of the stage
    child = subprocess.Popen(
        [sys.executable, str(CHILD), *ARGS, *options, "--delay", "0.02", "--run-dir", str(run_dir),
         "--weights-dir", str(tmp_path / "killed")],
        env=_env(), cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            meta = _latest_meta(run_dir)
            if meta is not None and meta["stage"] == stage and meta["epoch"] == 1:
                break
            assert child.poll() is None, "the run ended before it could be killed"
            time.sleep(0.02)
        else:
            pytest.fail("no checkpoint after the first epoch")
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    assert not (tmp_path / "killed").exists()
    meta = _latest_meta(run_dir)
    assert (meta["stage"], meta["epoch"]) == (stage, 1), "the kill did not land in epoch 2"

    _run(*options, "--resume", str(run_dir), "--weights-dir", str(tmp_path / "resumed"), cwd=tmp_path)
    _run(*options, "--weights-dir", str(tmp_path / "straight"), cwd=tmp_path)
    resumed = load_file(str(tmp_path / "resumed" / "rank0.safetensors"))
    straight = load_file(str(tmp_path / "straight" / "rank0.safetensors"))
    assert resumed.keys() == straight.keys()
    for key in straight:
        assert torch.equal(resumed[key], straight[key]), key
    resumed_facts = json.loads((tmp_path / "resumed" / "facts-rank0.json").read_text())
    straight_facts = json.loads((tmp_path / "straight" / "facts-rank0.json").read_text())
    assert resumed_facts["train_images"] == straight_facts["train_images"]
    assert straight_facts["train_images"] == [48] * epochs
    leftovers = [p for p in run_dir.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")]
    assert leftovers == []
