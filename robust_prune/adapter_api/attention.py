"""Attention heads: which output channels of a fused ``qkv`` belong to which head, the attention attributes
(``num_heads``, ``head_dim``, ``scale``) fixed up after pruning, and ``HeadDimAttentionAdapter``, the base of the
families with fused-``qkv`` attention."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from .base import Adapter
from .timm_meta import submodule_names, unwrap_model

__all__ = [
    "HeadDimAttentionAdapter",
    "whole_head_ratios",
    "heads_by_qkv",
    "fix_qkv_attention",
]


def heads_by_qkv(
    model: nn.Module, *, qkv: str = "qkv", heads: str = "num_heads", where: Callable[[nn.Module], bool] | None = None
) -> dict[nn.Module, int]:
    """``{module.<qkv>: module.<heads>}`` for every submodule with a fused qkv ``nn.Linear`` (or 1x1 conv)."""
    out: dict[nn.Module, int] = {}
    for m in model.modules():
        layer, n = getattr(m, qkv, None), getattr(m, heads, None)
        if isinstance(layer, (nn.Linear, nn.Conv2d)) and isinstance(n, int) and n > 0:
            if where is None or where(m):
                out[layer] = n
    return out


def _out_width(layer: nn.Module) -> int:
    return int(layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels)


def whole_head_ratios(num_heads: dict[nn.Module, int], sparsity: float) -> dict[nn.Module, float]:
    """torch-pruning head ratios that remove ``sparsity`` of each layer's heads, rounded, keeping at least one.

    torch-pruning removes ``ceil(ratio * heads)`` heads, so each ratio sits half a head below the count wanted
    (a float product landing a hair above an integer would take one head more); 0 leaves the layer's heads.
    """
    ratios = {}
    for layer, heads in num_heads.items():
        remove = min(heads - 1, math.floor(sparsity * heads + 0.5))
        ratios[layer] = (remove - 0.5) / heads if remove > 0 else 0.0
    return ratios


def fix_qkv_attention(
    model: nn.Module,
    num_heads: dict[nn.Module, int],
    *,
    qkv: str = "qkv",
    chunks: int = 3,
    attrs: Sequence[str] = ("head_dim", "attn_dim", "scale", "fused_attn"),
    keep_scale: bool = True,
    unfuse: bool = True,
) -> dict[str, dict[str, Any]]:
    """Set ``num_heads``/``head_dim``/``attn_dim`` of every attention whose ``qkv`` is in ``num_heads``.

    Where whole heads went, the head width and so the scale are unchanged and the fused kernel stays. After
    head-dim pruning, ``F.scaled_dot_product_attention`` scales by 1/sqrt(new head_dim) while the
    stored ``scale`` still holds 1/sqrt(original head_dim). We keep the original temperature (``keep_scale``),
    which keeps the pruned network closest to the dense one it inherits its weights from, and switch the
    module to its explicit (non-fused) path (``unfuse``) so that the stored scale is the one used. Both are
    returned so the record replays them and a rebuilt model computes exactly the same function.
    """
    names = submodule_names(model)
    fixed: dict[str, dict[str, Any]] = {}
    for m in model.modules():
        layer = getattr(m, qkv, None)
        if layer is None or layer not in num_heads:
            continue
        heads = int(num_heads[layer])
        head_dim = _out_width(layer) // (chunks * heads)
        scale = getattr(m, "scale", None)
        before = getattr(m, "head_dim", None) or (round(scale**-2) if isinstance(scale, float) else None)
        values: dict[str, Any] = {"num_heads": heads}
        if "head_dim" in attrs and hasattr(m, "head_dim"):
            values["head_dim"] = head_dim
        if "attn_dim" in attrs and hasattr(m, "attn_dim"):
            values["attn_dim"] = heads * head_dim
        if "scale" in attrs and isinstance(getattr(m, "scale", None), float):
            values["scale"] = float(m.scale) if keep_scale else head_dim**-0.5
        if "fused_attn" in attrs and hasattr(m, "fused_attn"):
            values["fused_attn"] = False if unfuse and head_dim != before else bool(m.fused_attn)
        for attr, value in values.items():
            setattr(m, attr, value)
        fixed[names[m]] = values
    return fixed


class HeadDimAttentionAdapter(Adapter):
    """Families with fused-``qkv`` attention. With ``attention="heads"`` and ``whole_heads``, ``sparsity`` of each
    layer's heads go whole (rounded, at least one kept; the kept heads keep their width, scale and fused kernel).
    Otherwise every head loses the same dimensions and the head count is kept. ``num_heads``/``head_dim``/
    ``scale`` are fixed up and recorded afterwards (see :func:`fix_qkv_attention`)."""

    unfuse_attention = True
    recorded_attrs = (*Adapter.recorded_attrs, "num_heads", "head_dim", "attn_dim", "scale", "fused_attn")

    def num_heads(self, model: nn.Module) -> dict[nn.Module, int]:
        return heads_by_qkv(unwrap_model(model))

    def attention_kwargs(self, model: nn.Module, *, attention: str, sparsity: float) -> dict[str, Any]:
        if attention != "heads" or not self.whole_heads:
            return {"prune_head_dims": True, "prune_num_heads": False}
        return {
            "prune_head_dims": False,
            "prune_num_heads": True,
            "head_pruning_ratio": float(sparsity),  # the global ranking's target
            "head_pruning_ratio_dict": whole_head_ratios(self.num_heads(model), sparsity),
        }

    def after_prune(self, model: nn.Module, num_heads: dict[nn.Module, int]) -> dict[str, dict[str, Any]]:
        attrs = super().after_prune(model, num_heads)
        attrs.update(fix_qkv_attention(unwrap_model(model), num_heads, unfuse=self.unfuse_attention))
        return attrs
