"""The adapters' shared toolkit, one import away. Nothing here names a model: each helper works on the modules'
attributes, and the family files decide where to use them. Split by job:

- ``_timm``: reading timm models (unwrapping, submodules, fixed input sizes, special timm layer classes);
- ``_attention``: attention heads of fused ``qkv`` layers and their fix-ups;
- ``_tracing``: context managers that help torch-pruning's dependency graph trace a family;
- ``_pruners``: pruners for timm layers torch-pruning does not know, and post-pruning fix-ups.
"""

from __future__ import annotations

from ._attention import (
    fix_qkv_attention,
    heads_by_qkv,
    whole_head_ratios,
)
from ._pruners import (
    FROZEN,
    BlurPoolPruner,
    ChannelParamPruner,
    FrozenPruner,
    cut_gain,
    fix_group_counts,
    frozen_class,
    timm_layer_pruners,
)
from ._timm import (
    fixed_img_size,
    fixed_output_attention_types,
    frozen_timm_types,
    is_multiplier_conv,
    modules_of_type,
    scaled_std_convs,
    submodule_names,
    unwrap_model,
    uses_blocks_from,
    weight_standardised_conv_types,
)
from ._tracing import (
    frozen_params,
    glu_tracing_forward,
    kept_output_channels,
    link,
    opaque_modules,
    patched_forwards,
    swapped_classes,
    timm_tracing_forwards,
)

__all__ = [
    "whole_head_ratios",
    "unwrap_model",
    "modules_of_type",
    "submodule_names",
    "uses_blocks_from",
    "heads_by_qkv",
    "fix_qkv_attention",
    "fixed_img_size",
    "ChannelParamPruner",
    "timm_layer_pruners",
    "fix_group_counts",
    "BlurPoolPruner",
    "swapped_classes",
    "opaque_modules",
    "link",
    "patched_forwards",
    "FrozenPruner",
    "FROZEN",
    "frozen_class",
    "is_multiplier_conv",
    "glu_tracing_forward",
    "timm_tracing_forwards",
    "frozen_params",
    "kept_output_channels",
    "cut_gain",
    "scaled_std_convs",
    "weight_standardised_conv_types",
    "fixed_output_attention_types",
    "frozen_timm_types",
]
