"""Adversarial training on Hugging Face Accelerate: PGD-AT (Madry), TRADES, fast FGSM-RS, or clean.

The same code runs on one CPU process or many GPUs (``accelerate launch`` / ``torchrun``). Attacks
are computed on the unwrapped model in eval mode, each batch with its own seed, so they never move
the global RNG stream that drives shuffling and augmentation.

Example:
    >>> from robust_prune import TrainConfig, AttackConfig
    >>> from robust_prune.api import prepare
    >>> from robust_prune.training.adversarial import train
    >>> model, bundle = prepare("test_resnet", "digits")
    >>> config = TrainConfig(epochs=1, attack=AttackConfig(eps=0.1, steps=1))
    >>> history = train(model, bundle.train, config=config, progress=False)
    >>> history[0].epoch, history[0].images
    (1, 1437)
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
import torchattacks
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .. import distributed
from ..config import AttackConfig, TrainConfig
from ..data.loading import check_batch_shape, pixel_faults, raise_bad_pixels
from ..errors import ConfigError, TrainingDivergedError
from ..evaluation.attacks import preserve_state, run_attack
from ..models import eval_mode
from .sync_bn import synced_batchnorm, use_sync_bn

__all__ = [
    "EpochStats",
    "train",
    "train_one_batch",
    "adversarial_loss",
    "make_accelerator",
    "check_precision",
    "AttackGradientScaled",
]


@dataclass
class EpochStats:
    """What one epoch of training measured (accuracies on the training batches; for PGD-AT and FGSM-RS the clean
    accuracy on every ``CLEAN_EVERY``-th batch)."""

    stage: str
    epoch: int
    loss: float
    clean_accuracy: float
    adversarial_accuracy: float
    lr: float
    seconds: float
    images: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _batch_seed(seed: int, epoch: int, step: int) -> int:
    return (seed * 1_000_003 + epoch * 10_007 + step) % (2**31 - 1)


def _shuffle_seed(seed: int, epoch: int) -> int:
    return (seed * 7_919 + epoch * 104_729 + 12_345) % (2**31 - 1)


def _shuffle_generator(loader: DataLoader) -> torch.Generator | None:
    """The generator that drives the loader's shuffling (re-seeded per epoch so that resumed runs match)."""
    sampler = getattr(loader, "sampler", None)
    generator = getattr(sampler, "generator", None)
    return generator if isinstance(generator, torch.Generator) else getattr(loader, "generator", None)


def _adversarial_examples(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, objective: str, attack: AttackConfig
) -> torch.Tensor:
    if objective == "clean":
        return images
    if objective == "pgd-at":
        return run_attack(model, images, labels, attack)
    eps = float(attack.eps)  # type: ignore[arg-type]
    with preserve_state(model, seed=attack.seed):
        if objective == "fgsm-rs":  # Wong et al. 2020: random start, one step of 1.25 eps
            adversary = torchattacks.FFGSM(model, eps=eps, alpha=1.25 * eps)
        else:  # trades: maximise the KL divergence to the clean prediction
            adversary = torchattacks.TPGD(model, eps=eps, alpha=attack.resolved_step_size(), steps=attack.steps)
        adversary.set_model_training_mode(model_training=False)
        return adversary(images, labels).detach()


