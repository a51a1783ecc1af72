"""Data: named datasets, image folders and Hugging Face data as [0, 1] loaders fitted to the model."""

from .loading import (
    DataBundle,
    check_batch_shape,
    check_pixels,
    default_eps,
    first_n,
    load_data,
    pixel_faults,
    raise_bad_pixels,
)

__all__ = [
    "DataBundle", "load_data", "first_n", "check_pixels", "check_batch_shape", "pixel_faults", "raise_bad_pixels",
    "default_eps",
]  # fmt: skip
