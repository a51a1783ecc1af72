"""timm.models.efficientformer: EfficientFormer (V1).

Meta4D blocks (pooling token mixer, conv MLP with BatchNorm, layer scales) are pruned fully. The Meta3D
blocks' ``Attention`` projects to a head-major layout with stored ``key_dim``/``val_attn_dim`` and per-head
attention biases, so its ``qkv`` keeps its outputs; its output projection, the residual width and the MLPs
are pruned. Both classifiers (``head``, ``head_dist``) keep their outputs. The attention bias is built for a
7x7 grid, so the model runs at 224x224 only (``fixed_input_size``).
"""

from __future__ import annotations

from timm.models.efficientformer import Attention
from torch import nn

from robust_prune.adapter_api import Adapter, Example, register_adapter, unwrap_model


class DistilledHeadsMixin:
    """Keep every classifier of a distilled model (``head`` and ``head_dist``) whole."""

    def ignored_layers(self, model: nn.Module) -> list[nn.Module]:
        inner = unwrap_model(model)
        layers = super().ignored_layers(model)  # type: ignore[misc]
        for name in ("head", "head_dist"):
            head = getattr(inner, name, None)
            head = getattr(head, "linear", head)
            if isinstance(head, nn.Linear) and head not in layers:
                layers.append(head)
        return layers


@register_adapter
class EfficientFormerAdapter(DistilledHeadsMixin, Adapter):
    name = "efficientformer"
    timm_modules = ("efficientformer",)
    grow_exact = False
    examples = (
        Example("efficientformer_l1", "efficientformer", image_size=224, variant="efficientformer"),
    )

    def ignored_layers(self, model: nn.Module) -> list[nn.Module]:
        layers = super().ignored_layers(model)
        layers += [m.qkv for m in unwrap_model(model).modules() if isinstance(m, Attention)]
        return layers

    def fixed_input_size(self, model: nn.Module) -> tuple[int, int] | None:
        return (224, 224)
