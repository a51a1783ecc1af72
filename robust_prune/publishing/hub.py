"""Saving, loading and publishing robust_prune models as data: config.json + model.safetensors + report.json.

A folder holds config.json (timm's ``architecture`` / ``num_classes`` / ``model_args`` / ``pretrained_cfg`` plus a
``robust_prune`` section with the pruning record, method, attack and training settings and the data spec),
model.safetensors, masks.safetensors (weight structure only), report.json / report.md and a model card README.md.
A channel-pruned model is rebuilt by creating the timm architecture and replaying the pruning record, then loading
weights with ``strict=True``; dense, weight-masked and grown models keep timm's architecture, so timm loads them
too. Nothing here unpickles a file.

What loads is what was measured:

- a folder save is written to a temporary sibling and swapped in, so the folder holds exactly this save's files
  (no stale report, masks or card) or, after a crash, its previous content; before the swap the written config
  is checked to rebuild the saved shapes;
- a loaded model carries its record, report and config section into the next save, so load -> save -> load gives
  the same outputs, record and files;
- a downloaded config.json is checked (:mod:`robust_prune.publishing.trust`) before any weight file is opened;
- a push makes the repository's robust_prune files exactly this model's, in one commit
  (see :mod:`robust_prune.publishing.hub_remote`).

Example:
    >>> import robust_prune as rp, torch
    >>> result = rp.robustify("test_resnet", epochs=0, finetune_epochs=0, eval_n=8, eval_steps=1, progress=False)
    >>> folder = rp.save_pretrained(result, "out/test_resnet-digits")
    >>> model = rp.from_pretrained("out/test_resnet-digits")
    >>> commit = result.push_to_hub("me/test_resnet-digits-robust")
    >>> again = rp.from_pretrained("me/test_resnet-digits-robust")
    >>> x = torch.rand(2, 3, 32, 32)
    >>> torch.equal(again(x), model(x)) and torch.equal(model(x), result.model(x))
    True
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from .._version import __version__
from ..atomic import replaced_folder, write_json, write_safetensors, write_text
from ..distributed import main_process_only
from ..errors import CheckpointError, NotARobustPruneFolderError
from ..evaluation.report import RobustnessReport
from ..models import NormalizedModel, base_model_of
from ..pruning.masks import folded_state
from ..pruning.record import PruningRecord
from .hub_remote import FOLDER_FILES
from .trust import check_config

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .hub_remote import PushOptions

__all__ = [
    "save_pretrained",
    "from_pretrained",
    "load_folder",
    "push_folder",
    "push_to_hub",
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "REPORT_NAME",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
MASKS_NAME = "masks.safetensors"
REPORT_NAME = "report.json"
CARD_NAME = "README.md"
# pretrained_cfg keys that describe where timm's original weights came from, not these weights
_SOURCE_KEYS = {"url", "file", "hf_hub_id", "hf_hub_filename", "source", "state_dict", "tag", "custom_load"}


def _json_safe(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _config_dict(model: NormalizedModel, record: PruningRecord, extra: dict[str, Any]) -> dict[str, Any]:
    """config.json: timm's fields (architecture, num_classes, model_args, pretrained_cfg) + a robust_prune section."""
    inner = model.model
    cfg = dict(getattr(inner, "pretrained_cfg", None) or {})
    pretrained_cfg = {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in cfg.items()
        if k not in _SOURCE_KEYS and (v is not None or k in ("first_conv", "classifier", "pool_size")) and _json_safe(v)
    }
    pretrained_cfg["mean"] = [float(v) for v in model.mean.flatten()]
    pretrained_cfg["std"] = [float(v) for v in model.std.flatten()]
    pretrained_cfg["input_size"] = list(record.input_size)
    pretrained_cfg.pop("test_input_size", None)
    pretrained_cfg["num_classes"] = int(getattr(inner, "num_classes", 0))
    pretrained_cfg["architecture"] = record.architecture
    args = dict(record.model_args)
    return {
        "architecture": record.architecture,
        "num_classes": args.pop("num_classes", pretrained_cfg["num_classes"]),
        "num_features": int(getattr(inner, "num_features", 0)),
        "model_args": args,
        "pretrained_cfg": pretrained_cfg,
        "robust_prune": {
            "library_version": __version__,
            "structure": record.structure,
            "sparsity": record.sparsity,
            "record": record.to_dict(),
            **extra,
        },
    }


