"""The stage runner: every method's stages are carried out by one, which checkpoints them and resumes a killed run.

``robustify(run_dir=..., resume=...)`` builds a :class:`StageRunner` and passes it to the method; without a run
directory the runner simply runs each stage and writes nothing. A method declares its stages as data (unique names
within the method: ``"pretrain"``, ``"prune"``, ``"round-2"``, ``"grow"``...): a :class:`Train` stage or a
:class:`Step` that does not train (pruning, growth). :meth:`StageRunner.carry_out` runs them in order:

- a :class:`Train` stage through :meth:`StageRunner.train`, at the training eps of the run and the stage's seed
  (:func:`stage_seed`); a finished stage is skipped (returning its stored history), the stage a checkpoint is in
  resumes at its next epoch with optimizer, scheduler, fp16 gradient scaler and RNG restored, any other runs from
  epoch 0, checkpointing every ``checkpoint_every`` epochs;
- a :class:`Step` only while :meth:`StageRunner.needs` it; the pruning record it returns is checkpointed with the
  model as it now is (:meth:`StageRunner.finish_stage`);
- small JSON facts (:attr:`StageRunner.extra`) and tensor sets (:meth:`StageRunner.keep`, e.g. a lottery ticket's
  rewind point) that must survive a resume are written with every later checkpoint.

On resume, the first call restores the latest checkpoint's architecture (a channel-pruned record is replayed),
masks and weights into the model (:meth:`StageRunner.restore`). The checkpoint format is
:mod:`robust_prune.training.checkpoint`'s.

Example:
    >>> runner = StageRunner()          # no run directory: every stage runs, nothing is written
    >>> runner.needs("prune"), runner.enabled
    (True, False)
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ..distributed import model_device
from ..errors import CheckpointError, ConfigError
from ..pruning.masks import apply_masks
from ..pruning.record import PruningRecord
from .adversarial import EpochStats, train
from .checkpoint import RunDirectory, set_rng_state

if TYPE_CHECKING:
    from ..config import RobustifyConfig, TrainConfig
    from ..data.loading import DataBundle

__all__ = ["Outcome", "StageContext", "StageRunner", "Step", "Train", "open_run_directory", "stage_seed"]

# Each stage's seed is the run's seed plus its offset here, the one place seeds are derived. The values are the ones
# every earlier version used (issue 25), so a run reproduces bit for bit and an old run directory resumes exactly.
# "reinit" is the draw of a re-initialised lottery ticket's weights inside the last prune-R stage.
STAGE_SEED_OFFSETS = {"pretrain": 0, "finetune": 1, "grow": 0, "grown": 2, "reinit": 7919}
ROUND_SEED_OFFSET = 1000  # stage round-R (a lottery round's training) draws from seed + 1000 * R


def stage_seed(seed: int, stage: str) -> int:
    """The seed of ``stage`` in a run seeded with ``seed``.

    Example:
        >>> len({stage_seed(0, "pretrain"), stage_seed(0, "finetune"), stage_seed(0, "round-1")})
        3
    """
    round_ = re.fullmatch(r"round-(\d+)", stage)
    if round_ is not None:
        return seed + ROUND_SEED_OFFSET * int(round_.group(1))
    if stage not in STAGE_SEED_OFFSETS:
        raise ValueError(f"No seed is declared for stage {stage!r}: add it to runner.STAGE_SEED_OFFSETS.")
    return seed + STAGE_SEED_OFFSETS[stage]


@dataclass
class StageContext:
    """What a stage's functions see: the run's model, data and config, the runner, whether progress bars show and
    the history trained so far."""

    model: nn.Module
    bundle: DataBundle
    config: RobustifyConfig
    runner: StageRunner
    progress: bool
    history: list[EpochStats] = field(default_factory=list)

    def seed(self, name: str) -> int:
        """:func:`stage_seed` of ``name`` in this run."""
        return stage_seed(self.config.seed, name)

    @property
    def record(self) -> PruningRecord:
        """The pruning record the stages so far left (the dense model's while nothing was pruned)."""
        if self.runner.record is not None:
            return self.runner.record
        return PruningRecord.for_dense_model(self.model, image_size=self.bundle.image_size)  # the size it trains at


@dataclass(frozen=True)
class Train:
    """A training stage: ``config`` trained at the run's training eps and :func:`stage_seed` of ``name``.

    Attributes:
        name: the checkpoint name (unique within the method).
        config: the stage's training settings.
        label: the name shown in progress bars and statistics.
        before: ``before(context)``, called when the stage is about to train (not when it is skipped).
        on_epoch_end: ``on_epoch_end(context, epoch, model)`` after each epoch, before it is checkpointed.
    """

    name: str
    config: TrainConfig
    label: str
    before: Callable[[StageContext], None] | None = None
    on_epoch_end: Callable[[StageContext, int, nn.Module], None] | None = None


@dataclass(frozen=True)
class Step:
    """A stage that does not train: ``run(context)`` changes the model in place and returns its pruning record."""

    name: str
    run: Callable[[StageContext], PruningRecord]


@dataclass
class Outcome:
    """What a method's stages leave: the training history and the last pruning record (the dense model's when
    nothing was pruned)."""

    history: list[EpochStats]
    record: PruningRecord


class StageRunner:
    """What a method talks to: skips finished stages, resumes the current one, checkpoints as it goes.

    Args:
        run_dir: the run directory to checkpoint into (None: run every stage, write nothing).
    """

    def __init__(self, run_dir: RunDirectory | None = None) -> None:
        self.run_dir = run_dir
        self.resumed = run_dir.latest() if run_dir is not None else None
        self.finished: list[str] = list(self.resumed.finished) if self.resumed else []
        self.histories: dict[str, list[dict[str, Any]]] = dict(self.resumed.histories) if self.resumed else {}
        self.record: PruningRecord | None = None
        self.extra: dict[str, Any] = dict(self.resumed.extra) if self.resumed else {}
        self._kept: dict[str, dict[str, torch.Tensor]] = self.resumed.kept() if self.resumed else {}
        self._restored = False

    @property
    def enabled(self) -> bool:
        """Whether stages are checkpointed (a run directory was given)."""
        return self.run_dir is not None

    def restore(self, model: nn.Module) -> PruningRecord | None:
        """Put the latest checkpoint's architecture, masks and weights into ``model`` (in place), once.

        Returns the checkpoint's pruning record (None on a fresh start, when ``model`` is left alone). A
        channel-pruned checkpoint replaces ``model.model`` (the timm module inside a NormalizedModel) with the
        rebuilt pruned architecture.
        """
        ckpt = self.resumed
        if ckpt is None or self._restored:
            return self.record
        self._restored = True
        record = PruningRecord.from_dict(ckpt.record, masks=ckpt.masks()) if ckpt.record else None
        if record is not None and record.structure == "channel":
            if not hasattr(model, "model"):
                raise CheckpointError("A channel-pruned checkpoint can only be restored into a NormalizedModel.")
            model.model = record.build().to(model_device(model))
        if record is not None and record.masks:
            apply_masks(model, record.masks)
        try:
            model.load_state_dict(ckpt.model_state(), strict=True)
        except RuntimeError as exc:
            raise CheckpointError(
                f"The weights in {ckpt.path} do not fit this model ({exc}). The run directory belongs to another model."
            ) from exc
        if record is not None and hasattr(model, "record"):
            model.record = record
        self.record = record
        if ckpt.stage_finished:
            set_rng_state(ckpt.train_state()["rng"])
        return record

    def carry_out(
        self,
        stages: Sequence[Train | Step],
        model: nn.Module,
        bundle: DataBundle,
        config: RobustifyConfig,
        *,
        progress: bool,
    ) -> Outcome:
        """Run ``stages`` in order on ``model`` (in place), skipping finished ones and resuming the current one."""
        self.restore(model)
        train_eps, _ = config.budgets(bundle.default_eps)
        context = StageContext(model, bundle, config, self, progress)
        for stage in stages:
            if isinstance(stage, Step):
                if self.needs(stage.name):
                    self.finish_stage(stage.name, model, record=stage.run(context))
                continue
            if stage.before is not None and self.needs(stage.name):
                stage.before(context)
            hook = stage.on_epoch_end
            context.history += self.train(
                model, bundle.train, stage=stage.name, label=stage.label, config=stage.config, eps=train_eps,
                seed=context.seed(stage.name), progress=progress,
                on_epoch_end=None if hook is None else lambda epoch, plain, *_, hook=hook: hook(context, epoch, plain),
            )  # fmt: skip
        return Outcome(context.history, context.record)

    def needs(self, stage: str) -> bool:
        """Whether ``stage`` still has to run (False once a checkpoint recorded it as finished)."""
        return stage not in self.finished

    def stage_history(self, stage: str) -> list[EpochStats]:
        """The per-epoch statistics recorded for ``stage`` (empty when it has not trained)."""
        return [EpochStats(**h) for h in self.histories.get(stage, [])]

    def keep(self, name: str, tensors: Mapping[str, torch.Tensor]) -> None:
        """Keep a tensor set across a resume (written with every later checkpoint); see :meth:`kept`."""
        self._kept[name] = {k: v.detach().cpu().clone() for k, v in tensors.items()}

    def kept(self, name: str) -> dict[str, torch.Tensor] | None:
        """A tensor set given to :meth:`keep` in this run or before the resume (None if there is none)."""
        return self._kept.get(name)

    def train(
        self,
        model: nn.Module,
        loader: Any,
        *,
        stage: str,
        config: Any,
        label: str | None = None,
        on_epoch_end: Callable[..., None] | None = None,
        **kwargs: Any,
    ) -> list[EpochStats]:
        """:func:`robust_prune.training.adversarial.train` for one named stage, skipping, resuming or checkpointing it.

        Args:
            model, loader, config: as for :func:`robust_prune.training.adversarial.train`.
            stage: the stage's checkpoint name (unique within the method).
            label: the name shown in progress bars and statistics (default ``stage``).
            on_epoch_end: called after each epoch like ``train``'s hook, before the epoch is checkpointed.
            **kwargs: passed to ``train`` (eps, seed, progress, accelerator).
        """
        self.restore(model)
        if not self.needs(stage):
            return self.stage_history(stage)
        start_epoch, resume_state = 0, None
        ckpt = self.resumed
        if ckpt is not None and ckpt.stage == stage and not ckpt.stage_finished:
            start_epoch = ckpt.epoch
            resume_state = ckpt.train_state()
            set_rng_state(resume_state["rng"])
        previous = self.stage_history(stage) if start_epoch else []
        every = config.checkpoint_every

        def checkpoint(
            epoch: int, plain: nn.Module, optimizer: Any, scheduler: Any, history: list[Any], scaler: Any
        ) -> None:
            if on_epoch_end is not None:
                on_epoch_end(epoch, plain, optimizer, scheduler, history, scaler)
            done = epoch + 1
            self.histories[stage] = [h.to_dict() for h in previous + history]
            if self.run_dir is None or done == config.epochs or done % every:
                return
            self._save(stage=stage, epoch=done, stage_finished=False, model=plain, optimizer=optimizer,
                       scheduler=scheduler, scaler=scaler)  # fmt: skip

        history = train(
            model, loader, config=config, stage=label or stage, start_epoch=start_epoch,
            resume_state=resume_state, on_epoch_end=checkpoint, **kwargs,
        )  # fmt: skip
        self.finish_stage(stage, model)
        return previous + history

    def finish_stage(
        self,
        stage: str,
        model: nn.Module,
        *,
        record: PruningRecord | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        """Record that ``stage`` finished, with the model (and its pruning record) as it now is."""
        if record is not None:
            self.record = record
        if extra:
            self.extra.update(extra)
        if stage not in self.finished:
            self.finished.append(stage)
        self.histories.setdefault(stage, [])
        self._save(stage=stage, epoch=-1, stage_finished=True, model=model)

    def _save(self, *, stage: str, epoch: int, stage_finished: bool, model: nn.Module, **train_state: Any) -> None:
        if self.run_dir is None:
            return
        self.run_dir.save(
            stage=stage, epoch=epoch, stage_finished=stage_finished, finished=self.finished,
            histories=self.histories, model=model, record=self.record, extra=self.extra, kept=self._kept,
            **train_state,
        )  # fmt: skip


def open_run_directory(
    run_dir: str | os.PathLike[str] | None,
    resume: str | os.PathLike[str] | bool | None,
    config: Any,
    model: nn.Module | None = None,
    bundle: Any = None,
    *,
    overwrite: bool = False,
) -> RunDirectory | None:
    """The :class:`~robust_prune.training.checkpoint.RunDirectory` for ``robustify(run_dir=..., resume=...)``, started
    (None when neither is given).

    ``resume`` is a run directory, or True to continue ``run_dir``. The model's architecture and the
    data's description are part of the fingerprint, so a directory of another model or data is refused.
    A fresh start in a directory holding checkpoints raises ``RunDirectoryExistsError`` unless ``overwrite``.
    """
    if resume is not None and resume is not False and not isinstance(resume, bool):
        if run_dir is not None and Path(run_dir) != Path(resume):
            raise ConfigError(f"run_dir={run_dir} and resume={resume} name different folders; pass one of them.")
        run_dir = resume
    if resume is True and run_dir is None:
        raise ConfigError("resume=True needs run_dir= (or pass the run directory as resume=).")
    if run_dir is None:
        return None
    identity: dict[str, Any] = {}
    if bundle is not None and hasattr(bundle, "spec"):
        identity["data"] = bundle.spec()
    if model is not None:
        inner = getattr(model, "model", model)
        identity["model"] = getattr(inner, "default_cfg", {}).get("architecture") or type(inner).__name__
        identity["parameters"] = sum(p.numel() for p in model.parameters())
    directory = RunDirectory(run_dir, config, resume=bool(resume), identity=identity, overwrite=overwrite)
    directory.start()
    return directory
