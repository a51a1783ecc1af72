"""Hugging Face ``datasets`` as robust_prune data: a ``DatasetDict``, a ``(train, test)`` pair, ``"hf:REPO[:CONFIG]"``.

The image column (PIL images or arrays) and the label column (``ClassLabel`` or ints) are found by name (``image`` /
``img``, ``label`` / ``labels``, else the only ``Image`` / ``ClassLabel`` column) or given (``image_column=``,
``label_column=``). Every image becomes a [0, 1] float CHW tensor (integer pixels / 255) and then goes through the
same resize, channel matching and augmentation as every other source (:mod:`robust_prune.data.transforms`). Images are
read at their own size unless ``image_size`` is given; mixed or non-square sizes then need ``image_size``.

A repository named like one of the built-in datasets (``"uoft-cs/cifar10"``, ``"ylecun/mnist"``...) gets that
dataset's eps and augmentation; any other gets eps 8/255 and CIFAR's crop + flip (``augment=False`` turns it off).
Needs the ``hf`` extra (``pip install "robust-prune[hf]"``).

Example:
    >>> import datasets
    >>> from PIL import Image
    >>> pics = [Image.new("L", (8, 8), color=40 * i) for i in range(4)]
    >>> features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")})
    >>> split = datasets.Dataset.from_dict({"image": pics, "label": [0, 1, 0, 1]}, features=features)
    >>> splits = hf_splits(datasets.DatasetDict(train=split, test=split))
    >>> splits.num_classes, splits.native_size, tuple(splits.train[1][0].shape)
    (2, 8, (1, 8, 8))
"""

from __future__ import annotations

import importlib.util
import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DatasetError, DatasetNotFoundError, MissingDependencyError
from .bundle import DataBundle, FittedDataset, make_loader
from .catalog import DATASETS, dataset_by_hub_id, default_eps
from .transforms import check_image_size, image_transform

__all__ = [
    "HF_PREFIX",
    "HFDataBundle",
    "HFSplits",
    "default_side",
    "hf_splits",
    "image_side",
    "is_hf_data",
    "load_hf_data",
    "require_datasets",
]

HF_PREFIX = "hf:"
IMAGE_COLUMNS = ("image", "img")
LABEL_COLUMNS = ("label", "labels")
TEST_SPLITS = ("test", "validation")
# Hub ids of the built-in datasets (the model card's table), so that hf:uoft-cs/cifar10 gets CIFAR-10's eps/augmentation


def require_datasets() -> None:
    """Raise :class:`MissingDependencyError` naming the ``hf`` extra when ``datasets`` is not installed.

    Example:
        >>> require_datasets()
    """
    if importlib.util.find_spec("datasets") is None:
        raise MissingDependencyError(["datasets"], extra="hf")


def _is_hf_object(obj: Any) -> bool:
    """A ``datasets.Dataset`` or ``DatasetDict``, told by its class's module so that nothing is imported."""
    return any(cls.__module__.split(".")[0] == "datasets" for cls in type(obj).__mro__[:-1])


def is_hf_data(data: Any) -> bool:
    """Whether ``data`` is Hugging Face data: ``"hf:..."``, a ``DatasetDict`` / ``Dataset`` (pair) or converted splits.

    Example:
        >>> is_hf_data("hf:uoft-cs/cifar10"), is_hf_data("cifar10")
        (True, False)
    """
    if isinstance(data, HFSplits):
        return True
    if isinstance(data, str):
        return data.startswith(HF_PREFIX)
    if isinstance(data, (tuple, list)):
        return len(data) > 0 and all(_is_hf_object(d) for d in data)
    return _is_hf_object(data)


class _Images(Dataset):
    """One split of a ``datasets.Dataset`` as ([0, 1] CHW float tensor, int label) pairs, decoded on access."""

    def __init__(self, split: Any, image_column: str, label_column: str, where: str) -> None:
        self.split, self.image_column, self.label_column, self.where = split, image_column, label_column, where

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        row = self.split[int(index)]
        return _to_tensor(row[self.image_column], f"{self.image_column!r} of split {self.where!r}"), int(
            row[self.label_column]
        )


