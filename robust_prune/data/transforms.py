"""The resolution each dataset is read at and the training-split augmentation of each kind of data.

Defaults (documented in the README): a named dataset at its native resolution (the embedded digits at 32 px,
MNIST/Fashion-MNIST at 28, CIFAR/SVHN at 32), an image folder at the model's pretrained input size, a model with
a fixed input size at that size. Augmentation of the training split: random crop with 4 px padding + horizontal
flip for CIFAR/SVHN (the standard of adversarial training there), RandomResizedCrop + flip for image folders,
none for digits and MNIST (a flipped digit is another digit). Test splits are never augmented.

Example:
    >>> resolve_image_size("cifar10", None), resolve_image_size("mnist", None), resolve_image_size("digits", 64)
    (32, 28, 64)
    >>> fit = image_transform("cifar10", 32, channels=3, train=True, augment=True)
    >>> fit(torch.rand(3, 32, 32)).shape
    torch.Size([3, 32, 32])
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from ..errors import ConfigError, DatasetError
from .catalog import DATASETS

__all__ = [
    "ImageTransform",
    "check_image_size",
    "resolve_image_size",
    "image_transform",
    "fit_images",
]

MIN_IMAGE_SIZE = 8  # below this the stems of timm models reduce the image to nothing
# The side of a model whose timm config names no input size: its image folders are read, and without data it is
# traced and pruned, at this size (robust_prune.models.input_size).
FALLBACK_SIZE = 32


def check_image_size(image_size: Any) -> None:
    """Refuse an ``image_size`` that is not an int of at least 8 pixels (None is "the default")."""
    if image_size is None:
        return
    if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < MIN_IMAGE_SIZE:
        raise ConfigError(
            f"image_size must be an integer of at least {MIN_IMAGE_SIZE} pixels (the side of the square input), "
            f"got {image_size!r}. Leave it out for the dataset's own resolution."
        )


def resolve_image_size(
    data: Any, image_size: int | None, *, fixed: tuple[int, int] | None = None, pretrained: int | None = None
) -> int:
    """The side the images of ``data`` are read at.

    Args:
        data: a dataset name, an image folder path, or None (the embedded digits).
        image_size: the user's choice (None: the default above).
        fixed: the model's required input size, if it has one (it wins; a different explicit size is an error).
        pretrained: the model's pretrained input side (the default for image folders).

    Raises:
        ConfigError: ``image_size`` is not an int >= 8, or differs from the model's fixed input size.
    """
    check_image_size(image_size)
    if fixed is not None:
        if image_size is not None and image_size != fixed[0]:
            raise ConfigError(
                f"The model takes only {fixed[0]}x{fixed[1]} inputs, not image_size={image_size}. Leave image_size "
                f"out, or create the model with img_size={image_size}."
            )
        return int(fixed[0])
    if image_size is not None:
        return image_size
    name = "digits" if data is None else str(data) if isinstance(data, (str, os.PathLike)) else None
    native = DATASETS[name].native_size if name in DATASETS else None
    if native is not None:
        return native
    return pretrained or FALLBACK_SIZE


def fit_images(images: torch.Tensor, image_size: int, channels: int) -> torch.Tensor:
    """(N, C, H, W) in [0, 1] -> (N, channels, image_size, image_size) in [0, 1] (bilinear resize, channels
    repeated or averaged)."""
    if images.dim() != 4:
        raise DatasetError(f"Images must have shape (N, C, H, W); got {tuple(images.shape)}.")
    if images.shape[-2:] != (image_size, image_size):
        images = F.interpolate(images, size=(image_size, image_size), mode="bilinear", align_corners=False)
    c = images.shape[1]
    if c != channels:
        if c == 1:
            images = images.expand(-1, channels, -1, -1)
        elif channels == 1:
            images = images.mean(dim=1, keepdim=True)
        else:
            raise DatasetError(f"Cannot turn {c}-channel images into {channels} channels; give the model {c} inputs.")
    return images.clamp(0.0, 1.0).contiguous()


class ImageTransform:
    """One image (C, H, W in [0, 1]) -> ``channels`` x ``image_size`` x ``image_size``, with an optional
    augmentation before (``resized-crop-flip``: on the full-resolution image) or after (``crop-flip``) the fit.
    A class, not a closure, so that DataLoader workers can pickle it."""

    def __init__(self, image_size: int, channels: int, style: str | None) -> None:
        from torchvision import transforms

        self.image_size, self.channels, self.style = image_size, channels, style
        self.augment: Callable[[torch.Tensor], torch.Tensor] | None = None
        if style == "resized-crop-flip":
            self.augment = transforms.Compose(
                [transforms.RandomResizedCrop(image_size, antialias=True), transforms.RandomHorizontalFlip()]
            )
        elif style == "crop-flip":
            self.augment = transforms.Compose(
                [transforms.RandomCrop(image_size, padding=4), transforms.RandomHorizontalFlip()]
            )

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        if self.style == "resized-crop-flip":
            image = self.augment(image)  # type: ignore[misc]
        image = fit_images(image.unsqueeze(0), self.image_size, self.channels)[0]
        return self.augment(image) if self.style == "crop-flip" else image  # type: ignore[misc]


def image_transform(kind: str, image_size: int, *, channels: int, train: bool, augment: bool) -> ImageTransform:
    """The transform of one split: augmented when ``train`` and ``augment`` and ``kind`` (a dataset name or
    ``"imagefolder"``) declares one (:mod:`robust_prune.data.catalog`)."""
    style = DATASETS[kind].augmentation if kind in DATASETS else None
    return ImageTransform(image_size, channels, style if (train and augment) else None)
