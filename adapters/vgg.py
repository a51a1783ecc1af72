"""timm.models.vgg: VGG-11/13/16/19 (with and without BatchNorm).

A plain chain of convolutions; the ``pre_logits`` ConvMlp (7x7 conv + 1x1 conv) is pruned like any other
conv pair and the classifier keeps its outputs. Growth is exact (BatchNorm variants) or trivially so (none).
"""

from robust_prune.adapter_api import Adapter, Example, register_adapter


@register_adapter
class VggAdapter(Adapter):
    name = "vgg"
    timm_modules = ("vgg",)
    examples = (
        Example("vgg11", "vgg", {"mlp_ratio": 0.0625}),
        Example("vgg11_bn", "vgg", {"mlp_ratio": 0.0625}, quick=False),
        Example("vgg16", "vgg", {"mlp_ratio": 0.0625}, quick=False),
    )
