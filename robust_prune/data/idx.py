"""The MNIST family's official files (IDX format, gzip-compressed or not), found, checked and read.

Files are looked for in ``data_dir`` itself, in torchvision's layout under it (``data_dir/FashionMNIST/raw``), and,
without a ``data_dir``, in the system dataset folder where Debian's packages put them
(:func:`robust_prune.data.catalog.system_dataset_dir`). Every file is checked before use (magic number, header sizes
against the bytes, image and label counts) and fingerprinted (sha256), so a run records exactly what it read.

Example:
    >>> import tempfile, numpy as np
    >>> folder = Path(tempfile.mkdtemp())
    >>> write_idx(folder / "labels-idx1-ubyte.gz", np.arange(10, dtype=np.uint8))
    >>> read_idx(folder / "labels-idx1-ubyte.gz").tolist()
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import CorruptDatasetError, DatasetNotFoundError
from .catalog import DatasetInfo, system_dataset_dir

__all__ = ["IdxSplit", "IdxFiles", "find_idx_files", "read_idx", "write_idx", "load_idx_dataset"]

_UBYTE = 0x08  # the only element type the MNIST family uses


def _fix(info: DatasetInfo) -> str:
    debian = " or `apt-get install dataset-fashion-mnist`" if info.name == "fashion-mnist" else ""
    return f"Download {info.pretty_name}'s official files again{debian}."


def read_idx(path: str | os.PathLike[str], *, fix: str = "Download the file again.") -> np.ndarray:
    """An IDX file of unsigned bytes (``.gz`` or not) as an array of the shape its header declares.

    Raises:
        CorruptDatasetError: a truncated or damaged gzip stream, a wrong magic number, or a header whose sizes do
            not match the bytes that follow (the message names the file and ``fix``).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":  # gzip, whatever the file is called
            raw = gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as exc:
        raise CorruptDatasetError(f"{path} is not a complete gzip file ({exc}). {fix}") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != _UBYTE or not 1 <= raw[3] <= 4:
        raise CorruptDatasetError(
            f"{path} does not start with an IDX magic number of unsigned bytes (got {raw[:4].hex() or 'nothing'}, "
            f"expected 0000080N). {fix}"
        )
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise CorruptDatasetError(f"{path} ends inside its IDX header ({len(raw)} bytes). {fix}")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise CorruptDatasetError(
            f"{path}'s header declares {' x '.join(map(str, shape))} = {expected:,} bytes of data but the file "
            f"holds {len(raw) - header:,}. {fix}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write ``array`` (unsigned bytes) as an IDX file, gzip-compressed when ``path`` ends in ``.gz``.

    The inverse of :func:`read_idx`, for making test data and small copies of a dataset.
    """
    array = np.ascontiguousarray(array, dtype=np.uint8)
    data = struct.pack(">HBB", 0, _UBYTE, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    Path(path).write_bytes(gzip.compress(data, mtime=0) if str(path).endswith(".gz") else data)


@dataclass(frozen=True)
class IdxFiles:
    """The four files of one dataset: role (``train_images``...) -> path, and the folder they were found in."""

    folder: Path
    paths: dict[str, Path]


def _candidates(info: DatasetInfo, data_dir: str | os.PathLike[str] | None) -> list[Path]:
    if data_dir is None:
        return [system_dataset_dir(info.name)]
    root = Path(data_dir)
    folders = [root]
    if info.torchvision:
        folders.append(root / info.torchvision / "raw")
    return folders


def _present(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def find_idx_files(info: DatasetInfo, data_dir: str | os.PathLike[str] | None) -> IdxFiles:
    """Find the dataset's four IDX files (see the module docstring for where).

    Raises:
        DatasetNotFoundError: no folder holds them (the message says where to put them), or a folder holds some of
            them but not all (the message names the missing ones).
    """
    folders = _candidates(info, data_dir)
    for folder in folders:
        found = {role: _present(folder, name) for role, name in info.files.items()}
        if all(found.values()):
            return IdxFiles(folder, {role: path for role, path in found.items() if path is not None})
        if any(found.values()):
            missing = [f"{info.files[role]}[.gz]" for role, path in found.items() if path is None]
            raise DatasetNotFoundError(
                f"{folder} holds part of {info.pretty_name} but not {', '.join(missing)}. {_fix(info)}"
            )
    names = ", ".join(f"{name}[.gz]" for name in info.files.values())
    where = " or ".join(str(f) for f in folders)
    debian = (
        f" With no data_dir the system copy is read from {system_dataset_dir(info.name)} "
        "(`apt-get install dataset-fashion-mnist`)."
        if info.name == "fashion-mnist"
        else f" With no data_dir they are read from {system_dataset_dir(info.name)}."
    )
    raise DatasetNotFoundError(
        f"{info.pretty_name} was not found in {where}. Pass data_dir=DIR (CLI: --data-dir DIR) for a folder holding "
        f"its four official files ({names}), or torchvision's layout DIR/{info.torchvision}/raw, or add "
        f"download=True (--download) on a machine with internet.{debian}"
    )


class IdxSplit(Dataset):
    """One split held as bytes (N, 1, H, W); items are ``(float image in [0, 1], label)``."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images = torch.from_numpy(images.copy()).unsqueeze(1)
        self.labels = torch.from_numpy(labels.astype(np.int64))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index].float() / 255.0, int(self.labels[index])


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_idx_dataset(
    info: DatasetInfo, data_dir: str | os.PathLike[str] | None
) -> tuple[IdxSplit, IdxSplit, list[dict[str, str]]]:
    """The train and test splits of an MNIST-family dataset, and the files read (name and sha256 each).

    Raises:
        DatasetNotFoundError: see :func:`find_idx_files`.
        CorruptDatasetError: a damaged file (see :func:`read_idx`), images that are not 3-d, labels that are not
            1-d or out of range, or image and label counts that differ.
    """
    found = find_idx_files(info, data_dir)
    arrays = {role: read_idx(path, fix=_fix(info)) for role, path in found.paths.items()}
    splits = []
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        image_path, label_path = found.paths[f"{split}_images"], found.paths[f"{split}_labels"]
        if images.ndim != 3 or labels.ndim != 1:
            raise CorruptDatasetError(
                f"{image_path} must hold images (3 dimensions) and {label_path} labels (1 dimension); they hold "
                f"{images.ndim} and {labels.ndim}. {_fix(info)}"
            )
        if len(images) != len(labels):
            raise CorruptDatasetError(
                f"{image_path} holds {len(images):,} images but {label_path} {len(labels):,} labels. {_fix(info)}"
            )
        if info.num_classes is not None and len(labels) and int(labels.max()) >= info.num_classes:
            raise CorruptDatasetError(
                f"{label_path} holds label {int(labels.max())}; {info.pretty_name} has {info.num_classes} classes. "
                f"{_fix(info)}"
            )
        splits.append(IdxSplit(images, labels))
    files = [{"name": path.name, "sha256": _sha256(path)} for path in found.paths.values()]
    return splits[0], splits[1], files
