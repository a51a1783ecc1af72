"""timm.models.eva: EVA, EVA-02 (and the other ViTs built from EvaBlock: PE, ...).

``EvaAttention`` reshapes its output to the *input* width (``reshape(B, N, C)``), so the attention width
must equal the embedding width; rotary embeddings act on the head dimension too. Left alone: the embedding
width (rooted at the patch projection, so cls/position tokens stay) and every q/k/v projection; pruned:
the MLP hidden width (plain MLP or SwiGLU, with its hidden LayerNorm). The residual width is untouched,
so growth is exact. Fixed input size: the patch embedding's ``img_size``.
"""

from __future__ import annotations

from typing import Any

from timm.models.eva import EvaAttention
from torch import nn

from ._base import Adapter, Example, register_adapter, unwrap_model
from ._common import fixed_img_size


@register_adapter
class EvaAdapter(Adapter):
    name = "eva"
    timm_modules = ("eva",)
    examples = (
        Example("eva02_tiny_patch14_224", "eva", {"img_size": 28, "depth": 2}, image_size=28, variant="eva02"),
        Example("eva02_tiny_patch14_224.mim_in22k", "eva", {"img_size": 28}, image_size=28, quick=False,
                variant="eva02"),
        Example("eva02_small_patch14_224", "eva", {"img_size": 28}, image_size=28, quick=False, variant="eva02"),
        Example("eva_giant_patch14_224", "eva", {"img_size": 28, "depth": 1, "embed_dim": 96, "num_heads": 2},
                image_size=28, quick=False, variant="eva"),
    )

    def ignored_layers(self, model: nn.Module) -> list[nn.Module]:
        inner = unwrap_model(model)
        layers = super().ignored_layers(model)
        embed = getattr(getattr(inner, "patch_embed", None), "proj", None)
        if isinstance(embed, nn.Module):
            layers.append(embed)
        for m in inner.modules():
            if isinstance(m, EvaAttention):
                layers += [getattr(m, n) for n in ("qkv", "q_proj", "k_proj", "v_proj", "gate")
                           if isinstance(getattr(m, n, None), nn.Linear)]
        return layers

    def fixed_input_size(self, model: nn.Module) -> tuple[int, int] | None:
        return fixed_img_size(unwrap_model(model))

    def model_args(self, model: nn.Module) -> dict[str, Any]:
        args = super().model_args(model)
        size = self.fixed_input_size(model)
        if size is not None:
            args.setdefault("img_size", size[0] if size[0] == size[1] else list(size))
        return args
