"""``robustify()``: chains the public stages for one ``method`` and returns a measured result.

Data flows one way: timm model -> adapter -> adversarial training -> pruning -> ticket ->
adversarial fine-tuning (or grow -> adversarial training) -> evaluation -> report -> save / push.
Each stage is a public function; this module only orchestrates them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from robust_prune.adapters import get_adapter

from .config import AttackConfig, PruneConfig, RobustifyConfig, TrainConfig
from .data import DataBundle, load_data
from .errors import ModelAdaptationError
from .evaluation import RobustnessReport, evaluate
from .models import NormalizedModel, adapt_model, create_model
from .pruning import PruningRecord
from .training import EpochStats

__all__ = ["RobustifyResult", "robustify", "prepare"]


@dataclass
class RobustifyResult:
    """What ``robustify()`` returns.

    Attributes:
        model: ready to use: normalisation inside, eval mode, pixel-space inputs in [0, 1].
        report: the :class:`RobustnessReport` measured on the test split.
        config: the full :class:`RobustifyConfig` of the run.
        record: the :class:`PruningRecord` (structure ``"none"`` for dense models).
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

    def save_pretrained(self, save_directory: str | os.PathLike[str]) -> Path:
        """Write config.json, model.safetensors, report.json, report.md and a model card to a folder.

        Example:
            >>> result.save_pretrained("out/resnet18-digits")  # doctest: +SKIP
        """
        from .distributed import is_main_process
        from .hub import save_pretrained

        if not is_main_process():  # under torchrun / accelerate launch only the main process writes
            return Path(save_directory)

        return save_pretrained(self, save_directory)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        private: bool = False,
        token: str | None = None,
        revision: str | None = None,
        commit_message: str | None = None,
    ) -> str:
        """Publish the model to the Hugging Face Hub in one commit; returns the commit URL.

        Example:
            >>> result.push_to_hub("me/resnet18-digits-robust")  # doctest: +SKIP
        """
        from .distributed import is_main_process
        from .hub import push_to_hub

        if not is_main_process():  # under torchrun / accelerate launch only the main process pushes
            return ""

        return push_to_hub(
            self, repo_id, private=private, token=token, revision=revision, commit_message=commit_message
        )


def prepare(
    model: nn.Module | str,
    data: Any = None,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = False,
    batch_size: int = 64,
    seed: int = 0,
) -> tuple[NormalizedModel, DataBundle]:
    """Fit a timm model (or model name) to the data: classes, channels and input size; wrap it for pixel space.

    Example:
        >>> model, bundle = prepare("resnet10t", "digits")
        >>> bundle.num_classes, model.model.num_classes
        (10, 10)
    """
    if isinstance(model, str):
        probe = load_data(data, root=data_dir, download=download, batch_size=batch_size, seed=seed)
        model = create_model(model, num_classes=probe.num_classes)
    if not isinstance(model, nn.Module):
        raise ModelAdaptationError(
            f"robustify() needs a timm model or its name, got {type(model).__name__}. "
            "Example: robustify(timm.create_model('resnet18', num_classes=10))."
        )
    adapter = get_adapter(model)
    size = adapter.fixed_input_size(model)
    bundle = load_data(
        data,
        image_size=size[0] if size else 32,
        channels=adapter.in_chans(model),
        batch_size=batch_size,
        root=data_dir,
        download=download,
        seed=seed,
    )
    adapt_model(model, num_classes=bundle.num_classes)
    return NormalizedModel.from_timm(model), bundle


def _eval(model: nn.Module, bundle: DataBundle, config: RobustifyConfig, progress: bool) -> RobustnessReport:
    return evaluate(
        model,
        bundle,
        attacks=config.eval_attacks,
        eps=config.eval_eps,
        steps=config.eval_steps,
        n=config.eval_n,
        seed=config.seed,
        progress=progress,
    )