@main_process_only(lambda model_or_result, save_directory, **_: Path(save_directory))
def save_pretrained(
    model_or_result: Any,
    save_directory: str | os.PathLike[str],
    *,
    record: PruningRecord | None = None,
    report: RobustnessReport | None = None,
    card: bool = True,
    repo_id: str | None = None,
    base_model: str | None = None,
) -> Path:
    """Write a model (or a ``RobustifyResult``) to ``save_directory`` as config.json, model.safetensors,
    masks.safetensors (weight structure), report.json / report.md and a model card README.md.

    The files are written to a temporary sibling folder, checked (the config passes the load-time checks and its
    record rebuilds exactly the saved tensor shapes), then swapped in: afterwards the folder holds exactly this
    save's files, and if anything fails it keeps its previous content. Entries robust_prune does not write (a
    run's checkpoints) are kept. Nothing is pickled.

    Args:
        model_or_result: a ``RobustifyResult``, a NormalizedModel (it carries its ``record``, ``report`` and, once
            loaded with :func:`from_pretrained`, its config section, all of which go into the save), or a timm model.
        record: the pruning record, overriding the one the model carries (a dense record when there is none).
        report: the robustness report to store beside it, overriding the one the model carries.
        card: also write README.md (a Hugging Face model card).
        repo_id: the Hub repository the card's loading code names (a placeholder when None).
        base_model: the Hub id of the weights the model started from, for the card's ``base_model`` (default: the
            one recorded when the model was loaded or created with ``robust_prune.models.create_model(...,
            pretrained=True)``).

    Under torchrun / accelerate launch only the main process writes; the others return ``save_directory`` at once.

    Raises:
        CheckpointError: the model does not fit its record (e.g. a channel-pruned timm module saved without it);
            nothing is written.

    Example:
        >>> import timm, robust_prune as rp
        >>> result = rp.robustify("test_resnet", epochs=0, finetune_epochs=0, eval_n=8, eval_steps=1, progress=False)
        >>> save_pretrained(result, "out/run1").name
        'run1'
        >>> model, record = rp.prune(timm.create_model("test_resnet", num_classes=10), 0.5)
        >>> sorted(p.name for p in save_pretrained(model, "out/run2", record=record).iterdir())
        ['README.md', 'config.json', 'model.safetensors']
    """
    model, record, report, extra = _what_to_save(model_or_result, record, report)
    base_model = base_model or extra.get("base_model") or base_model_of(model)
    if base_model:
        extra["base_model"] = base_model
    if not record.architecture:
        raise NotARobustPruneFolderError(
            "Only timm models can be saved: the record has no timm architecture to rebuild from."
        )
    state = folded_state(model.model.state_dict())[0]
    with replaced_folder(save_directory, owned=FOLDER_FILES) as staged:
        write_safetensors(staged / WEIGHTS_NAME, state, metadata={"format": "pt"})
        if record.masks:
            write_safetensors(staged / MASKS_NAME, {k: v.to(torch.uint8) for k, v in record.masks.items()})
        if report is not None:
            write_json(staged / REPORT_NAME, report.to_dict())
            write_text(staged / "report.md", report.to_markdown() + "\n")
        write_json(staged / CONFIG_NAME, _config_dict(model, record, extra))
        if card:
            _write_card(staged, repo_id)
        _check_rebuilds(staged, state, record)
    return Path(save_directory)


