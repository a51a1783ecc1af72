"""timm.models.vision_transformer_relpos: ViTs with relative position (bias tables or an MLP), test_vit_relpos.

``RelPosAttention`` reshapes its output to the *input* width (``reshape(B, N, C)``), so the attention width
must equal the embedding width: both stay (see ``FixedWidthTransformerAdapter``), and so does the relative
position MLP (its output is one bias per head); the MLP hidden widths are pruned. Growth is exact.
"""

from __future__ import annotations

from timm.models.vision_transformer_relpos import RelPosAttention
from torch import nn

from robust_prune.adapter_api import Example, register_adapter, unwrap_model

from .vision_transformer import FixedWidthTransformerAdapter


@register_adapter
class VisionTransformerRelPosAdapter(FixedWidthTransformerAdapter):
    name = "vision_transformer_relpos"
    timm_modules = ("vision_transformer_relpos",)
    attention_types = (RelPosAttention,)
    examples = (
        Example("test_vit_relpos", "test_*", {"img_size": 32}),
        Example("vit_relpos_small_patch16_224", "vision_transformer", {"img_size": 32}, quick=False,
                variant="vit-relpos"),
        Example("vit_relpos_medium_patch16_rpn_224", "vision_transformer", {"img_size": 32}, quick=False,
                variant="vit-relpos"),
    )

    def ignored_layers(self, model: nn.Module) -> list[nn.Module]:
        layers = super().ignored_layers(model)
        for m in unwrap_model(model).modules():
            if isinstance(m, RelPosAttention) and m.rel_pos is not None:
                layers += [x for x in m.rel_pos.modules() if isinstance(x, nn.Linear)]
        return layers