def adversarial_loss(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    objective: str,
    attack: AttackConfig,
    trades_beta: float = 6.0,
    attack_model: nn.Module | None = None,
    monitor_clean: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """The training loss for one batch, with the clean and adversarial logits.

    ``attack_model`` (default ``model``) computes the adversarial examples: pass the unwrapped module
    when ``model`` is wrapped for distributed training. With ``monitor_clean=False``, PGD-AT and FGSM-RS skip the
    extra clean forward pass that only monitors clean accuracy (the clean logits are then None).
    """
    x_adv = _adversarial_examples(attack_model or model, images, labels, objective, attack)
    if objective == "trades":
        logits_clean = model(images)
        logits_adv = model(x_adv)
        kl = F.kl_div(F.log_softmax(logits_adv, 1), F.softmax(logits_clean, 1), reduction="batchmean")
        return F.cross_entropy(logits_clean, labels) + trades_beta * kl, logits_clean, logits_adv
    logits_adv = model(x_adv)
    loss = F.cross_entropy(logits_adv, labels)
    if objective == "clean":
        return loss, logits_adv, logits_adv
    if not monitor_clean:
        return loss, None, logits_adv
    with torch.no_grad(), eval_mode(model):  # monitoring only: keep BatchNorm statistics adversarial
        logits_clean = model(images)
    return loss, logits_clean, logits_adv


def train_one_batch(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    attack: AttackConfig,
    objective: str = "pgd-at",
    lr: float = 0.01,
) -> float:
    """One SGD step of adversarial training on one batch; returns the loss (a smoke test for any model).

    Example:
        >>> import timm
        >>> from robust_prune.data.loading import first_n, load_data
        >>> x, y = first_n(load_data("digits").train, 16)
        >>> model = timm.create_model("test_resnet", num_classes=10)
        >>> loss = train_one_batch(model, x, y, attack=AttackConfig(eps=0.03, steps=2))
        >>> type(loss).__name__
        'float'
    """
    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=lr)
    optimizer.zero_grad(set_to_none=True)
    loss, _, _ = adversarial_loss(model, images, labels, objective=objective, attack=attack)
    if not torch.isfinite(loss):
        raise TrainingDivergedError(f"The loss is {loss.item()} on the first batch; lower lr or eps.")
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def make_accelerator(config: TrainConfig) -> Any:
    """An ``accelerate.Accelerator`` (CPU when no GPU is present).

    Mixed precision is applied by :func:`train` with ``torch.autocast`` per stage, not through the
    Accelerator: accelerate's state is a per-process singleton that cannot change precision between
    the stages of one run.

    Batches are copied to the GPU with ``non_blocking=True`` (from pinned memory: see the ``pin_memory`` data
    option), so the copy of the next batch overlaps the current step instead of waiting for the GPU. The loader's
    batch size is the global batch: under torchrun each of N processes takes 1/N of every batch
    (``split_batches``), so N processes take the same steps, at the same learning rate, as one process.
    """
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration

    del config
    # Splitting needs the loader's batch size; one process has nothing to split (and takes ready-made batches,
    # batch_size=None, as they come). The launcher's WORLD_SIZE is known before accelerate starts the group.
    several = int(os.environ.get("WORLD_SIZE", "1")) > 1 or distributed.world_size() > 1
    loading = DataLoaderConfiguration(non_blocking=True, split_batches=several)
    return Accelerator(cpu=not torch.cuda.is_available(), dataloader_config=loading)


# Autocast dtype of each mixed_precision setting ("no": none).
_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}
# Under fp16 the training attack's input gradients are scaled by this before they are cast to fp16: the gradient
# of a batch-mean loss is ~1e-6 per pixel (measured: median 3e-6, test_resnet, digits, batch 128), inside fp16's
# subnormal range, so about 1% of it flushed to zero. PGD, FGSM and TRADES' attack step along the gradient's sign
# (L2 PGD along its normalised direction): a constant factor changes nothing but the rounding.
ATTACK_GRAD_SCALE = 1024.0


class _ScaledGradient(torch.autograd.Function):
    """Identity on the logits (returned in fp32); multiplies the incoming gradient by ``scale`` before it is cast
    back to the logits' (fp16) dtype."""

    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale, ctx.dtype = scale, logits.dtype
        return logits.float()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return (grad.float() * ctx.scale).to(ctx.dtype), None


class AttackGradientScaled(nn.Module):
    """``model`` for the training attack under fp16 autocast: the same logits (in fp32), with the gradient flowing
    back through the model scaled by :data:`ATTACK_GRAD_SCALE` so that small input gradients do not underflow.

    Example:
        >>> import timm
        >>> inner = timm.create_model("test_resnet", num_classes=10).eval()
        >>> x = torch.rand(2, 3, 32, 32)
        >>> torch.equal(AttackGradientScaled(inner)(x), inner(x))
        True
    """

    def __init__(self, model: nn.Module, scale: float = ATTACK_GRAD_SCALE) -> None:
        super().__init__()
        self.model, self.scale = model, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ScaledGradient.apply(self.model(x), self.scale)


