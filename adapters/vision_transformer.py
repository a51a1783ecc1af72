"""timm.models.vision_transformer (ViT, DeiT, DeiT-III, ...) and timm.models.deit (distilled DeiT).

- Left alone: the classifier(s) (``head``, DeiT's ``head_dist``).
- Attention: every ``Attention`` with a fused ``qkv`` loses whole heads (``attention="heads"``, the default:
  the kept heads keep their width, scale and fused kernel; a single head stays) or, with
  ``attention="head_dim"``, the same dimensions of every head (the head count is kept; the original ``scale``
  is kept and the explicit attention path is used). ``num_heads``/``head_dim``/``attn_dim`` are updated
  (see ``_common.fix_qkv_attention``) and recorded.
- The embedding width is pruned too: ``cls_token``, ``reg_token``, ``dist_token`` and ``pos_embed`` are
  cut along their last dimension. LayerNorm over that width means growing back is not exact.
- Fixed input size: the patch embedding's ``img_size`` (recorded in the model arguments).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from timm.layers import AttentionPoolLatent
from torch import nn

from robust_prune.adapter_api import Adapter, Example, HeadDimAttentionAdapter, register_adapter, unwrap_model
from robust_prune.adapter_api.timm_meta import fixed_img_size, modules_of_type
from robust_prune.adapter_api.tracing import frozen_params

_TOKENS = ("cls_token", "reg_token", "dist_token", "pos_embed")


class TokenTransformerAdapter(HeadDimAttentionAdapter):
    """Shared logic for ViT-style models: qkv attention, token parameters, fixed image size."""

    grow_exact = False
    whole_heads = True
    extra_heads: tuple[str, ...] = ("head_dist",)

    def ignored_layers(self, model: nn.Module) -> list[nn.Module]:
        inner = unwrap_model(model)
        layers = super().ignored_layers(model)
        for name in ("head", *self.extra_heads):
            head = getattr(inner, name, None)
            if isinstance(head, nn.Linear) and head not in layers:
                layers.append(head)
        pools = modules_of_type(inner, AttentionPoolLatent)
        if pools:
            # The latent attention pool reshapes its attention output to the *input* width, so the two must
            # stay equal: leave the embedding width (rooted at the patch projection) and the pool's q/kv alone.
            embed = getattr(getattr(inner, "patch_embed", None), "proj", None)
            layers += [m for m in (embed,) if isinstance(m, nn.Module)]
            for pool in pools:
                layers += [m for m in (getattr(pool, "q", None), pool.kv) if isinstance(m, nn.Linear)]
        return layers

    def unwrapped_parameters(self, model: nn.Module) -> list[tuple[nn.Parameter, int]]:
        inner = unwrap_model(model)
        params = []
        for name in _TOKENS:
            p = getattr(inner, name, None)
            if isinstance(p, nn.Parameter):
                params.append((p, p.dim() - 1))
        return params

    def fixed_input_size(self, model: nn.Module) -> tuple[int, int] | None:
        return fixed_img_size(unwrap_model(model))


class FixedWidthTransformerAdapter(Adapter):
    """ViT-style models whose attention reshapes its output to the *input* width (``reshape(B, N, C)``), so
    the attention width must equal the embedding width: both stay, the MLP hidden widths are pruned.

    Subclasses list their attention classes in ``attention_types``. The token parameters are kept out of
    the traced graph (``frozen_params``), which keeps torch-pruning's split/concat index mapping on (e.g.
    for gated MLPs). The residual width is untouched, so growth is exact.
    """

    attention_types: tuple[type, ...] = ()
    projections: tuple[str, ...] = ("qkv", "q_proj", "k_proj", "v_proj", "q", "k", "v", "gate", "proj_l", "proj_w")

    def ignored_layers(self, model: nn.Module) -> list[nn.Module]:
        inner = unwrap_model(model)
        layers = super().ignored_layers(model)
        embed = getattr(getattr(inner, "patch_embed", None), "proj", None)
        if isinstance(embed, nn.Module):
            layers.append(embed)
        for m in inner.modules():
            if isinstance(m, self.attention_types):
                layers += [getattr(m, n) for n in self.projections if isinstance(getattr(m, n, None), nn.Linear)]
        return layers

    @contextlib.contextmanager
    def graph_context(self, model: nn.Module) -> Iterator[None]:
        inner = unwrap_model(model)
        with frozen_params(getattr(inner, n, None) for n in _TOKENS), super().graph_context(model):
            yield

    def fixed_input_size(self, model: nn.Module) -> tuple[int, int] | None:
        return fixed_img_size(unwrap_model(model))


@register_adapter
class VisionTransformerAdapter(TokenTransformerAdapter):
    name = "vision_transformer"
    timm_modules = ("vision_transformer", "deit")
    examples = (
        Example("test_vit", "test_*"),
        Example("test_vit2", "test_*"),
        Example("test_vit3", "test_*", {"img_size": 32}),
        Example("test_vit4", "test_*"),
        Example("vit_tiny_patch16_224", "vision_transformer", {"img_size": 32, "depth": 2}, variant="vit"),
        Example("deit_tiny_distilled_patch16_224", "vision_transformer", {"img_size": 32, "depth": 2}, variant="deit"),
        Example("deit3_small_patch16_224", "vision_transformer", {"img_size": 32, "depth": 2}, variant="deit3"),
        Example("vit_small_patch16_224", "vision_transformer", {"img_size": 32}, quick=False, variant="vit"),
        Example("deit_tiny_patch16_224", "vision_transformer", {"img_size": 32}, quick=False, variant="deit"),
        Example("deit_small_distilled_patch16_224", "vision_transformer", {"img_size": 32, "depth": 2}, quick=False,
                variant="deit"),
        Example("vit_medium_patch16_reg4_gap_256", "vision_transformer", {"img_size": 32}, quick=False, variant="vit"),
    )
