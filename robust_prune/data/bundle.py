"""What every source of data becomes: a :class:`DataBundle` of train and test loaders of [0, 1] images, built from
datasets fitted to the model (:class:`FittedDataset`) by :func:`make_loader`. Shared by the named datasets, image
folders (:mod:`robust_prune.data.loading`) and Hugging Face data (:mod:`robust_prune.data.hf_datasets`).

Example:
    >>> import torch
    >>> from torch.utils.data import TensorDataset
    >>> from robust_prune.data.transforms import image_transform
    >>> base = TensorDataset(torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 0, 1]))
    >>> fitted = FittedDataset(base, image_transform("digits", 16, channels=3, train=False, augment=False))
    >>> tuple(next(iter(make_loader(fitted, 2, False, 0, 0, False)))[0].shape)
    (2, 3, 16, 16)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from .transforms import ImageTransform

__all__ = ["DataBundle", "FittedDataset", "make_loader"]


@dataclass
class DataBundle:
    """Train and test loaders plus what the rest of the pipeline needs to know about them.

    ``default_eps`` is the dataset's usual L-inf budget; None for a user's ``(train, test)`` loaders, which carry
    none, so a run on them must be given one (``attack=`` / ``eval_eps=``).
    """

    train: DataLoader
    test: DataLoader
    num_classes: int
    channels: int
    image_size: int
    name: str
    default_eps: float | None
    source: str | None = None
    augment: bool = False
    files: list[dict[str, str]] | None = None

    def spec(self) -> dict[str, Any]:
        """A JSON-able description stored with results (``evaluate DIR`` reads the data back from it); ``files``
        names the dataset files read, with their sha256, where the library read them itself."""
        return {
            "name": self.name,
            "source": self.source,
            "augment": self.augment,
            "num_classes": self.num_classes,
            "channels": self.channels,
            "image_size": self.image_size,
            "train_size": _len(self.train),
            "test_size": _len(self.test),
            "default_eps": self.default_eps,
            **({"files": self.files} if self.files else {}),
        }


def _len(loader: DataLoader) -> int | None:
    try:
        return len(loader.dataset)  # type: ignore[arg-type]
    except TypeError:
        return None


class FittedDataset(Dataset):
    """Another dataset's [0, 1] images through a :class:`~robust_prune.data.transforms.ImageTransform` (resize,
    channels, augmentation)."""

    def __init__(self, base: Dataset, transform: ImageTransform) -> None:
        self.base, self.transform = base, transform

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image, label = self.base[index]
        return self.transform(image), int(label)


def make_loader(
    dataset: Dataset, batch_size: int, shuffle: bool, seed: int, num_workers: int, pin_memory: bool
) -> DataLoader:
    """A DataLoader of ``dataset``; shuffled with its own generator seeded by ``seed`` (so the order of a run does
    not depend on the global RNG)."""
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, num_workers=num_workers,
                      pin_memory=pin_memory, persistent_workers=num_workers > 0)  # fmt: skip
