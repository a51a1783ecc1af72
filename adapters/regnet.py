"""timm.models.regnet: RegNetX / RegNetY (grouped bottlenecks, optional squeeze-excite).

Grouped convolutions are pruned group-evenly by torch-pruning; BatchNorm makes growth exact.
"""

from robust_prune.adapter_api import Adapter, Example, register_adapter


@register_adapter
class RegNetAdapter(Adapter):
    name = "regnet"
    timm_modules = ("regnet",)
    examples = (
        Example("regnetx_002", "regnet"),
        Example("regnety_002", "regnet", quick=False),
        Example("regnety_004", "regnet", quick=False),
        Example("regnetz_005", "regnet", quick=False),
    )
