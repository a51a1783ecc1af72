"""timm.models.byobnet: "bring your own blocks" nets: RepVGG, GENet, ResNet-T/ResNeXt-TS, RegNetZ-B16, ...

Their attention layers are shared timm layers with shared pruners (``robust_prune.adapter_api.pruners`` and
``.layers``): GlobalContext is pruned channel by channel; BottleneckAttn and HaloAttn (no output projection) keep
their output width and lose input channels; LambdaLayer (output reshaped to its input width) is frozen. MobileViT
models are ByobNets too; their transformer blocks are served by mobilevit.py.
"""

from robust_prune.adapter_api import Adapter, Example, register_adapter


@register_adapter
class ByobNetAdapter(Adapter):
    name = "byobnet"
    timm_modules = ("byobnet",)
    examples = (
        Example("test_byobnet", "test_*"),
        Example("repvgg_a0", "byobnet", variant="repvgg"),
        Example("gernet_s", "byobnet", quick=False, variant="gernet"),
        Example("resnext26ts", "byobnet", quick=False, variant="resnext-ts"),
        Example("repvgg_b0", "byobnet", quick=False, variant="repvgg"),
        Example("eca_resnet33ts", "byobnet", quick=False, variant="resnet-ts"),
        Example("regnetz_b16", "byobnet", quick=False, variant="regnetz"),
        Example("gcresnet33ts", "byobnet", quick=False, variant="global-context"),
        Example("sebotnet33ts_256", "byobnet", {"img_size": 32}, quick=False, variant="botnet"),
        Example("lambda_resnet26t", "byobnet", {"img_size": 32}, quick=False, variant="lambda"),
    )