# Entries of a loaded model's config section that a save derives afresh; the rest (method, training config, data,
# ticket report, base model) travels into the next save unchanged.
_DERIVED = ("library_version", "structure", "sparsity", "record")


def _what_to_save(
    model_or_result: Any, record: PruningRecord | None, report: RobustnessReport | None
) -> tuple[NormalizedModel, PruningRecord, RobustnessReport | None, dict[str, Any]]:
    """The model, record, report and config-section extras of a save, from a result or from a bare model."""
    if not isinstance(model_or_result, nn.Module):  # a RobustifyResult
        result = model_or_result
        extra = {"method": result.config.method, "config": result.config.to_dict(), "data": dict(result.data)}
        if getattr(result, "ticket_report", None) is not None:
            extra["ticket_report"] = result.ticket_report.to_dict()
        return result.model, record or result.record, report or result.report, extra
    model = NormalizedModel.from_timm(model_or_result)
    record = record or model.record or PruningRecord.for_dense_model(model)
    report = report or model.report
    extra = {k: v for k, v in (model.saved_config or {}).items() if k not in _DERIVED}
    extra.setdefault("method", record.extra.get("method", "dense" if record.structure == "none" else "prune"))
    if "data" not in extra and report is not None and report.meta.get("data"):
        extra["data"] = {"name": report.meta["data"]}
    return model, record, report, extra


def _check_rebuilds(folder: Path, state: dict[str, torch.Tensor], record: PruningRecord) -> None:
    """A written folder must load: its config passes the load-time checks and its record rebuilds the saved shapes.

    The rebuild runs on a forked RNG, so saving leaves the global random state alone.
    """
    config = _read_config(folder)
    rebuilt = PruningRecord.from_dict(config["robust_prune"]["record"], masks=record.masks).build(seed=0)
    expected = {k: tuple(v.shape) for k, v in rebuilt.state_dict().items()}
    saved = {k: tuple(v.shape) for k, v in state.items()}
    saved.update({f"mask of {k}": tuple(v.shape) for k, v in record.masks.items()})
    expected.update({f"mask of {k}": expected.get(k) for k in record.masks})
    wrong = sorted(k for k in set(expected) | set(saved) if expected.get(k) != saved.get(k))
    if wrong:
        details = ", ".join(f"{k}: saved {saved.get(k)}, rebuilt {expected.get(k)}" for k in wrong[:3])
        raise CheckpointError(
            f"Not saved: the model does not fit its pruning record ({len(wrong)} tensors differ; {details}). "
            "A pruned model must be saved with the record that made it: save the NormalizedModel or result that "
            "carries it, or pass record=."
        )


def _write_card(folder: Path, repo_id: str | None) -> None:
    from .model_card import build_model_card

    config = _read_config(folder)
    report_path = folder / REPORT_NAME
    report = RobustnessReport.from_json(report_path.read_text(encoding="utf-8")) if report_path.is_file() else None
    write_text(folder / CARD_NAME, str(build_model_card(config, report, repo_id=repo_id)))


def _read_config(folder: Path) -> dict[str, Any]:
    """config.json of a robust_prune folder, checked to be ours and trustworthy (no weight file is opened)."""
    if not folder.is_dir():
        raise NotARobustPruneFolderError(f"{folder} is not a folder. Pass a folder written by save_pretrained().")
    if not (folder / CONFIG_NAME).is_file() or not (folder / WEIGHTS_NAME).is_file():
        raise NotARobustPruneFolderError(
            f"{folder} has no {CONFIG_NAME} and {WEIGHTS_NAME}; it was not written by robust_prune.save_pretrained()."
        )
    return _checked_config(folder / CONFIG_NAME)