def _as_hwc(value: Any) -> np.ndarray:
    """A PIL image or an array (HW, HWC or CHW) as an HWC array (PIL modes other than L/RGB become RGB)."""
    if hasattr(value, "convert") and hasattr(value, "mode"):  # a PIL image
        value = value if value.mode in ("L", "RGB") else value.convert("RGB")
    array = np.asarray(value)
    if array.ndim == 2:
        return array[:, :, None]
    if array.ndim == 3 and array.shape[-1] not in (1, 3, 4) and array.shape[0] in (1, 3):
        return array.transpose(1, 2, 0)
    return array


def _to_tensor(value: Any, column: str) -> torch.Tensor:
    """One image as a [0, 1] float CHW tensor (up to 3 channels); ``column`` names where it comes from in errors."""
    array = _as_hwc(value)
    if array.ndim != 3 or array.shape[-1] not in (1, 3, 4):
        raise DatasetError(f"Column {column} holds an image of shape {array.shape}; expected HW, HWC or CHW.")
    x = torch.from_numpy(np.array(array[:, :, :3])).permute(2, 0, 1)  # a writable copy
    scale = 1.0 if torch.is_floating_point(x) else 255.0  # integers are 8-bit pixels
    x = x.float()
    low, high = (float(x.min()), float(x.max())) if x.numel() else (0.0, 0.0)
    if low < 0.0 or high > scale:
        raise DatasetError(
            f"Column {column} holds pixels outside [0, {scale:g}] (min {low:.3g}, max {high:.3g}): give 8-bit "
            "images (integers 0..255) or floats in [0, 1]."
        )
    return x / scale


@dataclass
class HFSplits:
    """A Hugging Face dataset read for robust_prune: two torch datasets of unresized [0, 1] images plus what is known.

    Attributes:
        train, test: torch datasets of (CHW float tensor in [0, 1], int label).
        num_classes: the ``ClassLabel``'s count, else 1 + the largest training label.
        sizes: every (height, width) seen, per split name.
        name: ``"hf:REPO[:CONFIG]"``, or ``"datasets"`` for objects built in memory.
        origin: repo id, config, split names and fingerprints, columns (stored in the data spec and model card).
    """

    train: Dataset
    test: Dataset
    num_classes: int
    sizes: dict[str, set[tuple[int, int]]]
    name: str
    origin: dict[str, Any] = field(default_factory=dict)

    @property
    def native_size(self) -> int | None:
        """The images' side when every image of both splits has the same square size, else None."""
        every = set().union(*self.sizes.values())
        if len(every) != 1:
            return None
        ((height, width),) = every
        return height if height == width else None

    @property
    def kind(self) -> str:
        """The built-in dataset this repository is (for eps and augmentation), else ``"hf"``."""
        return dataset_by_hub_id(str(self.origin.get("repo_id"))) or "hf"


def _column(split: Any, given: str | None, names: tuple[str, ...], feature: str, what: str, where: str) -> str:
    columns = list(split.column_names)
    flag = f"{what}_column"
    if given is not None:
        if given not in columns:
            raise DatasetError(f"{flag}={given!r} is not a column of split {where!r} (columns: {columns}).")
        return given
    by_name = [n for n in names if n in columns]
    typed = [n for n, f in split.features.items() if type(f).__name__ == feature]
    if by_name or len(typed) == 1:
        return (by_name or typed)[0]
    raise DatasetError(
        f"No {what} column found in split {where!r} (columns: {columns}): name it with {flag}=NAME "
        f"(CLI: --{flag.replace('_', '-')} NAME)."
    )


def _labels(split: Any, column: str) -> np.ndarray:
    labels = np.asarray(split.with_format("numpy")[column])
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise DatasetError(f"Column {column!r} must hold integer class labels (or a ClassLabel); got {labels.dtype}.")
    return labels


def _sizes(split: Any, column: str) -> set[tuple[int, int]]:
    """Every (height, width) in the image column: PIL headers only for an ``Image`` feature, array shapes else."""
    import datasets
    from PIL import Image

    if isinstance(split.features[column], datasets.Image):
        raw = split.cast_column(column, datasets.Image(decode=False))
        found = set()
        for item in raw.select_columns([column]).iter(batch_size=1024):
            for entry in item[column]:
                with Image.open(io.BytesIO(entry["bytes"]) if entry.get("bytes") else entry["path"]) as image:
                    found.add((image.height, image.width))
        return found
    return {tuple(_as_hwc(row[column]).shape[:2]) for row in split}  # type: ignore[misc]


