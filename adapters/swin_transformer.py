"""timm.models.swin_transformer: Swin Transformer (V1).

- ``PatchMerging`` gathers each 2x2 neighbourhood into ``4 * C`` channels (``reshape``/``permute``/``flatten``)
  before its LayerNorm and linear reduction; torch-pruning cannot map channel indices through that, so the
  layer is opaque with its own pruner: input channel ``c`` is ``c`` in each of the four blocks of the
  norm and of the reduction's input; output channels are the reduction's rows.
- ``WindowAttention`` loses whole heads like ViT's (``attention="heads"``): its relative position bias table
  has one column per head and stays out of the graph, so while torch-pruning works the linear-layer pruner
  also cuts the columns of the heads a ``qkv`` loses (``HeadTables``; replayed the same way). With
  ``attention="head_dim"`` every head loses the same dimensions (head count kept, original scale kept,
  explicit attention path, all recorded).
- Fixed input size (``img_size``; window sizes must divide each stage's grid).
LayerNorm over pruned widths: growth is not exact.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch_pruning as tp
from timm.models.swin_transformer import PatchMerging, WindowAttention
from torch import nn
from torch_pruning.pruner import function as tp_function

from robust_prune.adapter_api import Example, HeadDimAttentionAdapter, register_adapter, unwrap_model
from robust_prune.adapter_api.timm_meta import fixed_img_size
from robust_prune.adapter_api.tracing import frozen_params


class PatchMergingPruner(tp.pruner.BasePruningFunc):
    """Swin's PatchMerging: ``reduction(norm(x4))`` (V1) or ``norm(reduction(x4))`` (V2), x4 = 4 blocks of C."""

    is_root = True

    def _norm_width(self, layer: nn.Module) -> int | None:
        shape = getattr(layer.norm, "normalized_shape", None)
        return int(shape[-1]) if shape else None

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        idxs = sorted(int(i) for i in idxs)
        out = layer.reduction.out_features
        tp.prune_linear_out_channels(layer.reduction, idxs)
        if self._norm_width(layer) == out:  # V2: norm after the reduction
            tp.prune_layernorm_out_channels(layer.norm, idxs)
        if hasattr(layer, "out_dim"):
            layer.out_dim = layer.reduction.out_features
        return layer

    def prune_in_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        idxs = sorted(int(i) for i in idxs)
        width = layer.reduction.in_features // 4
        four = [k * width + i for k in range(4) for i in idxs]
        if self._norm_width(layer) == 4 * width:  # V1: norm before the reduction
            tp.prune_layernorm_out_channels(layer.norm, four)
        tp.prune_linear_in_channels(layer.reduction, four)
        if hasattr(layer, "dim"):
            layer.dim = layer.reduction.in_features // 4
        return layer

    def get_out_channels(self, layer: nn.Module) -> int:
        return int(layer.reduction.out_features)

    def get_in_channels(self, layer: nn.Module) -> int:
        return int(layer.reduction.in_features) // 4


class _HeadTableLinearPruner(tp_function.LinearPruner):
    """torch-pruning's linear pruner that also cuts a per-head table's columns when a ``qkv`` loses whole heads."""

    def __init__(self, tables: dict[nn.Module, nn.Module]) -> None:
        super().__init__()
        self.tables = tables  # {qkv linear: the WindowAttention owning relative_position_bias_table}

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        owner = self.tables.get(layer)
        if owner is not None:
            table = owner.relative_position_bias_table
            heads = int(table.shape[1])
            width = layer.out_features // 3  # qkv rows are (q | k | v), each heads x head_dim
            head_dim = width // heads
            gone = set(int(i) for i in idxs)
            keep = [h for h in range(heads) if not all(c * width + h * head_dim + j in gone
                                                       for c in range(3) for j in range(head_dim))]  # fmt: skip
            if len(keep) < heads:
                owner.relative_position_bias_table = nn.Parameter(table.data[:, keep].clone(), table.requires_grad)
        return super().prune_out_channels(layer, idxs)


@contextlib.contextmanager
def head_tables(model: nn.Module) -> Iterator[None]:
    """While torch-pruning builds its graph, prunes or replays: linear layers are pruned by a
    :class:`_HeadTableLinearPruner` that keeps every WindowAttention's bias table in step with its heads."""
    tables = {m.qkv: m for m in model.modules() if isinstance(m, WindowAttention)}
    pruner = _HeadTableLinearPruner(tables)
    # the graph takes its pruners from PrunerBox; the importances recognise linear layers by these two functions
    swaps = {"prune_linear_out_channels": pruner.prune_out_channels,
             "prune_linear_in_channels": pruner.prune_in_channels}  # fmt: skip
    originals = {name: getattr(tp_function, name) for name in swaps}
    box = tp_function.PrunerBox[tp.ops.OPTYPE.LINEAR]
    try:
        tp_function.PrunerBox[tp.ops.OPTYPE.LINEAR] = pruner
        for name, fn in swaps.items():
            setattr(tp_function, name, fn)
        yield
    finally:
        tp_function.PrunerBox[tp.ops.OPTYPE.LINEAR] = box
        for name, fn in originals.items():
            setattr(tp_function, name, fn)


class SwinMixin:
    """Patch merging, bias tables out of the graph, fixed image size: shared by Swin V1 and V2."""

    patch_merging: type = nn.Module
    bias_params: tuple[str, ...] = ("relative_position_bias_table", "logit_scale", "absolute_pos_embed")

    def customized_pruners(self, model: nn.Module) -> dict[Any, Any]:
        pruners = super().customized_pruners(model)  # type: ignore[misc]
        pruners[self.patch_merging] = PatchMergingPruner()
        return pruners

    @contextlib.contextmanager
    def graph_context(self, model: nn.Module) -> Iterator[None]:
        params = [p for m in unwrap_model(model).modules() for n in self.bias_params
                  if isinstance(p := getattr(m, n, None), nn.Parameter)]
        with frozen_params(params), super().graph_context(model):  # type: ignore[misc]
            yield

    def fixed_input_size(self, model: nn.Module) -> tuple[int, int] | None:
        return fixed_img_size(unwrap_model(model))


@register_adapter
class SwinTransformerAdapter(SwinMixin, HeadDimAttentionAdapter):
    name = "swin_transformer"
    timm_modules = ("swin_transformer",)
    patch_merging = PatchMerging
    grow_exact = False
    whole_heads = True

    @contextlib.contextmanager
    def graph_context(self, model: nn.Module) -> Iterator[None]:
        with head_tables(unwrap_model(model)), super().graph_context(model):
            yield
    examples = (
        Example("swin_tiny_patch4_window7_224", "swin", {"img_size": 32, "window_size": 4, "depths": [1, 1, 1, 1]},
                variant="swin"),
        Example("swin_tiny_patch4_window7_224", "swin", {"img_size": 64, "window_size": 4}, image_size=64,
                quick=False, variant="swin"),
    )