def _checked_config(config_path: Path, source: str | None = None) -> dict[str, Any]:
    """Parse a config.json, check that robust_prune wrote it and that it asks for nothing untrusted."""
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{config_path} is not valid JSON ({exc}); the folder is corrupt.") from exc
    section = config.get("robust_prune") if isinstance(config, dict) else None
    if not isinstance(section, dict) or "record" not in section:
        raise NotARobustPruneFolderError(
            f"{source or config_path} has no 'robust_prune' section: this is not a robust_prune model. "
            "Plain timm models load with timm.create_model('hf-hub:...')."
        )
    check_config(config, source=source or str(config_path))
    return config


# The one guard of the publishing entry points: the non-main processes of a distributed run push nothing and get an
# empty URL back.
_publishes = main_process_only(lambda *_, **__: "")


@_publishes
def push_folder(folder: str | os.PathLike[str], repo_id: str, **push: Unpack[PushOptions]) -> str:
    """Publish a folder written by :func:`save_pretrained` (e.g. a ``robustify`` run directory) in one commit.

    The model card is regenerated for ``repo_id``; only the model files travel (no checkpoints, no logs). The
    commit also deletes the repository's robust_prune files this folder does not have (e.g. the masks or report
    of a model pushed there before), so the repository then holds exactly this model; its other files stay.
    Returns the commit URL (an empty string on the non-main processes of a distributed run, which push nothing).
    ``**push`` takes :class:`~robust_prune.publishing.hub_remote.PushOptions`: ``private``, ``token``, ``revision`` and
    ``commit_message``.

    Raises:
        NotARobustPruneFolderError: the folder was not written by robust_prune.
        UntrustedConfigError: its config.json would be refused on load.
        HubError: invalid repository id, no token, refused token, or a network failure (nothing committed).

    Example:
        >>> import timm, robust_prune as rp
        >>> model, record = rp.prune(timm.create_model("test_resnet", num_classes=10), 0.5)
        >>> folder = save_pretrained(model, "runs/test_resnet-digits-prune", record=record)
        >>> push_folder(folder, "me/test_resnet-digits-robust").startswith("http")
        True
    """
    from .hub_remote import checked_push, upload_folder

    folder = Path(folder)
    _read_config(folder)
    push = checked_push(repo_id, push)
    with tempfile.TemporaryDirectory(prefix="robust_prune_push_") as tmp:
        staged = Path(tmp)
        for name in FOLDER_FILES:
            if (folder / name).is_file() and name != CARD_NAME:
                shutil.copyfile(folder / name, staged / name)
        return upload_folder(staged, repo_id, prepare=lambda resolved: _write_card(staged, resolved), **push)


@_publishes
def push_to_hub(
    model_or_result: Any,
    repo_id: str,
    *,
    record: PruningRecord | None = None,
    report: RobustnessReport | None = None,
    **push: Unpack[PushOptions],
) -> str:
    """Save a ``RobustifyResult`` (or a model with its record and report) and publish it in one commit.

    ``**push`` takes :class:`~robust_prune.publishing.hub_remote.PushOptions` (``private``, ``token``, ``revision``,
    ``commit_message``). The token comes from ``token``, ``HF_TOKEN`` or ``hf auth login``; it is never written or
    logged. Returns the commit URL (an empty string on the non-main processes of a distributed run, which push nothing).

    Example:
        >>> import robust_prune as rp
        >>> result = rp.robustify("test_resnet", epochs=0, finetune_epochs=0, eval_n=8, eval_steps=1, progress=False)
        >>> url = push_to_hub(result, "me/test_resnet-digits-robust", private=True)
        >>> from_pretrained("me/test_resnet-digits-robust").report.n
        8
    """
    from .hub_remote import checked_push

    push = checked_push(repo_id, push)
    with tempfile.TemporaryDirectory(prefix="robust_prune_save_") as tmp:
        save_pretrained(model_or_result, tmp, record=record, report=report, card=False)
        return push_folder(tmp, repo_id, **push)


