"""timm.models.maxxvit: CoAtNet, MaxViT (and timm's test_coatnet / test_maxvit).

- The attentions (``Attention2d`` for 2-D tensors, ``AttentionCl`` for channels-last) lay q/k/v out per
  head (optionally head-first) with a stored ``dim_head`` and per-head relative position biases. Each is an
  opaque layer with its own pruner: its input width (qkv's inputs) and output width (proj's outputs) are
  pruned, the heads inside stay.
- MaxViT's block and grid partitions are reshapes over the spatial axes; torch-pruning takes them for
  channel reshapes and its index mapping explodes (it never finishes). While it traces, each partition
  attention runs a forward that computes the same values with the partition/reverse shown as channel-wise
  pass-throughs (``robust_prune.adapter_api.tracing.link``).
- MBConv blocks (BatchNorm, depthwise convs, squeeze-excite) and ConvNeXt blocks go through the graph.
Fixed input size (``img_size``: partition and window sizes are derived from it). LayerNorm in the
transformer stages: growth is not exact.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch_pruning as tp
from timm.models.maxxvit import Attention2d, AttentionCl, PartitionAttention2d, PartitionAttentionCl
from torch import nn

from robust_prune.adapter_api import Adapter, Example, register_adapter, unwrap_model
from robust_prune.adapter_api.tracing import link, patched_forwards


def _prune(layer: nn.Module, idxs: list[int], out: bool) -> None:
    if isinstance(layer, nn.Linear):
        (tp.prune_linear_out_channels if out else tp.prune_linear_in_channels)(layer, idxs)
    else:
        (tp.prune_conv_out_channels if out else tp.prune_conv_in_channels)(layer, idxs)


class QkvProjPruner(tp.pruner.BasePruningFunc):
    """An attention as a black box: input channels -> ``qkv``'s inputs, output channels -> ``proj``'s outputs."""

    is_root = True

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        _prune(layer.proj, sorted(int(i) for i in idxs), out=True)
        return layer

    def prune_in_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        _prune(layer.qkv, sorted(int(i) for i in idxs), out=False)
        return layer

    def get_out_channels(self, layer: nn.Module) -> int:
        p = layer.proj
        return int(p.out_features if isinstance(p, nn.Linear) else p.out_channels)

    def get_in_channels(self, layer: nn.Module) -> int:
        q = layer.qkv
        return int(q.in_features if isinstance(q, nn.Linear) else q.in_channels)


def _partition_tracing_forward(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    n = block.norm1(x)
    seen: dict[str, torch.Tensor] = {}
    hook = block.attn.register_forward_hook(lambda m, args, out: seen.update(inp=args[0], out=out))
    try:
        with torch.no_grad():
            real = block._partition_attn(n)
    finally:
        hook.remove()
    attended = block.attn(link(seen["inp"], n))  # partition shown as a channel-wise pass-through
    x = x + block.drop_path1(block.ls1(link(real, attended)))  # and the reverse too
    return x + block.drop_path2(block.ls2(block.mlp(block.norm2(x))))


@register_adapter
class MaxxVitAdapter(Adapter):
    name = "maxxvit"
    timm_modules = ("maxxvit",)
    grow_exact = False
    examples = (
        Example("test_coatnet", "test_*", {"img_size": 32}),
        Example("test_maxvit", "test_*", {"img_size": 32}),
        Example("coatnet_nano_rw_224", "maxxvit", {"img_size": 32}, variant="coatnet"),
        Example("maxvit_nano_rw_256", "maxxvit", {"img_size": 32}, quick=False, variant="maxvit"),
        Example("coatnet_0_rw_224", "maxxvit", {"img_size": 32}, quick=False, variant="coatnet"),
        Example("maxxvitv2_nano_rw_256", "maxxvit", {"img_size": 32}, quick=False, variant="maxvit"),
        Example("coatnet_rmlp_nano_rw_224", "maxxvit", {"img_size": 32}, quick=False, variant="coatnet"),
        Example("coatnext_nano_rw_224", "maxxvit", {"img_size": 32}, quick=False, variant="coatnet"),
    )

    def customized_pruners(self, model: nn.Module) -> dict[Any, Any]:
        pruners = super().customized_pruners(model)
        pruner = QkvProjPruner()
        pruners[Attention2d] = pruner
        pruners[AttentionCl] = pruner
        return pruners

    @contextlib.contextmanager
    def graph_context(self, model: nn.Module) -> Iterator[None]:
        types = (PartitionAttentionCl, PartitionAttention2d)
        blocks = [m for m in unwrap_model(model).modules() if isinstance(m, types)]
        with patched_forwards({b: _partition_tracing_forward for b in blocks}), super().graph_context(model):
            yield

    def fixed_input_size(self, model: nn.Module) -> tuple[int, int] | None:
        size = getattr(unwrap_model(model), "img_size", None) or getattr(
            getattr(unwrap_model(model), "patch_embed", None), "img_size", None
        )
        if size is None:
            cfg = self.pretrained_cfg(model).get("input_size")
            return (int(cfg[1]), int(cfg[2])) if cfg else None
        return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
