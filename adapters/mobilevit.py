"""timm.models.mobilevit: MobileViT and MobileViT-V2 (ByobNets with transformer blocks).

The models are ``timm.models.byobnet.ByobNet`` instances built with this module's blocks, so this
adapter matches on the blocks and is asked before the byobnet adapter.

- A MobileViT block unfolds its feature map into patches with reshapes that mix the batch, channel and
  spatial axes, runs a transformer on them and folds back. torch-pruning cannot follow those reshapes,
  so while it traces, each block runs a forward that computes the same values but shows the unfold and
  fold as channel-wise pass-throughs (``robust_prune.adapter_api.tracing.link``).
- V1's transformer blocks are timm ViT blocks: head-dim pruning with the attention fix-ups of the
  vision_transformer adapter (original scale kept, explicit attention path, all recorded).
- V2's ``LinearSelfAttention`` splits its projection at the stored ``embed_dim`` (``[1, d, d]``): it is an
  opaque layer whose input and output widths are pruned and whose inner width stays.
LayerNorm / GroupNorm over pruned widths: growth is not exact.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
import torch_pruning as tp
from timm.models.mobilevit import LinearSelfAttention, MobileVitBlock, MobileVitV2Block
from torch import nn

from robust_prune.adapter_api import Example, HeadDimAttentionAdapter, register_adapter, unwrap_model
from robust_prune.adapter_api.timm_meta import uses_blocks_from
from robust_prune.adapter_api.tracing import link, patched_forwards


def _pad_to_patches(block: nn.Module, x: torch.Tensor, align_corners: bool) -> torch.Tensor:
    ph, pw = block.patch_size
    H, W = x.shape[-2:]
    new_h, new_w = math.ceil(H / ph) * ph, math.ceil(W / pw) * pw
    if (new_h, new_w) != (H, W):
        x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=align_corners)
    return x


def _v1_tracing_forward(block: MobileVitBlock, x: torch.Tensor) -> torch.Tensor:
    shortcut = x
    h = block.conv_1x1(block.conv_kxk(x))
    B, C, H, W = h.shape
    ph, pw = block.patch_size
    with torch.no_grad():  # the real unfold (as in MobileVitBlock.forward)
        u = _pad_to_patches(block, h, align_corners=False)
        nh, nw = u.shape[-2] // ph, u.shape[-1] // pw
        u = u.reshape(B * C * nh, ph, nw, pw).transpose(1, 2)
        u = u.reshape(B, C, nh * nw, block.patch_area).transpose(1, 3).reshape(B * block.patch_area, nh * nw, -1)
    t = block.norm(block.transformer(link(u, h)))
    with torch.no_grad():  # the real fold
        f = t.contiguous().view(B, block.patch_area, nh * nw, -1)
        f = f.transpose(1, 3).reshape(B * C * nh, nw, ph, pw)
        f = f.transpose(1, 2).reshape(B, C, nh * ph, nw * pw)
        if (nh * ph, nw * pw) != (H, W):
            f = F.interpolate(f, size=(H, W), mode="bilinear", align_corners=False)
    y = block.conv_proj(link(f, t))
    if block.conv_fusion is not None:
        y = block.conv_fusion(torch.cat((shortcut, y), dim=1))
    return y


def _v2_tracing_forward(block: MobileVitV2Block, x: torch.Tensor) -> torch.Tensor:
    x = _pad_to_patches(block, x, align_corners=True)
    h = block.conv_1x1(block.conv_kxk(x))
    B, C, H, W = h.shape
    ph, pw = block.patch_size
    nh, nw = H // ph, W // pw
    with torch.no_grad():
        u = h.reshape(B, C, nh, ph, nw, pw).permute(0, 1, 3, 5, 2, 4).reshape(B, C, -1, nh * nw)
    t = block.norm(block.transformer(link(u, h)))
    with torch.no_grad():
        f = t.reshape(B, C, ph, pw, nh, nw).permute(0, 1, 4, 2, 5, 3).reshape(B, C, nh * ph, nw * pw)
    return block.conv_proj(link(f, t))


class LinearSelfAttentionPruner(tp.pruner.BasePruningFunc):
    """MobileViT-V2 attention as a black box: input -> ``qkv_proj`` inputs, output -> ``out_proj``."""

    is_root = True

    def prune_out_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        tp.prune_conv_out_channels(layer.out_proj, sorted(int(i) for i in idxs))
        return layer

    def prune_in_channels(self, layer: nn.Module, idxs: Sequence[int]) -> nn.Module:
        tp.prune_conv_in_channels(layer.qkv_proj, sorted(int(i) for i in idxs))
        return layer

    def get_out_channels(self, layer: nn.Module) -> int:
        return int(layer.out_proj.out_channels)

    def get_in_channels(self, layer: nn.Module) -> int:
        return int(layer.qkv_proj.in_channels)


@register_adapter
class MobileVitAdapter(HeadDimAttentionAdapter):
    name = "mobilevit"
    timm_modules = ("byobnet",)
    priority = 10
    grow_exact = False
    examples = (
        Example("mobilevit_xxs", "mobilevit", variant="mobilevit"),
        Example("mobilevitv2_050", "mobilevit", variant="mobilevitv2"),
        Example("mobilevit_xs", "mobilevit", quick=False, variant="mobilevit"),
        Example("mobilevitv2_100", "mobilevit", quick=False, variant="mobilevitv2"),
        Example("mobilevitv2_075", "mobilevit", quick=False, variant="mobilevitv2"),
    )

    def matches(self, model: nn.Module) -> bool:
        return super().matches(model) and uses_blocks_from(model, "mobilevit")

    def customized_pruners(self, model: nn.Module) -> dict[Any, Any]:
        pruners = super().customized_pruners(model)
        pruners[LinearSelfAttention] = LinearSelfAttentionPruner()
        return pruners

    @contextlib.contextmanager
    def graph_context(self, model: nn.Module) -> Iterator[None]:
        forwards: dict[nn.Module, Any] = {}
        for m in unwrap_model(model).modules():
            if isinstance(m, MobileVitBlock):
                forwards[m] = _v1_tracing_forward
            elif isinstance(m, MobileVitV2Block):
                forwards[m] = _v2_tracing_forward
        with patched_forwards(forwards), super().graph_context(model):
            yield
