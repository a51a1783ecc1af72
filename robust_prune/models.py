"""Models in pixel space: normalisation lives inside the model, and timm models are fitted to the data.

:class:`NormalizedModel` is what every stage passes along. Besides the timm module it declares what a model
carries between stages and through a save: its pruning ``record``, its robustness ``report`` and, once loaded
from a folder, the ``saved_config`` section that described it. :func:`eval_mode` is the one way the library
switches a model to eval mode and back.

Example:
    >>> import timm
    >>> from robust_prune.models import NormalizedModel
    >>> model = NormalizedModel.from_timm(timm.create_model("resnet10t", num_classes=10))
    >>> model(torch.rand(2, 3, 32, 32)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import timm
import torch
from torch import nn

from robust_prune.adapter_api import creation_args, get_adapter, remember_creation_args, unwrap_model

from .data.transforms import FALLBACK_SIZE
from .distributed import model_device
from .errors import ModelAdaptationError
from .publishing.trust import loading_free

if TYPE_CHECKING:
    from .evaluation.report import RobustnessReport
    from .pruning.record import PruningRecord

__all__ = [
    "NormalizedModel",
    "create_model",
    "adapt_model",
    "base_model_of",
    "eval_mode",
    "input_size",
    "normalization_of",
]


@contextlib.contextmanager
def eval_mode(*models: nn.Module) -> Iterator[None]:
    """Put ``models`` in eval mode for the block; every submodule's own train/eval flag is restored after,
    even when the block raises (a frozen BatchNorm inside a training model stays frozen).

    Example:
        >>> import timm
        >>> m = timm.create_model("test_resnet").train()
        >>> with eval_mode(m):
        ...     m.training
        False
        >>> m.training
        True
    """
    modes = [(m, m.training) for model in models for m in model.modules()]
    for model in models:
        model.eval()
    try:
        yield
    finally:
        for module, mode in modes:
            module.training = mode

_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def input_size(model: nn.Module, image_size: int | None = None) -> list[int]:
    """``[channels, height, width]`` the model is traced, pruned and recorded at: its fixed input size where it has
    one, else ``image_size`` (the side of the data it is trained on), else its timm ``pretrained_cfg['input_size']``,
    else :data:`~robust_prune.data.transforms.FALLBACK_SIZE` (wrappers such as NormalizedModel are looked through).

    Example:
        >>> model = timm.create_model("test_resnet")   # its timm config: 160 px
        >>> input_size(model), input_size(model, image_size=64), input_size(nn.Conv2d(1, 8, 3))
        ([3, 160, 160], [3, 64, 64], [1, 32, 32])
    """
    inner = unwrap_model(model)
    adapter = get_adapter(inner, warn=False)
    size = adapter.fixed_input_size(inner)
    if size is None and image_size is not None:
        size = (image_size, image_size)
    if size is None:
        own = adapter.pretrained_cfg(inner).get("input_size")
        valid = isinstance(own, (list, tuple)) and len(own) == 3
        size = (int(own[-2]), int(own[-1])) if valid else (FALLBACK_SIZE, FALLBACK_SIZE)
    return [adapter.in_chans(inner), int(size[0]), int(size[1])]


def normalization_of(model: nn.Module, channels: int) -> tuple[list[float], list[float]]:
    """mean/std from timm's ``pretrained_cfg``, fitted to ``channels`` input channels."""
    cfg = dict(getattr(unwrap_model(model), "pretrained_cfg", None) or {})
    mean = list(cfg.get("mean", _IMAGENET_MEAN))
    std = list(cfg.get("std", _IMAGENET_STD))
    if len(mean) != channels:  # e.g. a 1-channel model: average the RGB statistics
        mean = [sum(mean) / len(mean)] * channels
        std = [sum(std) / len(std)] * channels
    return [float(m) for m in mean], [float(s) for s in std]


