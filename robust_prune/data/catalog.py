"""Every named dataset, declared once: what loading, transforms, the CLI, ``evaluate`` and the model card read.

A :class:`DatasetInfo` is to a dataset what timm's ``pretrained_cfg`` is to a model: the facts generic code is
driven by (native size, channels, classes, default L-inf budget, training augmentation, where its files live and
what they are called, its Hub id for model cards). Adding a dataset of the MNIST family is one entry here.

Example:
    >>> info = dataset_info("fashion-mnist")
    >>> info.native_size, info.channels, info.num_classes, info.default_eps
    (28, 1, 10, 0.1)
    >>> info.files["train_images"]
    'train-images-idx3-ubyte'
    >>> dataset_info("imagefolder").augmentation
    'resized-crop-flip'
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import DatasetError

__all__ = ["DatasetInfo", "DATASETS", "dataset_info", "named_datasets", "dataset_by_hub_id", "default_eps", "IDX_FILES",
           "system_dataset_dir"]

# The four files of the MNIST family, as their authors publish them (each may also be gzip-compressed, ``.gz``).
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# Where Debian's dataset packages install data (``apt-get install dataset-fashion-mnist``), one folder per dataset.
# ROBUST_PRUNE_DATASETS_DIR points it elsewhere (a shared data disk, or tests).
_SYSTEM_DATASETS = "/usr/share/datasets"


def system_dataset_dir(name: str) -> Path:
    """The system folder of a named dataset (``/usr/share/datasets/<name>``, Debian's layout).

    Example:
        >>> system_dataset_dir("fashion-mnist").name
        'fashion-mnist'
    """
    return Path(os.environ.get("ROBUST_PRUNE_DATASETS_DIR") or _SYSTEM_DATASETS) / name


@dataclass(frozen=True)
class DatasetInfo:
    """The facts of one dataset.

    Attributes:
        name: the name users pass (``data="fashion-mnist"``, ``--dataset fashion-mnist``).
        native_size: the side its images are read at by default.
        channels: channels of its images (matched to the model's on loading).
        num_classes: number of classes (None: read from the data, as for image folders).
        default_eps: the usual L-inf budget in pixel units (None: the user must give one).
        augmentation: the training split's augmentation (``crop-flip``, ``resized-crop-flip``, or None).
        torchvision: the torchvision class that reads it from a local root, if any.
        files: the file names of its official distribution (the IDX files of the MNIST family), if read directly.
        hub_id, pretty_name: how model cards name it (``datasets:`` metadata and text).
        embedded: shipped with a dependency (nothing to download).
        kind_of_data: not a dataset one names but a kind of data (an image folder, Hugging Face data).
    """

    name: str
    native_size: int | None
    channels: int | None
    num_classes: int | None
    default_eps: float | None
    augmentation: str | None = None
    torchvision: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    hub_id: str | None = None
    pretty_name: str | None = None
    embedded: bool = False
    kind_of_data: bool = False

    @property
    def reads_idx(self) -> bool:
        """Whether the library reads its official IDX files itself (the MNIST family)."""
        return bool(self.files)


DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo("digits", 32, 1, 10, 0.1, embedded=True, hub_id="digits",
                    pretty_name="scikit-learn digits (8x8, upsampled)"),
        DatasetInfo("mnist", 28, 1, 10, 0.3, torchvision="MNIST", files=IDX_FILES, hub_id="ylecun/mnist",
                    pretty_name="MNIST"),
        DatasetInfo("fashion-mnist", 28, 1, 10, 0.1, torchvision="FashionMNIST", files=IDX_FILES,
                    hub_id="zalando-datasets/fashion_mnist", pretty_name="Fashion-MNIST"),
        DatasetInfo("cifar10", 32, 3, 10, 8 / 255, "crop-flip", "CIFAR10", hub_id="uoft-cs/cifar10",
                    pretty_name="CIFAR-10"),
        DatasetInfo("cifar100", 32, 3, 100, 8 / 255, "crop-flip", "CIFAR100", hub_id="uoft-cs/cifar100",
                    pretty_name="CIFAR-100"),
        DatasetInfo("svhn", 32, 3, 10, 8 / 255, "crop-flip", "SVHN", hub_id="ufldl-stanford/svhn", pretty_name="SVHN"),
        # kinds of data, not named datasets: a folder of class sub-folders; Hugging Face data that is none of the
        # datasets above (``hf:REPO`` or objects; "datasets" names a DatasetDict built in memory)
        DatasetInfo("imagefolder", None, None, None, 4 / 255, "resized-crop-flip", kind_of_data=True),
        DatasetInfo("hf", None, None, None, 8 / 255, "crop-flip", kind_of_data=True),
        DatasetInfo("datasets", None, None, None, 8 / 255, "crop-flip", hub_id="datasets",
                    pretty_name="a local Hugging Face DatasetDict", kind_of_data=True),
    )
}  # fmt: skip


def named_datasets() -> tuple[str, ...]:
    """The names ``data=`` accepts as a dataset (image folders and loaders aside).

    Example:
        >>> named_datasets()[:3]
        ('digits', 'mnist', 'fashion-mnist')
    """
    return tuple(name for name, info in DATASETS.items() if not info.kind_of_data)


def dataset_info(name: str) -> DatasetInfo:
    """The declaration of a dataset by name.

    Raises:
        DatasetError: an unknown name (the message lists the known ones).
    """
    if name not in DATASETS:
        raise DatasetError(
            f"Unknown dataset {name!r}. Use one of {', '.join(named_datasets())}, a folder of images, "
            "or a (train_loader, test_loader) pair."
        )
    return DATASETS[name]


def dataset_by_hub_id(repo_id: str) -> str | None:
    """The name of the declared dataset a Hub dataset repository holds (for its eps and augmentation), else None.

    Example:
        >>> dataset_by_hub_id("uoft-cs/cifar10"), dataset_by_hub_id("someone/else")
        ('cifar10', None)
    """
    return next((name for name in named_datasets() if DATASETS[name].hub_id == repo_id), None)


def default_eps(name: str) -> float | None:
    """The default L-inf budget of a named dataset (pixel units); None for data that carries none (user loaders).

    Example:
        >>> default_eps("digits"), default_eps("loaders")
        (0.1, None)
    """
    info = DATASETS.get(name)
    return None if info is None else info.default_eps
