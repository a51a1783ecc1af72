"""Saving and loading robust_prune models as data: config.json + model.safetensors + report.json.

A channel-pruned model is rebuilt by creating the timm architecture and replaying the pruning record,
then loading weights with ``strict=True``. Nothing here unpickles a file.

Example:
    >>> import robust_prune as rp
    >>> rp.save_pretrained(result, "out/resnet18-digits")  # doctest: +SKIP
    >>> model = rp.from_pretrained("out/resnet18-digits")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from ._io import write_json, write_safetensors, write_text
from ._version import __version__
from .errors import CheckpointError, NotARobustPruneFolderError
from .evaluation import RobustnessReport
from .models import NormalizedModel
from .pruning.record import PruningRecord, rebuild_model

__all__ = ["save_pretrained", "from_pretrained", "load_folder", "CONFIG_NAME", "WEIGHTS_NAME", "REPORT_NAME"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
MASKS_NAME = "masks.safetensors"
REPORT_NAME = "report.json"


def _config_dict(model: NormalizedModel, record: PruningRecord, extra: dict[str, Any]) -> dict[str, Any]:
    inner = model.model
    cfg = dict(getattr(inner, "pretrained_cfg", None) or {})
    pretrained_cfg = {k: v for k, v in cfg.items() if isinstance(v, (str, int, float, bool, list, tuple, type(None)))}
    pretrained_cfg["mean"] = [float(v) for v in model.mean.flatten()]
    pretrained_cfg["std"] = [float(v) for v in model.std.flatten()]
    pretrained_cfg["input_size"] = list(record.input_size)
    pretrained_cfg["num_classes"] = int(getattr(inner, "num_classes", 0))
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


def save_pretrained(
    model_or_result: Any,
    save_directory: str | os.PathLike[str],
    *,
    record: PruningRecord | None = None,
    report: RobustnessReport | None = None,
    card: bool = True,
) -> Path:
    """Write a model (or a ``RobustifyResult``) to ``save_directory`` as config.json, model.safetensors,
    report.json / report.md and a model card README.md. Each file is written atomically.

    Args:
        model_or_result: a ``RobustifyResult``, or a NormalizedModel / timm model with ``record``.
        record: the pruning record (required for a bare model; a dense record is made if omitted).
        report: the robustness report to store beside it.
        card: also write README.md (a Hugging Face model card).

    Example:
        >>> save_pretrained(result, "out/run1")  # doctest: +SKIP
    """
    from .methods import dense_record

    extra: dict[str, Any] = {}
    if hasattr(model_or_result, "report") and hasattr(model_or_result, "record"):
        result = model_or_result
        model, record, report = result.model, result.record, result.report
        extra = {"method": result.config.method, "config": result.config.to_dict(), "data": result.data}
        if getattr(result, "ticket_report", None) is not None:
            extra["ticket_report"] = result.ticket_report.to_dict()
    else:
        model = NormalizedModel.from_timm(model_or_result)
        record = record or dense_record(model)
        extra = {"method": record.extra.get("method", "dense" if record.structure == "none" else "prune")}
    if not record.architecture:
        raise NotARobustPruneFolderError(
            "Only timm models can be saved: the record has no timm architecture to rebuild from."
        )
    out = Path(save_directory)
    out.mkdir(parents=True, exist_ok=True)
    config = _config_dict(model, record, extra)
    write_safetensors(out / WEIGHTS_NAME, model.model.state_dict(), metadata={"format": "pt"})
    if record.masks:
        write_safetensors(out / MASKS_NAME, {k: v.to(torch.uint8) for k, v in record.masks.items()})
    if report is not None:
        write_json(out / REPORT_NAME, report.to_dict())
        write_text(out / "report.md", report.to_markdown() + "\n")
    write_json(out / CONFIG_NAME, config)
    if card:
        from .model_card import build_model_card

        write_text(out / "README.md", str(build_model_card(config, report)))
    return out


def load_folder(folder: str | os.PathLike[str]) -> NormalizedModel:
    """Load a local robust_prune folder (see :func:`from_pretrained`)."""
    folder = Path(folder)
    config_path = folder / CONFIG_NAME
    if not folder.is_dir():
        raise NotARobustPruneFolderError(f"{folder} is not a folder. Pass a folder written by save_pretrained().")
    if not config_path.is_file() or not (folder / WEIGHTS_NAME).is_file():
        raise NotARobustPruneFolderError(
            f"{folder} has no {CONFIG_NAME} and {WEIGHTS_NAME}; it was not written by robust_prune.save_pretrained()."
        )
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{config_path} is not valid JSON ({exc}); the folder is corrupt.") from exc
    section = config.get("robust_prune") if isinstance(config, dict) else None
    if not isinstance(section, dict) or "record" not in section:
        raise NotARobustPruneFolderError(
            f"{config_path} has no 'robust_prune' section: this is not a robust_prune model. "
            "Plain timm models load with timm.create_model('hf-hub:...')."
        )
    masks = {}
    if (folder / MASKS_NAME).is_file():
        masks = {k: v.bool() for k, v in _load_tensors(folder / MASKS_NAME).items()}
    record = PruningRecord.from_dict(section["record"], masks=masks)
    inner = rebuild_model(record)
    state = _load_tensors(folder / WEIGHTS_NAME)
    try:
        inner.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"The weights in {folder / WEIGHTS_NAME} do not fit the recorded architecture: {exc}") from exc
    cfg = config.get("pretrained_cfg", {})
    model = NormalizedModel(inner, cfg.get("mean", [0.0] * 3), cfg.get("std", [1.0] * 3)).eval()
    model.pruning_record = record
    model.robustness_report = (
        RobustnessReport.from_json((folder / REPORT_NAME).read_text()) if (folder / REPORT_NAME).is_file() else None
    )
    model.robust_prune_config = section
    return model


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable safetensors file ({exc}); it is corrupt or truncated.") from exc


def from_pretrained(name_or_path: str | os.PathLike[str], *, revision: str | None = None) -> nn.Module:
    """Load a robust_prune model from a local folder or a Hugging Face Hub repository.

    Returns the model (normalisation inside, eval mode) with ``.pruning_record``, ``.robustness_report``
    and ``.robust_prune_config`` attached.

    Example:
        >>> model = from_pretrained("out/run1")  # doctest: +SKIP
        >>> model(torch.rand(1, 3, 32, 32)).shape  # doctest: +SKIP
    """
    path = Path(name_or_path)
    if path.exists():
        return load_folder(path)
    from .hub_remote import download_folder

    return load_folder(download_folder(str(name_or_path), revision=revision))
