"""timm.models.shvit: SHViT: single-head attention on a fixed slice of the channels, with conv FFNs.

Its token mixers (SHSA) split the channels into a fixed attended part and a passed-through part: they are opaque and
keep their widths, and only its MLP hidden widths (timm's MLPs and the blocks' expansions named below) are pruned
(``HiddenWidthAdapter``).
"""

from __future__ import annotations

from timm.models.shvit import FFN, SHSA

from robust_prune.adapter_api import Example, HiddenWidthAdapter, register_adapter


@register_adapter
class ShvitAdapter(HiddenWidthAdapter):
    name = "shvit"
    timm_modules = ("shvit",)
    hidden = {FFN: ("pw1",)}
    opaque = (SHSA,)
    examples = (Example("shvit_s1", "shvit", image_size=64),)
