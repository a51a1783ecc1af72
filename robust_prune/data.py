"""Datasets in [0, 1] pixel space, with channels and size matched to the model.

The embedded default is scikit-learn's ``load_digits`` (1,797 real 8x8 handwritten digits, shipped inside
scikit-learn), split 80/20 with a fixed seed and resized. torchvision datasets load from a local root
with ``download=False`` unless asked; an image folder is ``root/train`` and ``root/test`` (or ``val``).

Example:
    >>> from robust_prune.data import load_data
    >>> bundle = load_data("digits", image_size=32, channels=3)
    >>> x, y = next(iter(bundle.train))
    >>> x.shape[1:], float(x.min()) >= 0.0, float(x.max()) <= 1.0
    (torch.Size([3, 32, 32]), True, True)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from .errors import ConfigError, DatasetError, DatasetNotFoundError, NonFiniteImagesError
from .transforms import AUGMENTATIONS, ImageTransform, check_image_size, fit_images, image_transform, resolve_image_size

__all__ = [
    "DataBundle", "load_data", "first_n", "check_pixels", "check_batch_shape", "pixel_faults", "raise_bad_pixels",
    "DATASETS", "default_eps",
]  # fmt: skip

# Default L-inf budgets in pixel units, the common choice for each dataset.
_DEFAULT_EPS = {
    "digits": 0.1,
    "mnist": 0.3,
    "fashion-mnist": 0.1,
    "cifar10": 8 / 255,
    "cifar100": 8 / 255,
    "svhn": 8 / 255,
    "imagefolder": 4 / 255,
}
DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10", "cifar100", "svhn")


def default_eps(name: str) -> float | None:
    """The default L-inf budget of a named dataset (pixel units); None for data that carries none (user loaders).

    Example:
        >>> default_eps("digits"), default_eps("loaders")
        (0.1, None)
    """
    return _DEFAULT_EPS.get(name)


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

    def spec(self) -> dict[str, Any]:
        """A JSON-able description stored with results (``evaluate DIR`` reads the data back from it)."""
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
        }


def _len(loader: DataLoader) -> int | None:
    try:
        return len(loader.dataset)  # type: ignore[arg-type]
    except TypeError:
        return None


class _Fitted(Dataset):
    """Another dataset's [0, 1] images through a :class:`~robust_prune.transforms.ImageTransform` (resize, channels,
    augmentation)."""

    def __init__(self, base: Dataset, transform: ImageTransform) -> None:
        self.base, self.transform = base, transform

    def __len__(self) -> int:
        return len(self.base)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image, label = self.base[index]
        return self.transform(image), int(label)


def _digits(image_size: int, channels: int, seed: int) -> tuple[Dataset, Dataset, int]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    labels = torch.tensor(digits.target, dtype=torch.long)
    train_idx, test_idx = train_test_split(
        list(range(len(labels))), test_size=0.2, random_state=seed, stratify=digits.target
    )
    images = fit_images(images, image_size, channels)
    return (
        TensorDataset(images[train_idx], labels[train_idx]),
        TensorDataset(images[test_idx], labels[test_idx]),
        10,
    )


_TORCHVISION = {
    "mnist": ("MNIST", 10),
    "fashion-mnist": ("FashionMNIST", 10),
    "cifar10": ("CIFAR10", 10),
    "cifar100": ("CIFAR100", 100),
    "svhn": ("SVHN", 10),
}


def _torchvision(name: str, root: str | os.PathLike[str] | None, download: bool) -> tuple[Dataset, Dataset, int]:
    import torchvision
    from torchvision import transforms

    if root is None:
        raise DatasetNotFoundError(
            f"Dataset {name!r} needs a local folder: pass root=DIR (CLI: --data-dir DIR) holding torchvision's "
            f"files, or add download=True (--download) on a machine with internet."
        )
    cls_name, num_classes = _TORCHVISION[name]
    cls = getattr(torchvision.datasets, cls_name)
    to_tensor = transforms.ToTensor()
    try:
        if name == "svhn":
            train = cls(str(root), split="train", download=download, transform=to_tensor)
            test = cls(str(root), split="test", download=download, transform=to_tensor)
        else:
            train = cls(str(root), train=True, download=download, transform=to_tensor)
            test = cls(str(root), train=False, download=download, transform=to_tensor)
    except RuntimeError as exc:
        raise DatasetNotFoundError(
            f"{name} was not found under {root}: {exc}. Put torchvision's {cls_name} files there, "
            "or pass download=True (--download) on a machine with internet."
        ) from exc
    return train, test, num_classes


def _image_folder(root: Path, seed: int) -> tuple[Dataset, Dataset, int]:
    from torchvision import datasets, transforms

    to_tensor = transforms.ToTensor()
    test_dir = next((root / s for s in ("test", "val") if (root / s).is_dir()), None)
    try:
        if (root / "train").is_dir() and test_dir is not None:
            train = datasets.ImageFolder(str(root / "train"), transform=to_tensor)
            test = datasets.ImageFolder(str(test_dir), transform=to_tensor)
            if train.classes != test.classes:
                raise DatasetError(f"{root}/train and {test_dir} have different class folders.")
            return train, test, len(train.classes)
        full = datasets.ImageFolder(str(root), transform=to_tensor)
    except FileNotFoundError as exc:
        raise DatasetError(f"No images found under {root}: {exc}. Use one folder per class.") from exc
    order = torch.randperm(len(full), generator=torch.Generator().manual_seed(seed)).tolist()
    cut = max(1, int(0.8 * len(order)))
    return Subset(full, order[:cut]), Subset(full, order[cut:]), len(full.classes)


def _loader(
    dataset: Dataset, batch_size: int, shuffle: bool, seed: int, num_workers: int, pin_memory: bool
) -> DataLoader:
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator, num_workers=num_workers,
                      pin_memory=pin_memory, persistent_workers=num_workers > 0)  # fmt: skip


def check_pixels(images: torch.Tensor, what: str, *, batch_size: int | None = None) -> None:
    """Refuse images holding NaN or infinity (they would make every loss, attack and report NaN) or pixels outside
    [0, 1]; the error names the first bad batch of ``batch_size`` images (the whole tensor is one batch if None).

    Raises:
        NonFiniteImagesError: NaN or infinite pixels.
        DatasetError: pixels outside [0, 1].

    Example:
        >>> check_pixels(torch.zeros(1, 3, 8, 8), "test")
        >>> try:
        ...     check_pixels(torch.tensor([0.5, 0.2, float("nan")]).view(3, 1, 1, 1), "test", batch_size=2)
        ... except NonFiniteImagesError as err:
        ...     print(str(err)[:53])
        Batch 2 of the test data holds NaN or infinite pixels
    """
    flat = images.flatten(1)
    nonfinite = ~torch.isfinite(flat).all(1)
    outside = (flat < 0).any(1) | (flat > 1).any(1)
    for bad, kind in ((nonfinite, "nonfinite"), (outside, "range")):
        if bool(bad.any()):
            first = int(bad.nonzero()[0, 0])
            raise_bad_pixels(kind, what, first // (batch_size or len(images)) + 1,
                             detail=f" ({int(bad.sum())} of {len(images)} images)")  # fmt: skip


def raise_bad_pixels(kind: str, what: str, batch: int | str, *, detail: str = "") -> None:
    """Raise the error for a batch whose pixels are NaN/infinite (``kind="nonfinite"``) or outside [0, 1]
    (``kind="range"``); ``batch`` is its 1-based index (or words).

    Example:
        >>> raise_bad_pixels("range", "training", 3)
        Traceback (most recent call last):
        robust_prune.errors.DatasetError: Batch 3 of the training data has pixels outside [0, 1]. ...
    """
    if kind == "nonfinite":
        raise NonFiniteImagesError(
            f"Batch {batch} of the {what} data holds NaN or infinite pixels{detail}. Clean or drop them before "
            "training: images must be finite values in [0, 1]."
        )
    raise DatasetError(
        f"Batch {batch} of the {what} data has pixels outside [0, 1]{detail}. robust_prune keeps normalisation "
        "inside the model: give it un-normalised ToTensor() images."
    )


def pixel_faults(images: torch.Tensor) -> torch.Tensor:
    """Two flags on the images' device, read without a host sync: (any NaN or infinite pixel, any finite batch
    with a pixel outside [0, 1]). One pass: a NaN propagates into the minimum, an infinity is an extreme.

    Example:
        >>> pixel_faults(torch.tensor([0.5, 2.0])).tolist()
        [False, True]
    """
    low, high = torch.aminmax(images.detach())
    finite = torch.isfinite(low) & torch.isfinite(high)
    return torch.stack([~finite, finite & ((low < 0) | (high > 1))])


def check_batch_shape(images: Any, what: str, *, batch: int, channels: int) -> None:
    """Refuse a batch that is not ``(N, channels, H, H)`` (shapes only: no host sync).

    Example:
        >>> check_batch_shape(torch.zeros(2, 3, 8, 8), "training", batch=1, channels=3)
    """
    if not isinstance(images, torch.Tensor) or images.dim() != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise DatasetError(f"Batch {batch} of the {what} loader must hold images of shape (N, C, H, W); got {shape}.")
    if images.shape[1] != channels:
        raise DatasetError(
            f"Batch {batch} of the {what} images has {images.shape[1]} channels; the model takes {channels}."
        )
    if images.shape[-1] != images.shape[-2]:
        raise DatasetError(f"Batch {batch} of the {what} images is not square: {tuple(images.shape[-2:])}.")


def _check_images(loader: DataLoader, channels: int, what: str) -> tuple[int, int]:
    try:
        x, y = next(iter(loader))
    except StopIteration:
        raise DatasetError(f"The {what} data is empty; it needs at least one image per class.") from None
    check_batch_shape(x, what, batch=1, channels=channels)
    check_pixels(x, what)
    return int(x.shape[-1]), int(y.max()) + 1


def first_n(loader: DataLoader, n: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` images and labels of ``loader`` as two tensors (all of them when ``n`` is None).

    Example:
        >>> x, y = first_n(load_data("digits").test, 5)
        >>> tuple(x.shape), tuple(y.shape)
        ((5, 3, 32, 32), (5,))
    """
    xs, ys, seen = [], [], 0
    for x, y in loader:
        xs.append(x)
        ys.append(y)
        seen += len(y)
        if n is not None and seen >= n:
            break
    if not xs:
        raise DatasetError("The evaluation data is empty.")
    x, y = torch.cat(xs), torch.cat(ys)
    return (x[:n], y[:n]) if n is not None else (x, y)


