"""Checking a downloaded config.json before any of it reaches timm, a ``setattr`` or a weight file.

A saved model is rebuilt from data: a timm architecture name, the keyword arguments of its constructor, the pruning
record and the module attributes that record sets. Each of those is a way into code: ``timm.create_model`` fetches
other repositories for ``hf-hub:``/``local-dir:`` names and loads files for ``checkpoint_path`` or a
``pretrained_cfg`` overlay, and a ``setattr`` can change any computation while the strict weight load still passes.
So a config is accepted only when

- ``architecture`` is a plain name registered with timm (``timm.list_models()``);
- ``model_args`` are arguments the architecture's constructor takes, with plain JSON values, and none of
  :data:`LOADING_KEYS` (the arguments ``create_model`` / ``build_model_with_cfg`` use to find and load weights or
  to place the model);
- ``module_attrs`` set only the attributes the family's adapter declares (``Adapter.recorded_attrs``), to numbers;
- the rest of the record (structure, history, input size, mask names) and the normalisation have the shape
  robust_prune writes.

Anything else raises :class:`~robust_prune.errors.UntrustedConfigError` naming the key. Every folder
``save_pretrained`` writes passes the same check before it is kept, so what is saved always loads.

Example:
    >>> check_model_args("resnet10t", {"num_classes": 10, "in_chans": 3})
    >>> check_model_args("resnet10t", {"checkpoint_path": "/tmp/evil.pth"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    robust_prune.errors.UntrustedConfigError: Refusing to load config.json: model_args.checkpoint_path ...
"""

from __future__ import annotations

import functools
import inspect
import math
import re
from collections.abc import Mapping
from typing import Any

import timm
import torch

from robust_prune.adapter_api import adapter_by_name

from ..data.transforms import FALLBACK_SIZE
from ..errors import ModelAdaptationError, UntrustedConfigError

__all__ = [
    "LOADING_KEYS",
    "check_architecture",
    "check_config",
    "check_model_args",
    "check_module_attrs",
    "check_record",
    "constructor_keys",
    "loading_free",
]

# Keyword arguments of timm.create_model / build_model_with_cfg (timm 1.0) that load files, URLs or Hub repos,
# reshape the model into something else (feature extractors) or place it on a device: never taken from a config.
LOADING_KEYS = frozenset(
    {
        "pretrained",
        "pretrained_cfg",
        "pretrained_cfg_overlay",
        "pretrained_strict",
        "pretrained_filter_fn",
        "pretrained_model_args",
        "checkpoint_path",
        "cache_dir",
        "features_only",
        "feature_cfg",
        "feature_cls",
        "out_indices",
        "kwargs_filter",
        "model_cfg",
        "pruned",
        "scriptable",
        "exportable",
        "no_jit",
        "device",
        "dtype",
    }
)
_PLAIN_NAME = re.compile(r"^[a-z0-9_]+$")
_STRUCTURES = ("none", "channel", "weight")
_MAX_SIDE = 8192  # the traced input of a record replay is allocated: bound it
_MAX_CHANNELS = 64


def loading_free(args: Mapping[str, Any]) -> dict[str, Any]:
    """``args`` without :data:`LOADING_KEYS`: what may be recorded to rebuild an architecture.

    Example:
        >>> loading_free({"num_classes": 10, "checkpoint_path": "w.pth"})
        {'num_classes': 10}
    """
    return {k: v for k, v in args.items() if k not in LOADING_KEYS}


def check_architecture(name: Any, *, source: str = "config.json") -> str:
    """``name`` if it is a plain timm model name (no ``hf-hub:``/``local-dir:`` source, no tag, registered)."""
    # the pattern rules out sources ("hf-hub:") and pretrained tags ("name.tag"), which is_model would accept
    if not isinstance(name, str) or not _PLAIN_NAME.match(name) or not timm.is_model(name):
        raise UntrustedConfigError(
            "architecture", f"is {name!r}, not a model name registered with timm (timm.list_models())", source=source
        )
    return name


