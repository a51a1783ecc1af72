"""timm.models.cait: CaiT (class-attention image transformers).

Both of CaiT's attentions (TalkingHeadAttn in the patch blocks, ClassAttn in the class-token blocks)
reshape their projections with the *input* width ``C`` (``C // num_heads``), so the attention width must
equal the embedding width, and the talking-heads mixers (``proj_l``, ``proj_w``) run across the head axis.
Left alone: the embedding width (rooted at the patch projection), every q/k/v/qkv projection's outputs and
the head mixers; pruned: the MLP hidden width of every block. The residual width is untouched, so growth
is exact.
"""

from __future__ import annotations

from torch import nn

from ._base import Adapter, Example, register_adapter, unwrap_model
from ._common import fixed_img_size


@register_adapter
class CaitAdapter(Adapter):
    name = "cait"
    timm_modules = ("cait",)
    examples = (
        Example("cait_xxs24_224", "cait", {"img_size": 32, "depth": 2}),
        Example("cait_xxs36_224", "cait", {"img_size": 32}, quick=False),
        Example("cait_s24_224", "cait", {"img_size": 32, "depth": 4}, quick=False),
    )

    def ignored_layers(self, model: nn.Module) -> list[nn.Module]:
        inner = unwrap_model(model)
        layers = super().ignored_layers(model)
        embed = getattr(getattr(inner, "patch_embed", None), "proj", None)
        if isinstance(embed, nn.Module):
            layers.append(embed)
        for m in inner.modules():
            for attr in ("qkv", "q", "k", "v", "proj_l", "proj_w"):
                layer = getattr(m, attr, None)
                if isinstance(layer, nn.Linear) and hasattr(m, "num_heads"):
                    layers.append(layer)
        return layers

    def fixed_input_size(self, model: nn.Module) -> tuple[int, int] | None:
        return fixed_img_size(unwrap_model(model))

    def model_args(self, model: nn.Module):
        args = super().model_args(model)
        size = self.fixed_input_size(model)
        if size is not None:
            args.setdefault("img_size", size[0] if size[0] == size[1] else list(size))
        return args