class NormalizedModel(nn.Module):
    """Wraps a model so it takes images in [0, 1] and normalises them itself.

    Attacks see pixel-space inputs, so eps is in pixel units. The wrapped timm model is
    ``self.model``; its ``state_dict()`` keeps timm's keys.

    Args:
        model: the model that expects normalised inputs.
        mean, std: per-channel statistics.

    Attributes:
        record: the :class:`~robust_prune.PruningRecord` that rebuilds this model from timm (None until a stage
            sets it; a dense record is made when it is saved without one).
        report: the :class:`~robust_prune.RobustnessReport` measured on it, if any.
        saved_config: the ``robust_prune`` section of the config.json it was loaded from, if any.
    """

    record: PruningRecord | None
    report: RobustnessReport | None
    saved_config: dict[str, Any] | None

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != len(std):
            raise ModelAdaptationError(f"mean has {len(mean)} channels but std has {len(std)}.")
        self.model = model
        device = model_device(model)  # a model handed in on the GPU gets its statistics there too
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32, device=device).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32, device=device).view(1, -1, 1, 1))
        self.record = None
        self.report = None
        self.saved_config = None

    @property
    def robust_prune_inner(self) -> nn.Module:
        return self.model

    @classmethod
    def from_timm(cls, model: nn.Module) -> NormalizedModel:
        """Wrap a timm model with the mean/std of its ``pretrained_cfg`` (no-op if already wrapped)."""
        if isinstance(model, NormalizedModel):
            return model
        channels = get_adapter(model, warn=False).in_chans(model)
        mean, std = normalization_of(model, channels)
        return cls(model, mean, std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)


def create_model(name: str, *, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """``timm.create_model`` that remembers its arguments, so a pruned copy can be rebuilt later.

    Only the arguments that shape the architecture are remembered (not where weights were loaded from: see
    :data:`robust_prune.publishing.trust.LOADING_KEYS`). With ``pretrained=True`` the Hub id of timm's weights is
    remembered as the model's base model (:func:`base_model_of`), for the model card.

    Example:
        >>> from robust_prune.adapter_api import creation_args
        >>> creation_args(create_model("resnet10t", num_classes=10))
        {'num_classes': 10}
    """
    try:
        model = timm.create_model(name, pretrained=pretrained, **kwargs)
    except RuntimeError as exc:
        if "Unknown model" in str(exc) or "Invalid model" in str(exc):
            raise ModelAdaptationError(
                f"timm has no model called {name!r}. List them with timm.list_models('{name[:4]}*')."
            ) from exc
        raise
    remember_creation_args(model, loading_free(kwargs))
    if pretrained and not _OTHER_SOURCES & set(kwargs):  # timm's own published weights, from the Hub
        setattr(model, _BASE_MODEL, (getattr(model, "pretrained_cfg", None) or {}).get("hf_hub_id"))
    return model


# The Hub id of the published weights a model started from, kept on the timm module (a deepcopy keeps it too).
_BASE_MODEL = "robust_prune_base_model"
# create_model arguments that make timm load weights from somewhere other than the pretrained_cfg's Hub id
_OTHER_SOURCES = {"pretrained_cfg", "pretrained_cfg_overlay", "checkpoint_path"}


def base_model_of(model: nn.Module) -> str | None:
    """The Hub id of the timm weights ``model`` was created from by :func:`create_model` (None when unknown).

    Example:
        >>> base_model_of(create_model("resnet10t")) is None   # timm's random initialisation
        True
    """
    found = getattr(unwrap_model(model), _BASE_MODEL, None)
    return found if isinstance(found, str) and found else None


def adapt_model(model: nn.Module, *, num_classes: int) -> nn.Module:
    """Fit a timm model's classifier to ``num_classes`` (timm's ``reset_classifier``), in place.

    Raises:
        ModelAdaptationError: for a non-module, or a model whose classifier cannot be reset.
    """
    if not isinstance(model, nn.Module):
        raise ModelAdaptationError(
            f"Expected a torch.nn.Module such as timm.create_model('resnet18'), got {type(model).__name__}."
        )
    if num_classes < 2:
        raise ModelAdaptationError(f"The data has {num_classes} class(es); classification needs at least 2.")
    inner = unwrap_model(model)
    current = getattr(inner, "num_classes", None)
    if current == num_classes:
        return model
    reset = getattr(inner, "reset_classifier", None)
    if reset is None:
        raise ModelAdaptationError(
            f"The model has {current} outputs but the data has {num_classes} classes, and "
            f"{type(inner).__name__} has no reset_classifier(). Create it with num_classes={num_classes}."
        )
    reset(num_classes)
    recorded = creation_args(inner)
    if recorded is not None:
        remember_creation_args(inner, {**recorded, "num_classes": num_classes})
    return model