@functools.lru_cache(maxsize=256)
def constructor_keys(architecture: str) -> tuple[frozenset[str], bool]:
    """The keyword arguments the constructor of ``architecture``'s model class takes (through its base classes),
    and whether it also takes ``**kwargs`` (overlaid on a model config by families such as byobnet and maxxvit).

    The class is found by creating the default model on the ``meta`` device (no memory, no weights).

    Example:
        >>> keys, open_ended = constructor_keys("resnet10t")
        >>> "num_classes" in keys, open_ended
        (True, False)
    """
    check_architecture(architecture)
    try:
        with torch.device("meta"):
            cls = type(timm.create_model(architecture, pretrained=False))
    except (RuntimeError, NotImplementedError, TypeError, ValueError, AssertionError):  # an init meta cannot run
        cls = type(timm.create_model(architecture, pretrained=False))
    keys: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is torch.nn.Module:
            continue
        params = inspect.signature(init).parameters.values()
        keys.update(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            return frozenset(keys - {"self"}), False
    return frozenset(keys - {"self"}), True


def _plain_value(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_plain_value(v) for v in value)
    return False


def check_model_args(architecture: str, args: Any, *, source: str = "config.json", prefix: str = "model_args") -> None:
    """Refuse ``args`` unless every key is a constructor argument of ``architecture`` (not a loading key) with a
    plain JSON value (numbers, strings, booleans, null, lists of them)."""
    if not isinstance(args, Mapping):
        raise UntrustedConfigError(prefix, "is not a mapping of keyword arguments", source=source)
    for key in args:
        if key in LOADING_KEYS:
            raise UntrustedConfigError(
                f"{prefix}.{key}", "tells timm where to load weights or configuration from", source=source
            )
    keys, open_ended = constructor_keys(check_architecture(architecture, source=source))
    for key, value in args.items():
        if not isinstance(key, str) or (key not in keys and not open_ended):
            raise UntrustedConfigError(
                f"{prefix}.{key}", f"is not an argument of {architecture}'s constructor", source=source
            )
        if not _plain_value(value):
            raise UntrustedConfigError(
                f"{prefix}.{key}", "has a value that is not a number, string, boolean or list of them", source=source
            )


def check_module_attrs(
    module_attrs: Any, allowed: tuple[str, ...] | frozenset[str], *, source: str = "config.json", family: str = ""
) -> None:
    """Refuse module attributes outside ``allowed`` (the adapter's ``recorded_attrs``) or with non-numeric values."""
    if not isinstance(module_attrs, Mapping):
        raise UntrustedConfigError("record.module_attrs", "is not a mapping of module names", source=source)
    for module, attrs in module_attrs.items():
        if not isinstance(module, str) or not isinstance(attrs, Mapping):
            raise UntrustedConfigError(f"record.module_attrs.{module}", "is not {attribute: value}", source=source)
        for attr, value in attrs.items():
            key = f"record.module_attrs.{module}.{attr}"
            if attr not in allowed:
                raise UntrustedConfigError(
                    key, f"is not an attribute the {family or 'model'} adapter declares ({', '.join(allowed)})",
                    source=source,
                )  # fmt: skip
            if not isinstance(value, (bool, int, float)) or (isinstance(value, float) and not math.isfinite(value)):
                raise UntrustedConfigError(key, f"has the value {value!r}, not a finite number", source=source)


def _check_ints(key: str, values: Any, *, low: int, high: int | None, source: str) -> None:
    ok = isinstance(values, list) and all(
        isinstance(v, int) and not isinstance(v, bool) and v >= low and (high is None or v <= high) for v in values
    )
    if not ok:
        bound = f" in [{low}, {high}]" if high is not None else f" >= {low}"
        raise UntrustedConfigError(key, f"is not a list of integers{bound}", source=source)


def check_record(record: Any, *, source: str = "config.json") -> None:
    """Check a pruning record's JSON form (``robust_prune.record`` of config.json) field by field."""
    if not isinstance(record, Mapping):
        raise UntrustedConfigError("robust_prune.record", "is not a mapping", source=source)
    if record.get("structure") not in _STRUCTURES:
        raise UntrustedConfigError("record.structure", f"is {record.get('structure')!r}, not one of {_STRUCTURES}",
                                   source=source)  # fmt: skip
    architecture = check_architecture(record.get("architecture"), source=source)
    check_model_args(architecture, record.get("model_args", {}), source=source, prefix="record.model_args")
    try:
        adapter = adapter_by_name(str(record.get("adapter", "generic")))
    except ModelAdaptationError:
        raise UntrustedConfigError("record.adapter", f"is {record.get('adapter')!r}, not a registered adapter",
                                   source=source) from None  # fmt: skip
    check_module_attrs(record.get("module_attrs", {}), adapter.recorded_attrs, source=source, family=adapter.name)
    size = record.get("input_size", [3, FALLBACK_SIZE, FALLBACK_SIZE])
    _check_ints("record.input_size", size, low=1, high=_MAX_SIDE, source=source)
    if len(size) != 3 or size[0] > _MAX_CHANNELS:
        raise UntrustedConfigError("record.input_size", f"is {size!r}, not [channels, height, width]", source=source)
    history = record.get("history", [])
    if not isinstance(history, list):
        raise UntrustedConfigError("record.history", "is not a list", source=source)
    for i, step in enumerate(history):
        if not (isinstance(step, list) and len(step) == 3 and isinstance(step[0], str) and isinstance(step[1], bool)):
            raise UntrustedConfigError(f"record.history[{i}]", "is not [module name, is_out, indices]", source=source)
        _check_ints(f"record.history[{i}]", step[2], low=0, high=None, source=source)
    names = record.get("mask_names", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise UntrustedConfigError("record.mask_names", "is not a list of parameter names", source=source)


def check_config(config: Any, *, source: str = "config.json") -> None:
    """Check a saved model's whole config.json (the record and the normalisation) before anything is built.

    Raises:
        UntrustedConfigError: naming the first key robust_prune would not have written.
    """
    section = config.get("robust_prune") if isinstance(config, Mapping) else None
    if not isinstance(section, Mapping):
        raise UntrustedConfigError("robust_prune", "is missing", source=source)
    record = section.get("record")
    check_record(record, source=source)
    cfg = config.get("pretrained_cfg", {})
    if not isinstance(cfg, Mapping):
        raise UntrustedConfigError("pretrained_cfg", "is not a mapping", source=source)
    channels = record.get("input_size", [3])[0]
    for key in ("mean", "std"):
        values = cfg.get(key, [0.0 if key == "mean" else 1.0] * channels)
        numbers = isinstance(values, list) and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values
        )
        if not numbers or len(values) != channels or (key == "std" and min(values) <= 0):
            raise UntrustedConfigError(
                f"pretrained_cfg.{key}", f"is {values!r}, not {channels} finite numbers" + (" > 0" * (key == "std")),
                source=source,
            )  # fmt: skip