def robustify(
    model: nn.Module | str,
    data: Any = None,
    *,
    method: str = "prune",
    sparsity: float = 0.5,
    structure: str = "channel",
    attack: AttackConfig | None = None,
    epochs: int | None = None,
    finetune_epochs: int | None = None,
    grow_epochs: int | None = None,
    ticket_method: str = "prune",
    grow_init: str = "zero-out",
    objective: str = "pgd-at",
    importance: str = "magnitude",
    rounds: int = 1,
    rewind_epoch: int = 0,
    reinit: bool = False,
    adversarial: bool = True,
    lr: float = 0.05,
    eval_attacks: tuple[str, ...] = ("pgd",),
    eval_n: int | None = None,
    eval_eps: float | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = False,
    batch_size: int = 64,
    seed: int = 0,
    progress: bool = True,
    config: RobustifyConfig | None = None,
    run_dir: str | os.PathLike[str] | None = None,
    resume: str | os.PathLike[str] | bool | None = None,
) -> RobustifyResult:
    """Make a timm model smaller and adversarially robust, and measure it honestly.

    Args:
        model: a timm model (or a timm model name); its classifier is fitted to the data.
        data: ``None`` (embedded digits), a dataset name, an image folder or ``(train, test)`` loaders.
        method: ``"dense"`` (adversarial training only) or ``"prune"`` (train, prune, fine-tune with
            inherited weights); ``"lottery"`` and ``"iwi"`` where installed.
        sparsity: fraction of channels (``structure="channel"``) or weights (``"weight"``) removed.
        attack: the training adversary (default: PGD-5, L-inf, the dataset's eps).
        epochs: adversarial training epochs before pruning (dense: all of them). Default 6.
        finetune_epochs: adversarial fine-tuning epochs after pruning. Default 3.
        grow_epochs: ``method="iwi"``: adversarial training epochs of the grown full-width model. Default 3.
        ticket_method: ``method="iwi"``: where the ticket comes from, ``"prune"`` or ``"lottery"``.
        grow_init: ``method="iwi"``: new weights when growing, ``"zero-out"`` (function-preserving),
            ``"zero"`` or ``"random"`` (see :func:`robust_prune.inheritance.grow`).
        objective: ``"pgd-at"``, ``"trades"``, ``"fgsm-rs"`` or ``"clean"``.
        importance: channel/weight importance (``"magnitude"``, ``"taylor"``, ``"random"``, ``"robust"``).
        rounds, rewind_epoch, reinit, adversarial: ``method="lottery"``: pruning rounds to reach ``sparsity``,
            the epoch whose weights the ticket rewinds to (0 = the initialisation), re-initialise the final
            ticket instead (the control), and adversarial (True) or clean (False) training while pruning.
        eval_attacks, eval_n: the evaluation attacks and number of test points (all when None).
        eval_eps: the evaluation (L-inf) budget; by default the training attack's eps when ``attack`` sets an
            L-inf one (a model is reported at the threat model it was trained for), else the dataset's default.
        seed: makes the whole run deterministic on one machine.
        config: a full :class:`RobustifyConfig`; overrides the keyword options above when given.
        run_dir: checkpoint every stage into this folder (see :mod:`robust_prune.checkpoint`).
        resume: a run directory (or True with ``run_dir``) to continue from its last checkpoint; the
            options must be the ones the run was started with.

    Example:
        >>> import timm, robust_prune as rp
        >>> result = rp.robustify(timm.create_model("resnet18", num_classes=10), sparsity=0.5)  # doctest: +SKIP
        >>> print(result.report)  # doctest: +SKIP
    """
    if config is None:
        train_attack = attack or AttackConfig(steps=5)
        config = RobustifyConfig(
            method=method,
            data="digits" if data is None else str(data) if isinstance(data, (str, os.PathLike)) else "loaders",
            seed=seed,
            pretrain=TrainConfig(
                epochs=6 if epochs is None else epochs, objective=objective, attack=train_attack, lr=lr
            ),
            finetune=TrainConfig(
                epochs=3 if finetune_epochs is None else finetune_epochs,
                objective=objective,
                attack=train_attack,
                lr=lr / 2,
            ),
            prune=PruneConfig(
                sparsity=sparsity,
                structure=structure,
                importance=importance,
                rounds=rounds,
                rewind_epoch=rewind_epoch,
                reinit=reinit,
                adversarial=adversarial,
            ),
            grow_train=TrainConfig(
                epochs=3 if grow_epochs is None else grow_epochs, objective=objective, attack=train_attack, lr=lr
            ),
            ticket_method=ticket_method,
            grow_init=grow_init,
            eval_attacks=tuple(eval_attacks),
            eval_n=eval_n,
            # the report's PGD is L-inf: it inherits an L-inf training budget, never an L2 one
            eval_eps=eval_eps if eval_eps is not None or train_attack.norm != "Linf" else train_attack.eps,
        )
    torch.manual_seed(config.seed)
    if data is None and config.data != "digits":
        data = config.data
    net, bundle = prepare(model, data, data_dir=data_dir, download=download, batch_size=batch_size, seed=config.seed)
    from .checkpoint import activate, open_run_directory
    from .distributed import is_main_process
    from .methods import run_method

    progress = progress and is_main_process()  # one set of progress bars under torchrun

    with activate(open_run_directory(run_dir, resume, config, net, bundle)):
        return run_method(net, bundle, config, progress=progress)
