"""Atomic writes: a file through a temp file in the same folder, then ``os.replace``; a folder through a temporary
sibling swapped in (:func:`replaced_folder`). A crash leaves no half-written file and no half-replaced folder.
Public so that the benchmark suites write their results the way the library writes its own."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from .errors import ConfigError

# Every temporary name the library writes starts with this, so that a cleanup removes its own leftovers only.
TEMP_PREFIX = ".robust_prune-tmp."


def temp_name(name: str) -> str:
    """The library's temporary name for ``name`` (what :func:`remove_temporaries` recognises).

    Example:
        >>> temp_name("000001")
        '.robust_prune-tmp.000001'
    """
    return TEMP_PREFIX + name


def remove_temporaries(folder: Path) -> None:
    """Remove the leftovers of the library's interrupted writes directly in ``folder`` (files or folders), and
    nothing else: a user's own ``.notes.tmp`` stays.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> _ = (root / temp_name("a.json.x1")).write_text("half")
        >>> _ = (root / ".notes.tmp").write_text("mine")
        >>> remove_temporaries(root)
        >>> sorted(p.name for p in root.iterdir())
        ['.notes.tmp']
    """
    for stray in folder.glob(TEMP_PREFIX + "*"):
        if stray.is_dir() and not stray.is_symlink():
            shutil.rmtree(stray, ignore_errors=True)
        else:
            stray.unlink(missing_ok=True)


def _atomic(path: Path, write: Callable[[str], None]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temp_name(f"{path.name}."), dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_file(path: str | os.PathLike[str], write: Callable[[str], None]) -> Path:
    """Atomically create ``path`` with ``write(tmp_path)`` (for writers that take a file name, e.g. ONNX)."""
    return _atomic(Path(path), write)


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


@contextlib.contextmanager
def replaced_folder(target: str | os.PathLike[str], *, owned: Collection[str]) -> Iterator[Path]:
    """Write a folder's new content into a temporary sibling and swap it in when the block succeeds.

    The block writes the new files into the yielded folder. Afterwards, the old folder's entries whose names are
    in ``owned`` are gone (exactly the new ones take their place) and every other entry (a run's checkpoints, a
    git clone's ``.git``) is carried over by hard link. If the block raises, or the process dies before the swap,
    ``target`` keeps its previous content. The swap is two renames (old folder aside, new folder in); a crash
    between them leaves the previous folder intact beside it as ``.NAME.old-*``, which the next save to ``target``
    puts back before it starts (two saves into one folder at the same time are not supported).

    Raises:
        ConfigError: ``target`` is a file, or holds the current working directory.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> with replaced_folder(root / "m", owned={"a.txt"}) as staged:
        ...     _ = (staged / "a.txt").write_text("new")
        >>> sorted(p.name for p in (root / "m").iterdir())
        ['a.txt']
    """
    target = Path(target).absolute()
    if target.is_symlink():  # replace the folder the link points to, not the link
        target = target.resolve()
    if target.exists() and not target.is_dir():
        raise ConfigError(f"{target} is a file; save into a folder (a new or robust_prune-written one).")
    if target.exists() and (Path.cwd() == target or target in Path.cwd().parents):
        raise ConfigError(f"{target} holds the current working directory; save into a folder of its own.")
    target.parent.mkdir(parents=True, exist_ok=True)
    _recover(target)
    staged = target.parent / f".{target.name}.saving-{uuid.uuid4().hex[:12]}"
    staged.mkdir()  # (not mkdtemp: the folder gets the usual permissions, or the old folder's)
    if target.exists():
        shutil.copymode(target, staged)
    try:
        yield staged
        if target.exists():
            for entry in target.iterdir():
                if entry.name not in owned:
                    _link_tree(entry, staged / entry.name)
        _swap(staged, target)
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def _recover(target: Path) -> None:
    """Undo a save that died between its two renames, and remove the temporary folders of dead saves."""
    backups = sorted(target.parent.glob(f".{target.name}.old-*"))
    if backups and not target.exists():
        os.replace(backups.pop(), target)
    for leftover in [*backups, *target.parent.glob(f".{target.name}.saving-*")]:
        shutil.rmtree(leftover, ignore_errors=True)


def _swap(staged: Path, target: Path) -> None:
    if not target.exists():
        os.replace(staged, target)
        return
    backup = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:12]}"
    os.replace(target, backup)
    try:
        os.replace(staged, target)
    except BaseException:
        os.replace(backup, target)
        raise
    shutil.rmtree(backup, ignore_errors=True)


def _link_tree(src: Path, dst: Path) -> None:
    """Carry ``src`` to ``dst`` by hard links (copies where the file system has none); symlinks stay links."""
    if src.is_symlink():
        os.symlink(os.readlink(src), dst)
    elif src.is_dir():
        shutil.copytree(src, dst, symlinks=True, copy_function=_link_or_copy)
    else:
        _link_or_copy(str(src), str(dst))


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
