"""A small copy of a dataset of the MNIST family in its official layout (four IDX files), holding the real
scikit-learn digits at MNIST's 28 px: what the IDX tests and the Fashion-MNIST benchmark test read."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from robust_prune.data.catalog import IDX_FILES
from robust_prune.data.idx import write_idx

__all__ = ["digits_28", "official_copy"]


def digits_28() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16
    images = torch.nn.functional.interpolate(images, size=(28, 28), mode="bilinear", align_corners=False)
    return (images[:, 0] * 255).round().to(torch.uint8).numpy(), digits.target.astype(np.uint8)


def official_copy(folder: Path, *, gz: bool = True, train: int = 300, test: int = 100) -> Path:
    """The four official files (``.gz`` as distributed, or not) holding real digits at 28 px."""
    pixels, labels = digits_28()
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    arrays = {"train_images": pixels[:train], "train_labels": labels[:train],
              "test_images": pixels[train:train + test], "test_labels": labels[train:train + test]}  # fmt: skip
    for role, array in arrays.items():
        write_idx(folder / f"{IDX_FILES[role]}{suffix}", array)
    return folder
