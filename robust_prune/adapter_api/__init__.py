"""The adapter API: the ``Adapter`` base class, the registry and the machinery every timm family shares.

Family files (``adapters/`` in the repository, shipped as ``robust_prune.adapters``) import this package and
register themselves, as timm's model files import its registry; the core imports this package and never a
family file. The registry loads the family package once, on its first lookup.

- :mod:`.base`: ``Adapter``, its hooks and their defaults; :mod:`.examples`: ``Example``;
- :mod:`.registry`: ``register_adapter``, ``get_adapter``, ``list_adapters``, ``adapter_by_name``;
- :mod:`.attention` (``HeadDimAttentionAdapter``) and :mod:`.hidden` (``HiddenWidthAdapter``): the bases that
  several families share;
- the toolkit a family file uses: :mod:`.timm_meta` (reading timm models), :mod:`.tracing` (helping
  torch-pruning's tracer), :mod:`.pruners` and :mod:`.layers` (pruners for timm layers, fix-ups).

Example:
    >>> import timm
    >>> from robust_prune.adapter_api import HeadDimAttentionAdapter, get_adapter
    >>> isinstance(get_adapter(timm.create_model("test_vit")), HeadDimAttentionAdapter)
    True
"""

from .attention import HeadDimAttentionAdapter
from .base import Adapter
from .examples import Example
from .hidden import HiddenWidthAdapter
from .registry import GenericAdapter, adapter_by_name, get_adapter, list_adapters, register_adapter
from .timm_meta import creation_args, remember_creation_args, timm_module, unwrap_model

__all__ = [
    "Adapter",
    "Example",
    "GenericAdapter",
    "HeadDimAttentionAdapter",
    "HiddenWidthAdapter",
    "adapter_by_name",
    "creation_args",
    "get_adapter",
    "list_adapters",
    "register_adapter",
    "remember_creation_args",
    "timm_module",
    "unwrap_model",
]
