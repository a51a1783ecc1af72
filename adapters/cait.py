"""timm.models.cait: CaiT (class-attention image transformers).

Both of CaiT's attentions (TalkingHeadAttn in the patch blocks, ClassAttn in the class-token blocks)
reshape their projections with the *input* width ``C`` (``C // num_heads``), so the attention width must
equal the embedding width, and the talking-heads mixers (``proj_l``, ``proj_w``) run across the head axis.
Left alone: the embedding width (rooted at the patch projection), every q/k/v/qkv projection and the head
mixers; pruned: the MLP hidden width of every block. Growth is exact. Fixed input size.
"""

from __future__ import annotations

from timm.models.cait import ClassAttn, TalkingHeadAttn

from robust_prune.adapter_api import Example, register_adapter

from .vision_transformer import FixedWidthTransformerAdapter


@register_adapter
class CaitAdapter(FixedWidthTransformerAdapter):
    name = "cait"
    timm_modules = ("cait",)
    attention_types = (TalkingHeadAttn, ClassAttn)
    examples = (
        Example("cait_xxs24_224", "cait", {"img_size": 32, "depth": 2}),
        Example("cait_xxs36_224", "cait", {"img_size": 32}, quick=False),
        Example("cait_s24_224", "cait", {"img_size": 32, "depth": 4}, quick=False),
    )
