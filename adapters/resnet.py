"""timm.models.resnet: ResNet, ResNeXt, SE-ResNeXt, Wide ResNet, ResNet-D/T variants.

Plain torch-pruning handles these through its dependency graph: residual additions tie the channels of
each stage together, and the classifier keeps its outputs. BatchNorm everywhere makes growth exact.
ResNets built from Res2Net, Selective Kernel or ResNeSt blocks live in ``timm.models.resnet`` too; their
adapters (res2net.py, sknet.py, resnest.py) match first because they look at the blocks.
"""

from robust_prune.adapter_api import Adapter, Example, register_adapter


@register_adapter
class ResNetAdapter(Adapter):
    name = "resnet"
    timm_modules = ("resnet",)
    examples = (
        Example("test_resnet", "test_*"),
        Example("resnet10t", "resnet", variant="resnet"),
        Example("seresnext26d_32x4d", "resnet", variant="seresnext"),
        Example("resnext50_32x4d", "resnet", {"layers": [1, 1, 1, 1]}, variant="resnext"),
        Example("wide_resnet50_2", "resnet", {"layers": [1, 1, 1, 1]}, variant="wide_resnet"),
        Example("resnet18", "resnet", quick=False, variant="resnet"),
        Example("resnet50d", "resnet", quick=False, variant="resnet"),
        Example("ecaresnet26t", "resnet", quick=False, variant="resnet"),
    )
