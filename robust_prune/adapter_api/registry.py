"""The adapter registry, like timm's model registry: family files register their adapters with
:func:`register_adapter`; :func:`get_adapter` matches a model on timm's metadata (the Python module that defines
its class: ``timm.models.resnet`` -> the ``resnet`` adapter), and core code asks the adapter, never the model's
name. The family files (``adapters/``, shipped as ``robust_prune.adapters``) import this package and never the
other way round: the registry loads the family package once, on its first lookup (:func:`_load_families`).

Example:
    >>> import timm
    >>> from robust_prune.adapter_api import get_adapter
    >>> get_adapter(timm.create_model("resnet10t", num_classes=10)).name
    'resnet'
"""

from __future__ import annotations

import importlib
import threading
import warnings

from torch import nn

from robust_prune.errors import ModelAdaptationError

from .base import Adapter
from .timm_meta import timm_module, unwrap_model

__all__ = ["FAMILY_PACKAGE", "GenericAdapter", "adapter_by_name", "get_adapter", "list_adapters", "register_adapter"]

# The package of family files (adapters/ in the repository). Loaded by name, once: the core never imports it.
FAMILY_PACKAGE = "robust_prune.adapters"

_REGISTRY: dict[str, Adapter] = {}
# Re-entrant: the family files call register_adapter (which loads the families first) while they are loaded.
_LOADING = threading.RLock()
_loaded = False


def _load_families() -> None:
    """Import the family package once, so every built-in adapter is registered before a lookup or a user's
    registration (a user's adapter of the same name replaces the built-in one, as it did when the families
    loaded at import). A failed import is raised again on the next call, never left half-registered."""
    global _loaded
    with _LOADING:
        if _loaded:
            return
        _loaded = True
        try:
            importlib.import_module(FAMILY_PACKAGE)
        except BaseException:
            _loaded = False
            raise


class GenericAdapter(Adapter):
    """Fallback for families without an adapter: torch-pruning's defaults, results checked afterwards."""

    name = "generic"

    def matches(self, model: nn.Module) -> bool:
        return True


_GENERIC = GenericAdapter()


def register_adapter(cls: type[Adapter]) -> type[Adapter]:
    """Class decorator that registers an adapter under its ``name`` (like timm's ``@register_model``).

    Example:
        >>> from robust_prune.adapter_api import Adapter, register_adapter
        >>> @register_adapter
        ... class MyNetAdapter(Adapter):
        ...     name = "my_net"
        ...     timm_modules = ("my_net",)
    """
    if not cls.name or cls.name == "generic":
        raise ValueError(f"{cls.__name__} needs a unique `name`.")
    _load_families()  # the built-in adapters first: a user's adapter of the same name replaces its family's
    _REGISTRY[cls.name] = cls()
    return cls


def list_adapters() -> list[str]:
    """Names of the registered adapters, sorted.

    Example:
        >>> "resnet" in list_adapters()
        True
    """
    _load_families()
    return sorted(_REGISTRY)


def get_adapter(model: nn.Module, *, warn: bool = True) -> Adapter:
    """The adapter for ``model``, matched on timm metadata; the generic adapter (with a warning) if none matches.

    Raises:
        ModelAdaptationError: if ``model`` is not an ``nn.Module``.

    Example:
        >>> import timm
        >>> get_adapter(timm.create_model("test_resnet")).name, get_adapter(timm.create_model("test_vit")).name
        ('resnet', 'vision_transformer')
    """
    if not isinstance(model, nn.Module):
        raise ModelAdaptationError(
            f"Expected a torch.nn.Module (e.g. timm.create_model('resnet18')), got {type(model).__name__}."
        )
    _load_families()
    for adapter in sorted(_REGISTRY.values(), key=lambda a: -a.priority):
        if adapter.matches(model):
            return adapter
    if warn:
        family = timm_module(model) or type(unwrap_model(model)).__name__
        warnings.warn(
            f"No robust_prune adapter for '{family}'; using torch-pruning's generic settings. "
            "The pruned model is checked (forward pass, output shape) before it is returned.",
            stacklevel=2,
        )
    return _GENERIC


def adapter_by_name(name: str) -> Adapter:
    """The registered adapter called ``name`` (``"generic"`` for the fallback)."""
    if name == "generic":
        return _GENERIC
    _load_families()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ModelAdaptationError(f"No adapter named {name!r}. Known: {', '.join(list_adapters())}.") from None
