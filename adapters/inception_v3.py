"""timm.models.inception_v3: Inception-v3 (parallel branches joined by concatenation).

It needs at least a 75x75 input (its stem and reductions shrink the map ~32x without padding).
"""

from robust_prune.adapter_api import Adapter, Example, register_adapter


@register_adapter
class InceptionV3Adapter(Adapter):
    name = "inception_v3"
    timm_modules = ("inception_v3",)
    examples = (Example("inception_v3", "inception_v3", image_size=75),)