# The progress bar (and the divergence check) read the device every this many steps: the loop's only host syncs.
PROGRESS_EVERY = 10
# PGD-AT and FGSM-RS measure the clean training accuracy on every this many batches: the extra clean forward pass
# on every batch cost about 5% of PGD-5 training throughput (benchmarks/results/throughput.md).
CLEAN_EVERY = 10


def check_precision(config: TrainConfig, device: torch.device | str) -> None:
    """Refuse a mixed-precision setting the device cannot run (fp16 needs CUDA: its gradient scaler is CUDA's).

    Example:
        >>> check_precision(TrainConfig(mixed_precision="bf16"), "cpu")
    """
    if config.mixed_precision == "fp16" and torch.device(device).type != "cuda":
        raise ConfigError(
            f"mixed_precision='fp16' needs a CUDA GPU (this run is on {torch.device(device).type}). "
            "Use mixed_precision='bf16' (CPU and recent GPUs) or 'no'."
        )


def _raise_if_bad(watch: torch.Tensor, *, stage: str, epoch: int, lr: float, eps: float | None) -> None:
    """Raise on every process when any process saw a bad batch (one process raising alone would hang the others).

    ``watch`` holds 1 + the first batch whose (loss was not finite, pixels were not finite, pixels were outside
    [0, 1]), 0 where none; bad images come first, since they make the loss NaN too. One host sync."""
    seen, first = torch.stack([distributed.sum_across((watch > 0).to(watch.dtype)), watch]).tolist()
    where = [str(b) if b else "(of another process)" for b in first]
    context = f" ({stage}, epoch {epoch + 1})"
    if seen[1]:
        raise_bad_pixels("nonfinite", "training", where[1] + context)
    if seen[2]:
        raise_bad_pixels("range", "training", where[2] + context)
    if seen[0]:
        raise TrainingDivergedError(
            f"{stage}: the loss became NaN or infinite at epoch {epoch + 1}, batch {where[0]}. "
            f"Likely cause: the learning rate ({lr}) or eps ({eps}) is too large. "
            "The last good checkpoint (if any) is kept."
        )


def _global_batch(loader: DataLoader, processes: int, config: TrainConfig, *, stage: str, lr: float,
                  show: bool) -> bool:  # fmt: skip
    """Check that the (global) batch splits over the processes, say how the run trains, and whether BatchNorm is
    synchronised."""
    batch = getattr(loader, "batch_size", None)
    if processes > 1 and not batch:
        raise ConfigError(
            f"The training loader yields ready-made batches (batch_size=None), which cannot be split over the "
            f"{processes} processes: give the DataLoader a batch_size (the global batch)."
        )
    if batch and batch % processes:
        raise ConfigError(
            f"The batch size {batch} is the global batch and must split evenly over the {processes} processes: "
            f"use a multiple of {processes}, e.g. {batch - batch % processes or processes}."
        )
    per_process = batch // processes if batch else 0
    sync = use_sync_bn(config.sync_bn, per_process_batch=per_process, processes=processes)
    if show:
        split = f" ({processes} processes x {per_process})" if processes > 1 else ""
        tqdm.write(f"{stage}: global batch {batch}{split}, lr {lr:g}" + (", synchronised BatchNorm" if sync else ""))
    return sync


# (epoch, model, optimizer, scheduler, history, gradient scaler)
EpochCallback = Callable[[int, nn.Module, torch.optim.Optimizer, Any, list[EpochStats], Any], None]


