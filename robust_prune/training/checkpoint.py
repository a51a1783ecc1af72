"""The run directory's format: ``run.json`` and one folder per checkpoint, written so that a kill leaves the last
complete checkpoint readable. :mod:`robust_prune.training.runner` decides when to write and how to resume.

A run directory holds ``run.json`` (the configuration and its fingerprint) and ``checkpoints/``, one
folder per checkpoint: ``model.safetensors`` (weights), ``masks.safetensors`` (weight masks, if
any), ``kept-NAME.safetensors`` (tensor sets a method keeps across a resume, e.g. a lottery ticket's rewind
point), ``state.pt`` (optimizer, scheduler, fp16 gradient scaler and RNG states: plain tensors, read with
``torch.load(weights_only=True)``) and ``meta.json`` (stage, epoch, finished stages, per-stage
history, small JSON facts and the pruning record that rebuilds a pruned architecture). A checkpoint folder is
written under a temporary name and renamed when complete; ``checkpoints/LATEST`` names the newest one and
is replaced atomically, so a run killed at any moment (even with SIGKILL) leaves the last complete
checkpoint readable. Only the main process writes.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from .. import distributed
from ..atomic import remove_temporaries, save_torch, temp_name, write_json, write_safetensors, write_text
from ..errors import CheckpointError, ConfigError, RunDirectoryExistsError, RunDirectoryMismatchError

__all__ = ["Checkpoint", "RunDirectory", "config_fingerprint", "rng_state", "set_rng_state"]

RUN_FORMAT = "robust_prune.run"
RUN_VERSION = 1
RUN_FILE = "run.json"
LATEST = "LATEST"


def config_fingerprint(config: Any, identity: Mapping[str, Any] | None = None) -> str:
    """A short hash of a configuration (a config dataclass or a JSON-able mapping) and identity facts.

    Example:
        >>> from robust_prune import RobustifyConfig
        >>> config_fingerprint(RobustifyConfig()) == config_fingerprint(RobustifyConfig())
        True
    """
    data = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    text = json.dumps({"config": data, "identity": dict(identity or {})}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def rng_state() -> dict[str, Any]:
    """The global RNG states (torch CPU, CUDA, Python's ``random``) as weights_only-loadable data."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(state["torch"])
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():  # a resume that sees fewer GPUs restores the ones it has
        for index, device_state in enumerate(list(state["cuda"])[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(device_state, index)


@dataclass
class Checkpoint:
    """One saved point of a run (see the module docstring for the files)."""

    path: Path
    stage: str
    epoch: int
    stage_finished: bool
    finished: list[str] = field(default_factory=list)
    histories: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    record: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def model_state(self) -> dict[str, torch.Tensor]:
        """The saved weights (a safetensors file)."""
        return _load_safetensors(self.path / "model.safetensors")

    def masks(self) -> dict[str, torch.Tensor]:
        """Saved weight masks (empty when none were saved)."""
        path = self.path / "masks.safetensors"
        return {k: v.bool() for k, v in _load_safetensors(path).items()} if path.is_file() else {}

    def kept(self) -> dict[str, dict[str, torch.Tensor]]:
        """The tensor sets a method kept across a resume, by name."""
        prefix, suffix = "kept-", ".safetensors"
        return {
            path.name[len(prefix) : -len(suffix)]: _load_safetensors(path)
            for path in sorted(self.path.glob(f"{prefix}*{suffix}"))
        }

    def train_state(self) -> dict[str, Any]:
        """Optimizer, scheduler, gradient scaler (fp16 only) and RNG states, loaded with ``weights_only=True``."""
        path = self.path / "state.pt"
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError as exc:
            raise CheckpointError(f"{path} is missing; the checkpoint is incomplete. Start the run again.") from exc
        except Exception as exc:  # noqa: BLE001 - torch raises many kinds for corrupt or foreign files
            raise CheckpointError(
                f"{path} is not a robust_prune checkpoint or is corrupt/truncated ({type(exc).__name__}: {exc}). "
                "Delete the run directory and start again."
            ) from exc
        if not isinstance(state, dict) or "rng" not in state:
            raise CheckpointError(f"{path} was not written by robust_prune (no RNG state). Start the run again.")
        return state


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except FileNotFoundError as exc:
        raise CheckpointError(f"{path} is missing; the checkpoint is incomplete. Start the run again.") from exc
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path} is not a readable safetensors file ({exc}); it is corrupt or truncated. Start the run again."
        ) from exc


class RunDirectory:
    """The folder of one run: its configuration fingerprint and its checkpoints.

    Args:
        path: the run directory.
        config: the run's configuration (a config dataclass or JSON-able mapping).
        resume: continue the run in ``path`` (it must hold a run of the same configuration).
        identity: extra facts that must match on resume (model architecture, data).
        overwrite: on a fresh start, discard the checkpoints (and the run) ``path`` already holds. Without it, a
            fresh start never deletes anything.

    Raises:
        CheckpointError: ``resume`` and ``path`` holds no run, or ``path`` is not a run directory.
        RunDirectoryExistsError: a fresh start (no ``resume``, no ``overwrite``) in a folder holding checkpoints.
        RunDirectoryMismatchError: ``path`` holds a run of another configuration.
        ConfigError: both ``resume`` and ``overwrite``.

    Example:
        >>> from robust_prune import RobustifyConfig
        >>> run_dir = RunDirectory("runs/r1", RobustifyConfig(method="dense"))
        >>> run_dir.latest() is None
        True
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        config: Any,
        *,
        resume: bool = False,
        identity: Mapping[str, Any] | None = None,
        overwrite: bool = False,
    ) -> None:
        self.path = Path(path)
        self.config = config.to_dict() if hasattr(config, "to_dict") else dict(config)
        self.identity = dict(identity or {})
        self.fingerprint = config_fingerprint(self.config, self.identity)
        self.resume = resume
        self.overwrite = overwrite
        if resume and overwrite:
            raise ConfigError("resume and overwrite contradict each other: continue the run, or discard it.")
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"The run directory {self.path} is a file. Pass a folder path.")
        existing = self._read_run_file()
        if resume and existing is None:
            raise CheckpointError(
                f"There is no run to resume in {self.path} (no {RUN_FILE}). Start it without --resume / resume=."
            )
        if existing is not None and existing.get("fingerprint") != self.fingerprint and not overwrite:
            raise RunDirectoryMismatchError(
                f"{self.path} holds a run with a different configuration (fingerprint {existing.get('fingerprint')}, "
                f"this one {self.fingerprint}); differing settings: {_diff(existing, self.config, self.identity)}. "
                "Resume with the same options, choose another run directory, or discard that run with --overwrite "
                "(overwrite=True)."
            )
        if not resume and not overwrite and self._holds_checkpoints():
            raise RunDirectoryExistsError(
                f"{self.path} already holds checkpoints of a run. Continue it with --resume {self.path} "
                "(resume=True), discard them with --overwrite (overwrite=True), or choose another run directory."
            )
        self._latest = self._read_latest() if resume else None

    def _holds_checkpoints(self) -> bool:
        """Whether a complete checkpoint (or the pointer to one) is stored (a dead write's temp folder is not one)."""
        if not self.checkpoints.is_dir():
            return False
        return any(p.name == LATEST or p.name.isdigit() for p in self.checkpoints.iterdir())

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def _read_run_file(self) -> dict[str, Any] | None:
        run_file = self.path / RUN_FILE
        if not run_file.is_file():
            if self.resume and self.path.is_dir() and any(self.path.iterdir()):
                raise CheckpointError(
                    f"{self.path} is not a robust_prune run directory (no {RUN_FILE}). Pass the folder given to "
                    "--run-dir / run_dir= of the run you want to continue."
                )
            return None
        try:
            data = json.loads(run_file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{run_file} is not valid JSON ({exc}); the run directory is corrupt.") from exc
        if not isinstance(data, dict) or data.get("format") != RUN_FORMAT:
            raise CheckpointError(f"{run_file} was not written by robust_prune. Choose another run directory.")
        if int(data.get("version", 1)) > RUN_VERSION:
            raise CheckpointError(f"{run_file} has version {data['version']}; upgrade robust_prune to resume it.")
        return data

    def _read_latest(self) -> Checkpoint | None:
        pointer = self.checkpoints / LATEST
        if not pointer.is_file():
            return None
        name = pointer.read_text(encoding="utf-8").strip()
        folder = self.checkpoints / name
        meta_path = folder / "meta.json"
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            return Checkpoint(
                path=folder,
                stage=str(meta["stage"]),
                epoch=int(meta["epoch"]),
                stage_finished=bool(meta["stage_finished"]),
                finished=list(meta.get("finished", [])),
                histories=dict(meta.get("histories", {})),
                record=meta.get("record"),
                extra=dict(meta.get("extra", {})),
            )
        except FileNotFoundError as exc:
            raise CheckpointError(f"The latest checkpoint {folder} is missing; the run directory is damaged.") from exc
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(f"{meta_path} is corrupt or not ours ({exc}). Start the run again.") from exc

    def latest(self) -> Checkpoint | None:
        """The checkpoint a resumed run continues from (None on a fresh start)."""
        return self._latest

    def start(self) -> None:
        """Write ``run.json`` and clear leftovers (main process only). Call once the inputs are validated.

        Checkpoints are deleted only on a fresh start with ``overwrite=True`` (without it, the constructor refused).
        """
        if not distributed.is_main_process():
            return
        self.path.mkdir(parents=True, exist_ok=True)
        if self.checkpoints.is_dir():
            remove_temporaries(self.checkpoints)
            if not self.resume and self.overwrite:  # asked for: forget the old run's checkpoints
                shutil.rmtree(self.checkpoints)
        remove_temporaries(self.path)
        payload = {"format": RUN_FORMAT, "version": RUN_VERSION, "fingerprint": self.fingerprint}
        write_json(self.path / RUN_FILE, {**payload, "config": self.config, "identity": self.identity})

    def save(
        self,
        *,
        stage: str,
        epoch: int,
        stage_finished: bool,
        finished: list[str],
        histories: Mapping[str, list[dict[str, Any]]],
        model: nn.Module,
        record: Any = None,
        optimizer: Any = None,
        scheduler: Any = None,
        scaler: Any = None,
        extra: Mapping[str, Any] | None = None,
        kept: Mapping[str, Mapping[str, torch.Tensor]] | None = None,
    ) -> None:
        """Write one checkpoint atomically (main process only) and drop the older ones."""
        if not distributed.is_main_process():
            return
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        numbers = [int(p.name) for p in self.checkpoints.iterdir() if p.name.isdigit()]
        name = f"{max(numbers, default=0) + 1:06d}"
        tmp = self.checkpoints / temp_name(name)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        masks = dict(getattr(record, "masks", {}) or {})
        write_safetensors(tmp / "model.safetensors", model.state_dict(), metadata={"format": "pt"})
        if masks:
            write_safetensors(tmp / "masks.safetensors", {k: v.to(torch.uint8) for k, v in masks.items()})
        for kept_name, tensors in (kept or {}).items():
            write_safetensors(tmp / f"kept-{kept_name}.safetensors", dict(tensors))
        state: dict[str, Any] = {"rng": rng_state()}
        if optimizer is not None:
            state["optimizer"] = optimizer.state_dict()
        if scheduler is not None:
            state["scheduler"] = scheduler.state_dict()
        if scaler is not None and scaler.is_enabled():  # fp16: the loss scale and its growth tracker
            state["scaler"] = scaler.state_dict()
        save_torch(tmp / "state.pt", state)
        meta = {
            "stage": stage,
            "epoch": epoch,
            "stage_finished": stage_finished,
            "finished": list(finished),
            "histories": {k: list(v) for k, v in histories.items()},
            "record": record.to_dict() if hasattr(record, "to_dict") else record,
            "extra": dict(extra or {}),
        }
        write_json(tmp / "meta.json", meta)
        os.replace(tmp, self.checkpoints / name)
        write_text(self.checkpoints / LATEST, name + "\n")
        for number in numbers:
            shutil.rmtree(self.checkpoints / f"{number:06d}", ignore_errors=True)


def _diff(existing: Mapping[str, Any], config: Mapping[str, Any], identity: Mapping[str, Any]) -> str:
    def flat(data: Any, prefix: str = "") -> dict[str, Any]:
        if isinstance(data, Mapping):
            out: dict[str, Any] = {}
            for key, value in data.items():
                out.update(flat(value, f"{prefix}{key}."))
            return out
        return {prefix.rstrip("."): data}

    old = flat({"config": existing.get("config", {}), "identity": existing.get("identity", {})})
    new = flat({"config": config, "identity": identity})
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys[:6]) or "unknown"
