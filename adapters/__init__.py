"""The timm family files, shipped as ``robust_prune.adapters``: one file per timm module (``resnet.py`` serves
``timm.models.resnet``). Each file imports the core's adapter API (:mod:`robust_prune.adapter_api`) and registers
its adapter with ``@register_adapter`` when imported; this package imports them all, as timm's ``models`` package
does. The core never imports this package: the registry loads it once, on its first lookup.

The adapter API's public names stay importable from here too (``from robust_prune.adapters import Adapter``, as
before they moved); new code imports them from ``robust_prune.adapter_api``.
"""

import robust_prune.adapter_api as _api
from robust_prune.adapter_api import *  # noqa: F403  (its public names: the import path from before they moved)

__all__ = list(_api.__all__)

# Family modules register themselves on import.
from . import (  # noqa: F401, E402  isort: skip
    beit,
    byobnet,
    cait,
    coat,
    convit,
    convnext,
    cpubone,
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
    focalnet,
    gcvit,
    gemma4_vit,
    ghostnet,
    hiera,
    hieradet_sam2,
    hrnet,
    iformer,
    inception_next,
    inception_v3,
    levit,
    lowformer,
    mambaout,
    maxxvit,
    metaformer,
    mlp_mixer,
    mobilenetv3,
    mobilenetv5,
    mobilevit,
    mvitv2,
    naflexvit,
    nest,
    nextvit,
    nfnet,
    pit,
    pvt_v2,
    qwen3_vit,
    regnet,
    res2net,
    resnest,
    resnet,
    rexnet,
    sequencer,
    shvit,
    sknet,
    swin_transformer,
    swin_transformer_v2,
    swin_transformer_v2_cr,
    tiny_vit,
    twins,
    vgg,
    visformer,
    vision_transformer,
    vision_transformer_relpos,
    volo,
    xcit,
)
