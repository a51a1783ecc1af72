"""timm.models.dpn: Dual Path Networks.

Every block slices its projection and its last conv at the fixed ``num_1x1_c`` and concatenates a
residual part with a growing densely connected part. Those widths are stored attributes that the slices
depend on, so they are left alone: the outputs of the projections (``c1x1_w_s1``/``c1x1_w_s2``) and of the
block-closing convs (``c1x1_c``, ``c1x1_c1``, ``c1x1_c2``). Pruned: the stem and each block's inner
bottleneck (``c1x1_a`` and the grouped ``c3x3_b``, group-evenly). BatchNorm, so growth is exact.

torch-pruning cannot even build its graph over these slices and concatenations (it cannot infer a slice's
width), so while it traces, each block runs a forward that returns the same values but shows the graph only
the block's projection and inner chain, linked to the block output (``robust_prune.adapter_api.tracing.link``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from timm.models.dpn import DualPathBlock
from torch import nn

from robust_prune.adapter_api import Adapter, Example, register_adapter, unwrap_model
from robust_prune.adapter_api.tracing import link, patched_forwards


def _tracing_forward(block: DualPathBlock, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = DualPathBlock.forward(block, x)
    proj = block.c1x1_w_s1 if block.c1x1_w_s1 is not None else block.c1x1_w_s2
    x_s = proj(x) if proj is not None else x
    h = block.c1x1_c(block.c3x3_b(block.c1x1_a(x)))
    if block.c1x1_c1 is not None and block.c1x1_c2 is not None:
        return link(out, x_s, block.c1x1_c1(h), block.c1x1_c2(h))
    return link(out, x_s, h)


@register_adapter
class DpnAdapter(Adapter):
    name = "dpn"
    timm_modules = ("dpn",)
    examples = (
        Example("dpn48b", "dpn"),
        Example("dpn68", "dpn", quick=False),
        Example("dpn68b", "dpn", quick=False),
    )

    def ignored_layers(self, model: nn.Module) -> list[nn.Module]:
        layers = super().ignored_layers(model)
        for block in unwrap_model(model).modules():
            if isinstance(block, DualPathBlock):
                for attr in ("c1x1_w_s1", "c1x1_w_s2", "c1x1_c", "c1x1_c1", "c1x1_c2"):
                    layer = getattr(block, attr, None)
                    if isinstance(layer, nn.Module):
                        layers.append(layer)
        return layers

    @contextlib.contextmanager
    def graph_context(self, model: nn.Module) -> Iterator[None]:
        blocks = [m for m in unwrap_model(model).modules() if isinstance(m, DualPathBlock)]
        with patched_forwards({b: _tracing_forward for b in blocks}), super().graph_context(model):
            yield
