"""Adapters for timm families, shipped as ``robust_prune.adapters``.

One file per timm module (``resnet.py`` serves ``timm.models.resnet``). Each file registers its adapter
with ``@register_adapter`` when imported; this package imports them all, as timm's ``models`` package does.
Shared machinery lives in the private modules: ``_base`` (the Adapter class and registry), ``_common``
(tracing helpers, attention fix-ups, pruners for timm's norm layers) and ``_layers`` (pruners for composite
timm layers such as selective kernels and split attention).
"""

from ._base import (
    Adapter,
    Example,
    GenericAdapter,
    adapter_by_name,
    creation_args,
    get_adapter,
    list_adapters,
    register_adapter,
    remember_creation_args,
    timm_module,
    unwrap_model,
)

# Family modules register themselves on import.
from . import (  # noqa: F401, E402  isort: skip
    beit,
    byobnet,
    cait,
    convnext,
    cspnet,
    densenet,
    dla,
    dpn,
    edgenext,
    efficientformer,
    efficientformer_v2,
    efficientnet,
    eva,
    fastvit,
    ghostnet,
    hrnet,
    inception_v3,
    levit,
    mambaout,
    maxxvit,
    metaformer,
    mlp_mixer,
    mobilevit,
    mobilenetv3,
    nfnet,
    regnet,
    rexnet,
    res2net,
    resnest,
    resnet,
    sknet,
    swin_transformer,
    swin_transformer_v2,
    swin_transformer_v2_cr,
    vgg,
    vision_transformer,
    vision_transformer_relpos,
)

__all__ = [
    "Adapter",
    "Example",
    "GenericAdapter",
    "adapter_by_name",
    "creation_args",
    "get_adapter",
    "list_adapters",
    "register_adapter",
    "remember_creation_args",
    "timm_module",
    "unwrap_model",
]
