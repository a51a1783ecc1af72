"""timm.models.edgenext: EdgeNeXt.

Stages with ``SplitTransposeBlock``s chunk the block input into scales chained like Res2Net and run
cross-covariance attention whose output is reshaped to the *input* width, so in those stages the
embedding (residual) width is left alone: the per-scale depthwise convs, the attention's qkv/proj, the
MLP's output and the positional encoding's projection keep their outputs (so the whole width, wherever it
is rooted, stays); their MLP hidden widths are pruned. Convolutional stages (``ConvBlock``) are pruned
fully, layer scales included.
LayerNorm over pruned widths: growth is not exact.
"""

from __future__ import annotations

from timm.models.edgenext import EdgeNeXtStage, SplitTransposeBlock
from torch import nn

from robust_prune.adapter_api import Adapter, Example, register_adapter, unwrap_model


@register_adapter
class EdgeNeXtAdapter(Adapter):
    name = "edgenext"
    timm_modules = ("edgenext",)
    grow_exact = False
    examples = (
        Example("edgenext_xx_small", "edgenext"),
        Example("edgenext_x_small", "edgenext", quick=False),
        Example("edgenext_small", "edgenext", quick=False),
        Example("edgenext_small_rw", "edgenext", quick=False),
    )

    def ignored_layers(self, model: nn.Module) -> list[nn.Module]:
        layers = super().ignored_layers(model)
        for stage in unwrap_model(model).modules():
            if not isinstance(stage, EdgeNeXtStage):
                continue
            blocks = [b for b in stage.modules() if isinstance(b, SplitTransposeBlock)]
            if not blocks:
                continue
            for b in blocks:  # every layer that writes the residual width, so its whole group stays
                layers += list(b.convs) + [b.xca.qkv, b.xca.proj, b.mlp.fc2]
                if b.pos_embd is not None:
                    layers.append(b.pos_embd.token_projection)
        return layers
