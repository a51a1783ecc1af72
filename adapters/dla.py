"""timm.models.dla: Deep Layer Aggregation (trees of blocks joined by concatenating roots)."""

from robust_prune.adapter_api import Adapter, Example, register_adapter


@register_adapter
class DlaAdapter(Adapter):
    name = "dla"
    timm_modules = ("dla",)
    examples = (
        Example("dla46_c", "dla"),
        Example("dla34", "dla", quick=False),
        Example("dla60x_c", "dla", quick=False),
    )
