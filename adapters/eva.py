"""timm.models.eva: EVA, EVA-02 (and the other ViTs built from EvaBlock).

``EvaAttention`` reshapes its output to the *input* width (``reshape(B, N, C)``), so the attention width
must equal the embedding width; rotary embeddings act on the head dimension too. Left alone: the embedding
width (rooted at the patch projection, so cls/position tokens stay) and every q/k/v projection; pruned:
the MLP hidden width (plain MLP, SwiGLU, or the packed GluMlp, with its hidden LayerNorm). Growth is
exact. Fixed input size: the patch embedding's ``img_size``.
"""

from __future__ import annotations

from typing import Any

from timm.models.eva import EvaAttention
from torch import nn

from robust_prune.adapter_api import Example, register_adapter
from robust_prune.adapter_api.pruners import ChannelParamPruner

from .vision_transformer import FixedWidthTransformerAdapter


@register_adapter
class EvaAdapter(FixedWidthTransformerAdapter):
    name = "eva"
    timm_modules = ("eva",)
    attention_types = (EvaAttention,)

    def customized_pruners(self, model: nn.Module) -> dict[Any, Any]:
        # its widths stay; opaque while tracing, so rotary embeddings and register tokens (DINOv3) are not
        # followed into the graph (torch-pruning raised an IndexError on vit_*_dinov3 models)
        return {**super().customized_pruners(model), EvaAttention: ChannelParamPruner({})}

    examples = (
        Example("vit_tiny_patch16_dinov3_qkvb", "eva", {"img_size": 32, "depth": 2}, variant="dinov3"),
        Example("eva02_tiny_patch14_224", "eva", {"img_size": 28, "depth": 2}, image_size=28, variant="eva02"),
        Example("eva02_small_patch14_224", "eva", {"img_size": 28}, image_size=28, quick=False, variant="eva02"),
        Example("eva_giant_patch14_224", "eva", {"img_size": 28, "depth": 1, "embed_dim": 96, "num_heads": 2},
                image_size=28, quick=False, variant="eva"),
    )
