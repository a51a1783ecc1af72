"""timm.models.densenet: DenseNet-121/161/169/201 and blur variants.

Dense blocks concatenate every layer's output; torch-pruning maps the concatenation's indices back to the
producing layers, so each layer's new features are pruned consistently wherever they are read.
"""

from robust_prune.adapter_api import Adapter, Example, register_adapter


@register_adapter
class DenseNetAdapter(Adapter):
    name = "densenet"
    timm_modules = ("densenet",)
    examples = (
        Example("densenet121", "densenet", {"block_config": [2, 2, 2, 2]}),
        Example("densenetblur121d", "densenet", {"block_config": [2, 2, 2, 2]}, quick=False),
        Example("densenet161", "densenet", {"block_config": [2, 2, 2, 2]}, quick=False),
        Example("densenet169", "densenet", {"block_config": [2, 2, 2, 2]}, quick=False),
    )
