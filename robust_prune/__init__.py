"""robust_prune: adversarially robust pruning for timm model zoos.

Implements "Achieving Adversarial Robustness via Sparsity" (Liao et al., Machine Learning 2022):
adversarial pruning, lottery tickets with rewinding, and inverse weights inheritance (IWI).

Example:
    >>> import timm, robust_prune as rp
    >>> model = timm.create_model("test_resnet", num_classes=10)
    >>> result = rp.robustify(model, method="prune", sparsity=0.5, epochs=0, finetune_epochs=0, eval_n=8,
    ...                       eval_steps=1, progress=False)  # no training: a tiny budget for the example
    >>> print(result.report.to_markdown())  # doctest: +ELLIPSIS
    | metric | value | 95% CI | threat model | n | time |
    ...
    >>> commit = result.push_to_hub("me/test_resnet-digits-robust")  # to the Hub that HF_ENDPOINT names
    >>> again = rp.from_pretrained("me/test_resnet-digits-robust")
    >>> again.record.structure
    'channel'
"""

from . import methods
from ._moved import alias_moved_modules
from ._version import __version__
from .adapter_api import get_adapter, list_adapters
from .api import robustify
from .config import AttackConfig, PruneConfig, RobustifyConfig, TrainConfig
from .env_info import show_versions
from .evaluation import evaluate
from .evaluation.report import RobustnessReport
from .inheritance import GrowResult, GrowthInfo, grow
from .pruning import PruneResult, PruningRecord, prune
from .publishing.export import export_onnx
from .publishing.hub import from_pretrained, push_folder, push_to_hub, save_pretrained
from .result import RobustifyResult

__all__ = [
    "__version__",
    "AttackConfig",
    "PruneConfig",
    "PruneResult",
    "PruningRecord",
    "RobustifyConfig",
    "RobustifyResult",
    "RobustnessReport",
    "TrainConfig",
    "GrowResult",
    "GrowthInfo",
    "evaluate",
    "export_onnx",
    "from_pretrained",
    "get_adapter",
    "grow",
    "list_adapters",
    "methods",
    "prune",
    "push_folder",
    "push_to_hub",
    "robustify",
    "save_pretrained",
    "show_versions",
]

alias_moved_modules(__name__)  # the 0.1.0 paths of moved modules (robust_prune.catalog, ...)
