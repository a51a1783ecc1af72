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
    coat,
    convit,
    convnext,
    crossvit,
    csatv2,
    cspnet,
    davit,
    densenet,
    dla,
    dpn,
    edgenext,
    efficientformer,
    efficientformer_v2,
    efficientnet,
    efficientvim,
    efficientvit_mit,
    efficientvit_msra,
    eva,
    fasternet,
    fastvit,
    gcvit,
    ghostnet,
    hrnet,
    inception_next,
    inception_v3,
    levit,
    mambaout,
    maxxvit,
    metaformer,
    mlp_mixer,
    mobilenetv3,
    mobilevit,
    nfnet,
    pit,
    pvt_v2,
    regnet,
    res2net,
    resnest,
    resnet,
    rexnet,
    sknet,
    swin_transformer,
    swin_transformer_v2,
    swin_transformer_v2_cr,
    tiny_vit,
    vgg,
    vision_transformer,
    vision_transformer_relpos,
    xcit,
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
