"""timm.models.nfnet: Normalizer-Free nets (NFNet, ECA-NFNet, NF-RegNet, NF-ResNet, test_nfnet).

No BatchNorm: weight-standardised convs (``ScaledStdConv2d``) carry a per-output ``gain`` that
torch-pruning's conv pruner does not know; the adapters' graph context learns which output channels each
such conv kept (``_common.kept_output_channels``) and cuts ``gain`` to match; the residual
``alpha``/``beta`` scalars and the
skip-init gains are scalars. ``torch.utils.flop_counter`` counts their convolutions (torch-pruning's own
counter would not). Growth is not exact: a weight-standardised conv whose fan-in grows standardises its
filters over the new (zero) inputs too (``Adapter.growth_is_exact``).
"""

from robust_prune.adapter_api import Adapter, Example, register_adapter


@register_adapter
class NfNetAdapter(Adapter):
    name = "nfnet"
    timm_modules = ("nfnet",)
    examples = (
        Example("test_nfnet", "test_*"),
        Example("nf_regnet_b0", "nfnet", quick=False),
        Example("eca_nfnet_l0", "nfnet", quick=False),
        Example("nf_resnet50", "nfnet", quick=False),
    )
