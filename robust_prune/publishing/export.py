"""Leave for deployment: a dense, channel-pruned or grown model as an ONNX file.

A channel-pruned model is an ordinary (smaller) timm model, so it exports like one: the file holds the pruned
widths and runs in any ONNX runtime without robust_prune or torch-pruning. A :class:`NormalizedModel` exports
with its normalisation inside (the file takes pixels in [0, 1], like the model). Needs the ``export`` extra
(``pip install "robust-prune[export]"``: onnx and onnxruntime).

Example:
    >>> import timm, robust_prune as rp
    >>> model = rp.prune(timm.create_model("resnet10t", num_classes=10), 0.5).model
    >>> rp.export_onnx(model, "resnet10t.onnx", image_size=32).name
    'resnet10t.onnx'
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from robust_prune.adapter_api import get_adapter, unwrap_model

from ..atomic import write_file
from ..distributed import model_device
from ..errors import MissingDependencyError
from ..models import eval_mode, input_size

__all__ = ["export_onnx", "require_export_dependencies"]

# The opset every supported runtime reads and that has scaled_dot_product_attention's decomposition.
OPSET = 17


def require_export_dependencies() -> None:
    """Raise :class:`MissingDependencyError` naming the ``export`` extra when onnx or onnxruntime is missing.

    Example:
        >>> require_export_dependencies()  # nothing: the export extra is installed
    """
    missing = [name for name in ("onnx", "onnxruntime") if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingDependencyError(missing, extra="export")


def _input_size(model: nn.Module, image_size: int | tuple[int, int] | None) -> tuple[int, int]:
    if image_size is not None:
        return (image_size, image_size) if isinstance(image_size, int) else (int(image_size[0]), int(image_size[1]))
    inner = unwrap_model(model)
    fixed = get_adapter(inner, warn=False).fixed_input_size(inner)
    if fixed is not None:
        return fixed
    record = getattr(model, "record", None)
    if record is not None and record.input_size:  # the size it was traced (and so pruned) at
        return int(record.input_size[-2]), int(record.input_size[-1])
    _, height, width = input_size(inner)  # the model's own (pretrained_cfg), as pruning traces it
    return height, width


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    # torch's TorchScript exporter warns that it is the legacy one and about traced Python conditions in timm's
    # shape checks (constant for a fixed input size); neither concerns the user.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    image_size: int | tuple[int, int] | None = None,
    dynamic_batch: bool = True,
) -> Path:
    """Write ``model`` as an ONNX file (input ``pixels``, N x C x H x W; output ``logits``) and return its path.

    Args:
        model: a timm model or :class:`~robust_prune.models.NormalizedModel`, dense, channel-pruned or grown.
            Weight-pruned (masked) models export with their zeros; fold the masks first (the result's model is).
        path: the ``.onnx`` file to write (written atomically).
        image_size: input height and width (an int for square inputs). Default: the size the family insists on,
            else the size the model was trained and pruned at (its record's), else timm's ``pretrained_cfg`` input
            size, else 32 (:func:`robust_prune.models.input_size`).
        dynamic_batch: let the batch dimension vary (otherwise the file is fixed at batch 1).

    Raises:
        MissingDependencyError: onnx or onnxruntime is not installed (``pip install "robust-prune[export]"``).

    Example:
        >>> import timm, robust_prune as rp
        >>> rp.export_onnx(timm.create_model("test_resnet"), "dense.onnx", image_size=32).suffix
        '.onnx'
    """
    require_export_dependencies()
    height, width = _input_size(model, image_size)
    channels = get_adapter(unwrap_model(model), warn=False).in_chans(model)
    example = torch.rand(1, channels, height, width, device=model_device(model))
    target = Path(path)
    axes = {"pixels": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None

    def write(tmp: str) -> None:
        torch.onnx.export(
            model,
            (example,),
            tmp,
            input_names=["pixels"],
            output_names=["logits"],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,  # the TorchScript exporter: the dynamo one needs onnxscript as well
        )

    with eval_mode(model), torch.no_grad(), _quiet_export():
        return write_file(target, write)
