"""What a method returns (:class:`RobustifyResult`) and how a method measures its model (:func:`evaluate_for`).

Example:
    >>> import robust_prune as rp
    >>> result = rp.robustify("test_resnet", method="dense", epochs=0, eval_n=16, eval_steps=1, progress=False)
    >>> result.report.n, result.record.structure
    (16, 'none')
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from .config import RobustifyConfig
from .data.loading import DataBundle
from .evaluation.report import RobustnessReport
from .evaluation.robustness import evaluate
from .models import NormalizedModel
from .pruning.record import PruningRecord
from .training.adversarial import EpochStats

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from .publishing.hub_remote import PushOptions

__all__ = ["RobustifyResult", "evaluate_for"]


def evaluate_for(model: nn.Module, bundle: DataBundle, config: RobustifyConfig, *, progress: bool) -> RobustnessReport:
    """Evaluate ``model`` on ``bundle``'s test split with the report settings of ``config`` (attacks, steps,
    points, seed) at the eps the run is reported at (:meth:`RobustifyConfig.budgets`)."""
    _, eps = config.budgets(bundle.default_eps)
    return evaluate(
        model,
        bundle,
        attacks=config.eval_attacks,
        eps=eps,
        steps=config.eval_steps,
        n=config.eval_n,
        seed=config.seed,
        progress=progress,
    )


@dataclass
class RobustifyResult:
    """What ``robustify()`` returns.

    Attributes:
        model: ready to use: normalisation inside, eval mode, pixel-space inputs in [0, 1]; it carries
            ``record`` and ``report`` too.
        report: the :class:`RobustnessReport` measured on the test split.
        config: the full :class:`RobustifyConfig` of the run.
        record: the :class:`PruningRecord` (structure ``"none"`` for dense and grown models).
        history: per-epoch training statistics of every stage.
        data: a JSON-able description of the data.
        ticket_report: for ``method="iwi"``, the report of the pruned ticket before growth.
    """

    model: NormalizedModel
    report: RobustnessReport
    config: RobustifyConfig
    record: PruningRecord
    history: list[EpochStats] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    ticket_report: RobustnessReport | None = None

    def __post_init__(self) -> None:
        self.model.eval()
        self.model.record = self.record
        self.model.report = self.report

    def save_pretrained(self, save_directory: str | os.PathLike[str]) -> Path:
        """Write config.json, model.safetensors, report.json, report.md and a model card to a folder.

        Under torchrun / accelerate launch only the main process writes.

        Example:
            >>> import robust_prune as rp
            >>> result = rp.robustify("test_resnet", epochs=0, finetune_epochs=0, eval_n=8, eval_steps=1,
            ...                       progress=False)
            >>> sorted(p.name for p in result.save_pretrained("out/test_resnet-digits").iterdir())
            ['README.md', 'config.json', 'model.safetensors', 'report.json', 'report.md']
        """
        from .publishing.hub import save_pretrained

        return save_pretrained(self, save_directory)

    def push_to_hub(self, repo_id: str, **push: Unpack[PushOptions]) -> str:
        """Publish the model to the Hugging Face Hub in one commit; returns the commit URL (empty on the
        non-main processes of a distributed run, which push nothing). ``**push`` takes
        :class:`~robust_prune.publishing.hub_remote.PushOptions` (``private``, ``token``, ``revision``,
        ``commit_message``).

        Example:
            >>> import robust_prune as rp
            >>> result = rp.robustify("test_resnet", epochs=0, finetune_epochs=0, eval_n=8, eval_steps=1,
            ...                       progress=False)
            >>> result.push_to_hub("me/test_resnet-digits-robust").startswith("http")
            True
        """
        from .publishing.hub import push_to_hub

        return push_to_hub(self, repo_id, **push)
