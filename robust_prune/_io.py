"""Atomic file writes: a temp file in the same folder, then ``os.replace``; a crash leaves no half file."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file


def _atomic(path: Path, write: Callable[[str], None]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    return _atomic(Path(path), write)


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_safetensors(
    path: str | os.PathLike[str], tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None
) -> Path:
    # safetensors refuses shared or non-contiguous storage: store independent contiguous copies.
    flat = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    return _atomic(Path(path), lambda tmp: save_file(flat, tmp, metadata=metadata))


def save_torch(path: str | os.PathLike[str], obj: Any) -> Path:
    """``torch.save`` for the project's own checkpoints (plain tensors and containers; read with weights_only=True)."""
    return _atomic(Path(path), lambda tmp: torch.save(obj, tmp))
