"""timm.models.beit: BEiT, BEiT-V2.

BEiT's ``Attention`` reshapes its output to the *input* width (``reshape(B, N, C)``) and adds its q/v
biases through ``F.linear`` with the qkv weight, so the attention width must equal the embedding width.
Left alone: the embedding width and the qkv projections; pruned: the MLP hidden widths. Relative position
bias tables are per head and untouched. Growth is exact. Fixed input size: the patch embedding's size.
"""

from __future__ import annotations

from timm.models.beit import Attention

from robust_prune.adapter_api import Example, register_adapter

from .vision_transformer import FixedWidthTransformerAdapter


@register_adapter
class BeitAdapter(FixedWidthTransformerAdapter):
    name = "beit"
    timm_modules = ("beit",)
    attention_types = (Attention,)
    examples = (
        Example("beit_base_patch16_224", "beit", {"img_size": 32, "depth": 2, "embed_dim": 192, "num_heads": 3}),
        Example("beitv2_base_patch16_224", "beit", {"img_size": 32, "depth": 2}, quick=False),
    )