def _pick_splits(data: Any) -> tuple[Any, Any, str, str]:
    if isinstance(data, (tuple, list)):
        if len(data) != 2:
            raise DatasetError("Pass Hugging Face data as a DatasetDict or a (train, test) pair of datasets.Dataset.")
        return data[0], data[1], "train", "test"
    if not hasattr(data, "keys"):  # one Dataset
        raise DatasetError("A single datasets.Dataset is one split: pass a DatasetDict or a (train, test) pair.")
    names = list(data.keys())
    test_name = next((n for n in TEST_SPLITS if n in names), None)
    if "train" not in names or test_name is None:
        missing = "train" if "train" not in names else "test"
        raise DatasetError(
            f"The dataset has no {missing!r} split (splits: {names}); robust_prune needs 'train' and 'test' (or "
            "'validation'). Rename or split it (DatasetDict(train=..., test=...), Dataset.train_test_split)."
        )
    return data["train"], data[test_name], "train", test_name


def _load_hub(spec: str) -> tuple[Any, dict[str, Any]]:
    import datasets

    repo_id, _, config = spec[len(HF_PREFIX) :].partition(":")
    if not repo_id:
        raise DatasetError(f"{spec!r} names no repository: write hf:OWNER/NAME or hf:OWNER/NAME:CONFIG.")
    try:
        loaded = datasets.load_dataset(repo_id, config or None)
    except (OSError, ValueError, datasets.exceptions.DatasetNotFoundError) as exc:
        raise DatasetNotFoundError(
            f"datasets.load_dataset could not load {repo_id!r}{f' (config {config!r})' if config else ''}: {exc}. "
            "Check the repository id and config, and HF_TOKEN for a private repository."
        ) from exc
    return loaded, {"repo_id": repo_id, "config": config or None}


def hf_splits(data: Any, *, image_column: str | None = None, label_column: str | None = None) -> HFSplits:
    """Read Hugging Face data (``"hf:REPO[:CONFIG]"``, a ``DatasetDict`` or a ``(train, test)`` pair) and check it.

    Args:
        data: the data; :class:`HFSplits` are returned as they are.
        image_column, label_column: the columns to read (None: found by name or feature type).

    Raises:
        MissingDependencyError: ``datasets`` is not installed (the ``hf`` extra).
        DatasetError: a split or column is missing, labels are not integers or lie outside ``[0, num_classes)``.
        DatasetNotFoundError: ``load_dataset`` cannot find the repository.

    Example:
        >>> hf_splits("hf:")
        Traceback (most recent call last):
        ...
        robust_prune.errors.DatasetError: 'hf:' names no repository: write hf:OWNER/NAME or hf:OWNER/NAME:CONFIG.
    """
    if isinstance(data, HFSplits):
        return data
    require_datasets()
    origin: dict[str, Any] = {"repo_id": None, "config": None}
    if isinstance(data, str):
        data, origin = _load_hub(data)
    train, test, train_name, test_name = _pick_splits(data)
    image = _column(train, image_column, IMAGE_COLUMNS, "Image", "image", train_name)
    label = _column(train, label_column, LABEL_COLUMNS, "ClassLabel", "label", train_name)
    for column, what in ((image, "image"), (label, "label")):  # the test split must have the same columns
        _column(test, column, (), "", what, test_name)
    feature = train.features[label]
    labels = {train_name: _labels(train, label), test_name: _labels(test, label)}
    num_classes = int(feature.num_classes) if hasattr(feature, "num_classes") else int(labels[train_name].max()) + 1
    for where, values in labels.items():
        if len(values) == 0:
            raise DatasetError(f"Split {where!r} is empty; it needs at least one image per class.")
        if values.min() < 0 or values.max() >= num_classes:
            raise DatasetError(
                f"Column {label!r} of split {where!r} holds labels outside [0, {num_classes}) (min {values.min()}, "
                f"max {values.max()}): drop unlabelled rows (label -1) or fix the labels."
            )
    origin.update(
        image_column=image,
        label_column=label,
        splits={"train": train_name, "test": test_name},
        fingerprints={"train": getattr(train, "_fingerprint", None), "test": getattr(test, "_fingerprint", None)},
    )
    name = "datasets"  # built in memory: nothing to load it back from
    if origin["repo_id"]:
        name = HF_PREFIX + origin["repo_id"] + (f":{origin['config']}" if origin["config"] else "")
    return HFSplits(
        train=_Images(train, image, label, train_name),
        test=_Images(test, image, label, test_name),
        num_classes=num_classes,
        sizes={train_name: _sizes(train, image), test_name: _sizes(test, image)},
        name=name,
        origin=origin,
    )


