"""timm.models.fastvit: FastViT (RepMixer and attention stages, MobileOne-style reparameterisable convs).

- ``LayerScale2d`` (``gamma`` of shape (dim, 1, 1)) is cut with its width.
- The attention in ``AttentionBlock`` reshapes its output to the *input* width (``reshape(B, N, C)``), so
  in attention stages every layer that writes the residual width keeps its outputs (qkv, proj, the MLP's
  ``fc2``): that width stays whole there; the MLP hidden widths are pruned.
- Pruning works on the training-time (multi-branch) form; reparameterise afterwards if wanted.
BatchNorm in the conv stages, but LayerNorm-free: growth is exact except through attention stages.
"""

from __future__ import annotations

from timm.models.fastvit import AttentionBlock
from torch import nn

from robust_prune.adapter_api import Adapter, Example, register_adapter, unwrap_model


@register_adapter
class FastVitAdapter(Adapter):
    name = "fastvit"
    timm_modules = ("fastvit",)
    examples = (
        Example("fastvit_t8", "fastvit", quick=False),
        Example("fastvit_sa12", "fastvit"),
        Example("fastvit_t12", "fastvit", quick=False),
        Example("fastvit_s12", "fastvit", quick=False),
        Example("fastvit_mci0", "fastvit", quick=False),
    )

    def ignored_layers(self, model: nn.Module) -> list[nn.Module]:
        layers = super().ignored_layers(model)
        for block in unwrap_model(model).modules():
            if isinstance(block, AttentionBlock):
                attn = block.token_mixer
                layers += [m for m in (getattr(attn, "qkv", None), getattr(attn, "proj", None)) if m is not None]
                layers.append(block.mlp.fc2)
        return layers