def load_folder(folder: str | os.PathLike[str]) -> NormalizedModel:
    """Load a local robust_prune folder (see :func:`from_pretrained`)."""
    folder = Path(folder)
    config = _read_config(folder)
    section = config["robust_prune"]
    names = section["record"].get("mask_names", [])
    # the architecture is built before any tensor file is read (a record naming a missing module fails here)
    inner = PruningRecord.from_dict({**section["record"], "mask_names": []}).build()
    masks = {}
    if names:  # only the masks the record names (a stray masks file from elsewhere is not applied)
        stored = _load_tensors(folder / MASKS_NAME) if (folder / MASKS_NAME).is_file() else {}
        masks = {k: v.bool() for k, v in stored.items() if k in names}
    record = PruningRecord.from_dict(section["record"], masks=masks)
    state = _load_tensors(folder / WEIGHTS_NAME)
    try:
        inner.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(
            f"The weights in {folder / WEIGHTS_NAME} do not fit the recorded architecture: {exc}"
        ) from exc
    cfg = config.get("pretrained_cfg", {})
    channels = record.input_size[0]
    model = NormalizedModel(inner, cfg.get("mean", [0.0] * channels), cfg.get("std", [1.0] * channels)).eval()
    model.record = record
    report_path = folder / REPORT_NAME
    model.report = RobustnessReport.from_json(report_path.read_text()) if report_path.is_file() else None
    model.saved_config = section
    return model


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path} is not a readable safetensors file ({exc}); it is corrupt or truncated."
        ) from exc


def from_pretrained(
    name_or_path: str | os.PathLike[str],
    *,
    revision: str | None = None,
    token: str | bool | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool = False,
) -> NormalizedModel:
    """Load a robust_prune model from a local folder or a Hugging Face Hub repository (``"me/name"`` or
    ``"hf://me/name"``).

    config.json is checked first (:mod:`robust_prune.publishing.trust`: a plain timm architecture, constructor arguments
    only, declared module attributes only); then the architecture is rebuilt from the timm name and the pruning
    record, and the safetensors weights are loaded with ``strict=True``. Nothing is unpickled. Returns the model
    (a :class:`~robust_prune.models.NormalizedModel`: normalisation inside, eval mode) carrying its ``record``, its
    ``report`` and the ``saved_config`` section.

    Args:
        name_or_path: a folder written by :func:`save_pretrained`, or a Hub repository id.
        revision, token, cache_dir, local_files_only: passed to huggingface_hub for a repository (the token
            defaults to ``HF_TOKEN`` or the saved login; ``local_files_only=True`` uses the cache only).

    Raises:
        NotARobustPruneFolderError: the folder or repository does not hold a robust_prune model.
        UntrustedConfigError: its config.json asks for something robust_prune never writes (no weight was read).
        HubError: invalid repository id, missing repository or revision, or a network failure.

    Example:
        >>> import timm, robust_prune as rp
        >>> model, record = rp.prune(timm.create_model("test_resnet", num_classes=10), 0.5)
        >>> url = push_to_hub(model, "me/test_resnet-digits-robust", record=record)
        >>> save_pretrained(model, "out/run1", record=record).name
        'run1'
        >>> local = from_pretrained("out/run1")
        >>> remote = from_pretrained("me/test_resnet-digits-robust", revision="main")
        >>> x = torch.rand(1, 3, 32, 32)
        >>> torch.equal(local(x), remote(x)), remote(x).shape
        (True, torch.Size([1, 10]))
    """
    name = os.fspath(name_or_path)
    if name.startswith("hf://"):
        name = name[len("hf://") :]
    elif Path(name).exists():
        return load_folder(name)
    from ..errors import HubError
    from .hub_remote import download_folder, validate_repo_id

    try:
        validate_repo_id(name)
    except HubError as exc:
        raise HubError(f"{name!r} is not a local folder, and {exc}") from None
    folder = download_folder(
        name,
        revision=revision,
        token=token,
        cache_dir=cache_dir,
        local_files_only=local_files_only,
        check_config=lambda path: _checked_config(path, source=f"{name}/{CONFIG_NAME}"),
    )
    return load_folder(folder)