def image_side(splits: HFSplits, image_size: int | None) -> int:
    """The side the images are read at: ``image_size``, else their own square size.

    Raises:
        DatasetError: no ``image_size`` and the images mix sizes or are not square (names the split and column).

    Example:
        >>> square = HFSplits([], [], 2, {"train": {(8, 8)}, "test": {(8, 8)}}, "datasets")
        >>> image_side(square, None), image_side(square, 32)
        (8, 32)
        >>> mixed = HFSplits([], [], 2, {"train": {(8, 8), (9, 9)}, "test": {(8, 8)}}, "datasets")
        >>> image_side(mixed, None)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        robust_prune.errors.DatasetError: Column None of split 'train' holds images of mixed or non-square sizes ...
    """
    if image_size is not None:
        return image_size
    if splits.native_size is not None:
        return splits.native_size
    column = splits.origin.get("image_column")
    for where, found in splits.sizes.items():
        if len(found) > 1 or any(h != w for h, w in found):
            shown = ", ".join(f"{h}x{w}" for h, w in sorted(found)[:4])
            raise DatasetError(
                f"Column {column!r} of split {where!r} holds images of mixed or non-square sizes ({shown}): pass "
                "image_size=N (--image-size N) to resize every image to NxN."
            )
    raise DatasetError(
        f"The splits' images differ in size ({splits.sizes}): pass image_size=N (--image-size N) to resize them."
    )


def default_side(data: Any, image_size: int | None, fallback: int | None) -> int | None:
    """The default read size of ``data`` for :func:`~robust_prune.data.transforms.resolve_image_size`'s ``pretrained``:
    converted Hugging Face splits are read at their own size (:func:`image_side`), anything else at ``fallback``.

    Example:
        >>> default_side("digits", None, 224)
        224
    """
    return image_side(data, image_size) if isinstance(data, HFSplits) else fallback


@dataclass
class HFDataBundle(DataBundle):
    """A :class:`~robust_prune.data.DataBundle` from Hugging Face data; its spec names the dataset (``"hf"`` entry)."""

    origin: dict[str, Any] = field(default_factory=dict)

    def spec(self) -> dict[str, Any]:
        """The data spec plus ``"hf"``: repo id, config, split names, fingerprints and columns."""
        return {**super().spec(), "hf": dict(self.origin)}


def load_hf_data(
    data: Any,
    *,
    image_size: int | None,
    channels: int,
    batch_size: int,
    seed: int,
    num_workers: int,
    augment: bool,
    pin_memory: bool | None,
    image_column: str | None = None,
    label_column: str | None = None,
) -> HFDataBundle:
    """:func:`robust_prune.data.loading.load_data` for Hugging Face data (see there for the arguments).

    Example:
        >>> from torch.utils.data import TensorDataset
        >>> four = TensorDataset(torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 0, 1]))
        >>> splits = HFSplits(four, four, 2, {"train": {(8, 8)}, "test": {(8, 8)}}, "datasets")
        >>> bundle = load_hf_data(splits, image_size=None, channels=3, batch_size=4, seed=0, num_workers=0,
        ...                       augment=True, pin_memory=False)
        >>> tuple(next(iter(bundle.train))[0].shape), bundle.spec()["hf"], bundle.default_eps == 8 / 255
        ((4, 3, 8, 8), {}, True)
    """
    check_image_size(image_size)
    splits = hf_splits(data, image_column=image_column, label_column=label_column)
    side = image_side(splits, image_size)
    kind = splits.kind

    def fitted(base: Dataset, train: bool) -> Dataset:
        return FittedDataset(base, image_transform(kind, side, channels=channels, train=train, augment=augment))

    pin = torch.cuda.is_available() if pin_memory is None else bool(pin_memory)
    return HFDataBundle(
        train=make_loader(fitted(splits.train, True), batch_size, True, seed, num_workers, pin),
        test=make_loader(fitted(splits.test, False), batch_size, False, seed, num_workers, pin),
        num_classes=splits.num_classes,
        channels=channels,
        image_size=side,
        name=splits.name,
        default_eps=default_eps(kind),
        source=None,
        augment=augment and DATASETS[kind].augmentation is not None,
        origin=splits.origin,
    )