def _count_classes(loader: DataLoader) -> int:
    """1 + the largest label of the whole training set (one pass; pass num_classes= to skip it)."""
    largest = -1
    for _, labels in loader:
        largest = max(largest, int(torch.as_tensor(labels).max()))
    return largest + 1


def load_data(
    data: str | os.PathLike[str] | tuple[DataLoader, DataLoader] | DataBundle | None = None,
    *,
    image_size: int | None = None,
    channels: int = 3,
    batch_size: int = 64,
    root: str | os.PathLike[str] | None = None,
    download: bool = False,
    seed: int = 0,
    num_workers: int = 0,
    num_classes: int | None = None,
    augment: bool = True,
    pin_memory: bool | None = None,
) -> DataBundle:
    """Load a dataset as [0, 1] images of ``channels`` x ``image_size`` x ``image_size``.

    Args:
        data: ``None`` or ``"digits"`` (embedded), a torchvision name (``"mnist"``, ``"fashion-mnist"``,
            ``"cifar10"``, ``"cifar100"``, ``"svhn"``), a path to an image folder, or ``(train, test)`` loaders.
        image_size: the side images are resized to (None: the dataset's native resolution, 32 for an image
            folder; :func:`robust_prune.api.prepare` picks the model's input size for folders).
        channels: what the model takes; channels are matched.
        batch_size: batch size of the loaders built here.
        root: the local folder for torchvision datasets; download: fetch them if missing.
        seed: fixes the digits split and the shuffling order.
        num_workers, pin_memory: DataLoader workers, and pinned host memory (None: when CUDA is present).
        num_classes: for ``(train, test)`` loaders, the number of classes (inferred from labels if None).
        augment: augment the training split (:mod:`robust_prune.transforms`: crop + flip for CIFAR/SVHN,
            RandomResizedCrop + flip for image folders, nothing for digits/MNIST).

    Raises:
        DatasetError, DatasetNotFoundError: unknown name, missing folder, empty data, wrong image shape.
        NonFiniteImagesError: a user's loader yields NaN or infinite pixels.
        ConfigError: ``image_size`` is not an int >= 8, or ``num_workers`` is not an int >= 0.
    """
    if isinstance(data, DataBundle):
        return data
    if isinstance(data, (tuple, list)):
        if len(data) != 2 or not all(isinstance(d, DataLoader) for d in data):
            raise DatasetError("Pass data as a (train_loader, test_loader) pair of torch DataLoaders.")
        train_loader, test_loader = data
        with torch.random.fork_rng(devices=[]):  # iterating a loader draws its base seed from the global RNG
            size, _ = _check_images(train_loader, channels, "training")
            _check_images(test_loader, channels, "test")
        classes = num_classes or len(getattr(train_loader.dataset, "classes", [])) or _count_classes(train_loader)
        return DataBundle(train_loader, test_loader, classes, channels, size, "loaders", default_eps("loaders"))
    check_image_size(image_size)
    if not isinstance(num_workers, int) or isinstance(num_workers, bool) or num_workers < 0:
        raise ConfigError(f"num_workers must be an integer >= 0 (DataLoader worker processes), got {num_workers!r}.")
    image_size = resolve_image_size(data, image_size)
    name = "digits" if data is None else str(data)
    source = None

    def fitted(base_train: Dataset, base_test: Dataset, kind: str) -> tuple[Dataset, Dataset]:
        return (
            _Fitted(base_train, image_transform(kind, image_size, channels=channels, train=True, augment=augment)),
            _Fitted(base_test, image_transform(kind, image_size, channels=channels, train=False, augment=augment)),
        )

    if name == "digits":
        train, test, classes = _digits(image_size, channels, seed)
    elif name in _TORCHVISION:
        base_train, base_test, classes = _torchvision(name, root, download)
        train, test = fitted(base_train, base_test, name)
        source = None if root is None else str(root)
    elif Path(name).exists():
        if not Path(name).is_dir():
            raise DatasetError(f"{name} is a file; an image dataset is a folder with one sub-folder per class.")
        base_train, base_test, classes = _image_folder(Path(name), seed)
        train, test = fitted(base_train, base_test, "imagefolder")
        source, name = name, "imagefolder"
    elif os.sep in name or name.startswith("."):
        raise DatasetNotFoundError(f"The data folder {name} does not exist. Check the path.")
    else:
        raise DatasetError(
            f"Unknown dataset {name!r}. Use one of {', '.join(DATASETS)}, a folder of images, "
            "or a (train_loader, test_loader) pair."
        )
    if len(train) == 0 or len(test) == 0:  # type: ignore[arg-type]
        raise DatasetError(f"The {name} data is empty (train {len(train)}, test {len(test)} images).")  # type: ignore[arg-type]
    pin = torch.cuda.is_available() if pin_memory is None else bool(pin_memory)
    return DataBundle(
        train=_loader(train, batch_size, True, seed, num_workers, pin),
        test=_loader(test, batch_size, False, seed, num_workers, pin),
        num_classes=classes,
        channels=channels,
        image_size=image_size,
        name=name,
        default_eps=default_eps(name),
        source=source,
        augment=augment and name in AUGMENTATIONS,
    )
