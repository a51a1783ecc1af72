"""Datasets in [0, 1] pixel space, with channels and size matched to the model.

The embedded default is scikit-learn's ``load_digits`` (1,797 real 8x8 handwritten digits, shipped inside
scikit-learn), split 80/20 with a fixed seed and resized. Each named dataset is declared once in
:mod:`robust_prune.data.catalog`; the MNIST family is read from its official IDX files wherever they are
(:mod:`robust_prune.data.idx`), CIFAR and SVHN through torchvision from a local folder (``download=False`` unless
asked).
An image folder is ``root/train`` and ``root/test`` (or ``val``).

Example:
    >>> from robust_prune.data.loading import load_data
    >>> bundle = load_data("digits", image_size=32, channels=3)
    >>> x, y = next(iter(bundle.train))
    >>> x.shape[1:], float(x.min()) >= 0.0, float(x.max()) <= 1.0
    (torch.Size([3, 32, 32]), True, True)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from ..errors import ConfigError, DatasetError, DatasetNotFoundError, NonFiniteImagesError
from .bundle import DataBundle, FittedDataset, make_loader
from .catalog import DATASETS, dataset_info, default_eps, named_datasets
from .idx import load_idx_dataset
from .transforms import check_image_size, fit_images, image_transform, resolve_image_size

__all__ = [
    "DataBundle", "load_data", "first_n", "check_pixels", "check_batch_shape", "pixel_faults", "raise_bad_pixels",
    "default_eps",
]  # fmt: skip


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


def _torchvision(name: str, data_dir: str | os.PathLike[str] | None, download: bool) -> tuple[Dataset, Dataset]:
    import torchvision
    from torchvision import transforms

    info = dataset_info(name)
    if data_dir is None:
        raise DatasetNotFoundError(
            f"Dataset {name!r} needs a local folder: pass data_dir=DIR (CLI: --data-dir DIR) holding torchvision's "
            f"files, or add download=True (--download) on a machine with internet."
        )
    cls = getattr(torchvision.datasets, str(info.torchvision))
    to_tensor = transforms.ToTensor()
    try:
        if name == "svhn":
            train = cls(str(data_dir), split="train", download=download, transform=to_tensor)
            test = cls(str(data_dir), split="test", download=download, transform=to_tensor)
        else:
            train = cls(str(data_dir), train=True, download=download, transform=to_tensor)
            test = cls(str(data_dir), train=False, download=download, transform=to_tensor)
    except RuntimeError as exc:
        raise DatasetNotFoundError(
            f"{name} was not found under {data_dir}: {exc}. Put torchvision's {info.torchvision} files there, "
            "or pass download=True (--download) on a machine with internet."
        ) from exc
    return train, test


def _named(
    name: str, data_dir: str | os.PathLike[str] | None, download: bool
) -> tuple[Dataset, Dataset, list[dict[str, str]] | None]:
    """A named dataset's base splits ([0, 1] images at native size), and the files read where the library reads
    them itself (the MNIST family's IDX files, from wherever they are)."""
    info = dataset_info(name)
    if not info.reads_idx:
        return (*_torchvision(name, data_dir, download), None)
    if download:
        if data_dir is None:
            raise DatasetNotFoundError(f"download=True needs data_dir=DIR (--data-dir DIR) to put {name} in.")
        _torchvision(name, data_dir, download=True)  # fetches into torchvision's layout, read below like any copy
    return load_idx_dataset(info, data_dir)


def _subset(dataset: Dataset, n: int | None, seed: int) -> Dataset:
    """The first ``n`` images of a seeded shuffle of ``dataset`` (all of it when ``n`` is None or larger)."""
    if n is None or n >= len(dataset):  # type: ignore[arg-type]
        return dataset
    return Subset(dataset, _shuffled(len(dataset), seed)[:n])  # type: ignore[arg-type]


def _shuffled(count: int, seed: int) -> list[int]:
    """``range(count)`` in a seeded random order (its own generator: the global RNG is left alone)."""
    return torch.randperm(count, generator=torch.Generator().manual_seed(seed)).tolist()


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
    order = _shuffled(len(full), seed)
    cut = max(1, int(0.8 * len(order)))
    return Subset(full, order[:cut]), Subset(full, order[cut:]), len(full.classes)


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
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = False,
    seed: int = 0,
    num_workers: int = 0,
    num_classes: int | None = None,
    augment: bool = True,
    pin_memory: bool | None = None,
    train_subset: int | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
) -> DataBundle:
    """Load a dataset as [0, 1] images of ``channels`` x ``image_size`` x ``image_size``.

    Args:
        data: ``None`` or ``"digits"`` (embedded), a dataset name (``"mnist"``, ``"fashion-mnist"``,
            ``"cifar10"``, ``"cifar100"``, ``"svhn"``: :mod:`robust_prune.data.catalog`), a path to an image folder,
            ``(train, test)`` loaders, or
            Hugging Face data: a ``DatasetDict``, a ``(train, test)`` pair of ``datasets.Dataset`` or
            ``"hf:REPO[:CONFIG]"`` (:mod:`robust_prune.data.hf_datasets`).
        image_size: the side images are resized to (None: the dataset's native resolution, 32 for an image
            folder; :func:`robust_prune.api.prepare` picks the model's input size for folders).
        channels: what the model takes; channels are matched.
        batch_size: batch size of the loaders built here.
        data_dir: where a named dataset's files are. MNIST and Fashion-MNIST: the four official IDX files
            (``.gz`` or not) in this folder or in torchvision's layout under it; with no ``data_dir``, the system
            copy (``apt-get install dataset-fashion-mnist`` puts it in ``/usr/share/datasets/fashion-mnist``).
            CIFAR and SVHN: torchvision's files. download: fetch them into ``data_dir`` if missing.
        seed: fixes the digits split and the shuffling order.
        num_workers, pin_memory: DataLoader workers, and pinned host memory (None: when CUDA is present).
        num_classes: for ``(train, test)`` loaders, the number of classes (inferred from labels if None).
        augment: augment the training split (:mod:`robust_prune.data.transforms`: crop + flip for CIFAR/SVHN,
            RandomResizedCrop + flip for image folders, nothing for digits/MNIST).
        train_subset: train on this many images of the training split (a seeded random subset; None: all).
        image_column, label_column: Hugging Face data's columns (None: ``image``/``img``, ``label``/``labels``).

    Raises:
        DatasetError, DatasetNotFoundError: unknown name, missing folder or file, empty data, wrong image shape.
        CorruptDatasetError: a damaged dataset file (truncated, wrong magic number, sizes that do not match).
        NonFiniteImagesError: a user's loader yields NaN or infinite pixels.
        ConfigError: ``image_size`` is not an int >= 8, or ``num_workers`` is not an int >= 0.
    """
    if isinstance(data, DataBundle):
        return data
    from .hf_datasets import is_hf_data, load_hf_data  # issue 24 (here: hf_datasets builds on this module)

    if is_hf_data(data):  # before the pair case: a (train, test) pair of datasets.Dataset is one too
        return load_hf_data(data, image_size=image_size, channels=channels, batch_size=batch_size, seed=seed,
                            num_workers=num_workers, augment=augment, pin_memory=pin_memory,
                            image_column=image_column, label_column=label_column)  # fmt: skip
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
    if train_subset is not None and (not isinstance(train_subset, int) or isinstance(train_subset, bool)
                                     or train_subset < 1):  # fmt: skip
        raise ConfigError(f"train_subset must be an integer >= 1 (training images), got {train_subset!r}.")
    image_size = resolve_image_size(data, image_size)
    name = "digits" if data is None else str(data)
    source, files = None, None

    def fitted(base_train: Dataset, base_test: Dataset, kind: str) -> tuple[Dataset, Dataset]:
        def split(base: Dataset, train: bool) -> Dataset:
            transform = image_transform(kind, image_size, channels=channels, train=train, augment=augment)
            return FittedDataset(base, transform)

        return split(base_train, True), split(base_test, False)

    if name == "digits":
        train, test, classes = _digits(image_size, channels, seed)
    elif name in named_datasets():
        base_train, base_test, files = _named(name, data_dir, download)
        train, test = fitted(base_train, base_test, name)
        classes = int(dataset_info(name).num_classes or 0)
        source = None if data_dir is None else str(data_dir)
    elif Path(name).exists():
        if not Path(name).is_dir():
            raise DatasetError(f"{name} is a file; an image dataset is a folder with one sub-folder per class.")
        base_train, base_test, classes = _image_folder(Path(name), seed)
        train, test = fitted(base_train, base_test, "imagefolder")
        source, name = name, "imagefolder"
    elif os.sep in name or name.startswith("."):
        raise DatasetNotFoundError(f"The data folder {name} does not exist. Check the path.")
    else:
        dataset_info(name)  # raises: an unknown name, with the known ones listed
    train = _subset(train, train_subset, seed)
    if len(train) == 0 or len(test) == 0:  # type: ignore[arg-type]
        raise DatasetError(f"The {name} data is empty (train {len(train)}, test {len(test)} images).")  # type: ignore[arg-type]
    pin = torch.cuda.is_available() if pin_memory is None else bool(pin_memory)
    return DataBundle(
        train=make_loader(train, batch_size, True, seed, num_workers, pin),
        test=make_loader(test, batch_size, False, seed, num_workers, pin),
        num_classes=classes,
        channels=channels,
        image_size=image_size,
        name=name,
        default_eps=default_eps(name),
        source=source,
        augment=augment and DATASETS[name].augmentation is not None,
        files=files,
    )