def train(
    model: nn.Module,
    loader: DataLoader,
    *,
    config: TrainConfig,
    eps: float | None = None,
    seed: int = 0,
    stage: str = "train",
    accelerator: Any = None,
    progress: bool = True,
    start_epoch: int = 0,
    resume_state: dict[str, Any] | None = None,
    on_epoch_end: EpochCallback | None = None,
) -> list[EpochStats]:
    """Train ``model`` in place for ``config.epochs`` epochs; return per-epoch statistics.

    Args:
        model: the model to train (pixel-space inputs; normalisation inside).
        loader: training batches of ``(images in [0, 1], labels)``.
        config: objective, attack, optimiser and schedule.
        eps: the attack budget when ``config.attack.eps`` is None (the dataset's default).
        seed: seeds the per-batch attacks (with ``config.attack.seed`` added; nothing global).
        stage: a name used in progress bars, errors and statistics.
        accelerator: an ``accelerate.Accelerator`` to reuse (one is made from ``config`` otherwise).
        start_epoch, resume_state: continue a run (``resume_state`` holds optimizer, scheduler and, for fp16, the
            gradient scaler's states).
        on_epoch_end: called after each epoch with ``(epoch, model, optimizer, scheduler, history, scaler)``.

    Raises:
        TrainingDivergedError: the loss became NaN or infinite (names the stage, epoch and batch).
        NonFiniteImagesError: a batch held NaN or infinite pixels; DatasetError: a batch had pixels outside [0, 1],
            other channels than the first batch, or non-square images (each names the batch; the pixel checks are
            read with the progress every ``PROGRESS_EVERY`` steps, so up to that many batches train first).
    """
    if config.attack.eps is None and eps is None:
        raise ConfigError("The training attack has no eps: set TrainConfig.attack.eps or pass eps=.")
    attack = config.attack if config.attack.eps is not None else config.attack.with_eps(eps)
    history: list[EpochStats] = []
    if config.epochs == 0 or start_epoch >= config.epochs:
        return history
    accelerator = accelerator or make_accelerator(config)
    check_precision(config, accelerator.device)
    device = accelerator.device
    model.to(device)  # before the optimizer is made: a fused optimizer checks its parameters' device
    params = [p for p in model.parameters() if p.requires_grad]
    lr = config.learning_rate
    # fused on CUDA: one kernel per step, and fp16's GradScaler hands it the overflow flag on the device instead of
    # reading it on the host every step (GradScaler.step syncs for a non-fused optimizer)
    sgd = torch.optim.SGD(params, lr=lr, momentum=config.momentum, weight_decay=config.weight_decay,
                          fused=True if device.type == "cuda" else None)  # fmt: skip
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    shuffle = _shuffle_generator(loader)
    sync_bn = _global_batch(loader, accelerator.num_processes, config, stage=stage, lr=lr,
                            show=progress and accelerator.is_local_main_process)  # fmt: skip
    # The scheduler is not handed to accelerate: its prepared scheduler steps once per process for each optimizer
    # step. Stepped here once per optimizer step, over the steps of the prepared (per-process) loader, N processes
    # with a global batch follow the one-process schedule at the same global batch.
    wrapped, optimizer, loader = accelerator.prepare(model, sgd, loader)
    total_steps = max(1, config.epochs * len(loader))  # global steps: one per optimizer step
    if config.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            sgd, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))
        )
    else:
        scheduler = torch.optim.lr_scheduler.LambdaLR(sgd, lambda step: 1.0)
    plain = accelerator.unwrap_model(wrapped)
    autocast_dtype = _AUTOCAST.get(config.mixed_precision, torch.bfloat16)
    scaler = torch.amp.GradScaler(device.type, enabled=config.mixed_precision == "fp16")
    if resume_state:
        optimizer.load_state_dict(resume_state["optimizer"])
        scheduler.load_state_dict(resume_state["scheduler"])
        if resume_state.get("scaler"):  # a resumed fp16 run continues at its loss scale, not at 2**16
            scaler.load_state_dict(resume_state["scaler"])
    attack_model = AttackGradientScaled(plain) if config.mixed_precision == "fp16" else plain
    show = progress and accelerator.is_local_main_process
    channels = 0  # every batch must have the first one's channels
    for epoch in range(start_epoch, config.epochs):
        if shuffle is not None:  # the order of epoch e depends on (seed, e) only: resumed runs see the same batches
            shuffle.manual_seed(_shuffle_seed(seed, epoch))
        wrapped.train()
        started = time.perf_counter()
        # loss sum, clean correct, adv correct, images whose clean accuracy was measured (stays on the device)
        totals = torch.zeros(4, device=device)
        # 1 + the first batch whose loss / pixels were not finite / pixels were outside [0, 1] (0: none), read with
        # the progress: every batch of any loader is checked without a host sync per step
        watch = torch.zeros(3, dtype=torch.long, device=device)
        images = 0
        steps = len(loader)
        bar = tqdm(loader, desc=f"{stage} {epoch + 1}/{config.epochs}", disable=not show, leave=False)
        step = -1
        for step, (x, labels) in enumerate(bar):
            channels = channels or (x.shape[1] if isinstance(x, torch.Tensor) and x.dim() == 4 else 0)
            check_batch_shape(x, "training", batch=step + 1, channels=channels)  # host-side shapes: no sync
            batch_attack = dataclasses.replace(attack, seed=_batch_seed(seed + attack.seed, epoch, step))
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=config.mixed_precision != "no"), \
                    synced_batchnorm(sync_bn):
                loss, logits_clean, logits_adv = adversarial_loss(
                    wrapped,
                    x,
                    labels,
                    objective=config.objective,
                    attack=batch_attack,
                    trades_beta=config.trades_beta,
                    attack_model=attack_model,
                    monitor_clean=step % CLEAN_EVERY == 0,
                )
            loss_value = loss.detach().float()
            faults = torch.cat([(~torch.isfinite(loss_value)).reshape(1), pixel_faults(x).to(loss_value.device)])
            watch = torch.where((watch == 0) & faults, step + 1, watch)
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(scaler.scale(loss))
            scaler.step(sgd)  # the fused optimizer itself: accelerate's wrapper hides that it takes the overflow flag
            scaler.update()
            scheduler.step()
            # per-image results from every process, without the samples padded into the last batch
            monitored = logits_clean is not None
            clean_correct = (logits_clean.argmax(1) == labels).float() if monitored else torch.zeros_like(loss_value)
            per_image = torch.stack(
                [
                    loss_value.expand(labels.shape).to(torch.float32),
                    clean_correct.expand(labels.shape),
                    (logits_adv.argmax(1) == labels).float(),
                    torch.full(labels.shape, float(monitored), device=labels.device),
                ]
            )
            per_image = accelerator.gather_for_metrics(per_image.T.contiguous()).T
            totals += per_image.sum(1).to(totals.device)
            images += per_image.shape[1]
            if (step + 1) % PROGRESS_EVERY == 0 or step + 1 == steps:  # the only host syncs of the loop
                _raise_if_bad(watch, stage=stage, epoch=epoch, lr=lr, eps=attack.eps)
                if show:
                    sums = totals.tolist()
                    bar.set_postfix(loss=f"{sums[0] / max(images, 1):.3f}", clean=f"{sums[1] / max(sums[3], 1):.3f}",
                                    adv=f"{sums[2] / max(images, 1):.3f}")  # fmt: skip
        _raise_if_bad(watch, stage=stage, epoch=epoch, lr=lr, eps=attack.eps)
        floats = {name: t for name, t in plain.state_dict().items() if t.is_floating_point()}
        finite = torch.stack([torch.isfinite(t).all() for t in floats.values()]).tolist() if floats else []  # 1 read
        bad = [name for name, ok in zip(floats, finite) if not ok]
        if bad:  # checked before the epoch is checkpointed, so the last checkpoint stays a good one
            raise TrainingDivergedError(
                f"{stage}: the weights became NaN or infinite during epoch {epoch + 1} (batch {step + 1} was the "
                f"last; first bad tensor {bad[0]}). Likely cause: the learning rate ({lr}) or eps "
                f"({attack.eps}) is too large. The last good checkpoint (if any) is kept."
            )
        distributed.broadcast_state(plain)  # identical weights and BatchNorm statistics on every process
        images_seen = max(float(images), 1.0)
        sums = totals.tolist()
        stats = EpochStats(
            stage=stage,
            epoch=epoch + 1,
            loss=sums[0] / images_seen,
            clean_accuracy=sums[1] / max(sums[3], 1.0),
            adversarial_accuracy=sums[2] / images_seen,
            lr=float(scheduler.get_last_lr()[0]),
            seconds=time.perf_counter() - started,
            images=images,
        )
        history.append(stats)
        if on_epoch_end is not None:
            on_epoch_end(epoch, plain, optimizer, scheduler, history, scaler)
    if config.channels_last:
        plain.to(memory_format=torch.contiguous_format)
    plain.eval()
    return history
