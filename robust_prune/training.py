"""Adversarial training on Hugging Face Accelerate: PGD-AT (Madry), TRADES, fast FGSM-RS, or clean.

The same code runs on one CPU process or many GPUs (``accelerate launch`` / ``torchrun``). Attacks
are computed on the unwrapped model in eval mode, each batch with its own seed, so they never move
the global RNG stream that drives shuffling and augmentation.

Example:
    >>> from robust_prune import TrainConfig, AttackConfig
    >>> from robust_prune.training import train
    >>> config = TrainConfig(epochs=1, attack=AttackConfig(eps=0.1))
    >>> history = train(model, bundle.train, config=config)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import math
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

from . import distributed
from .attacks import preserve_state, run_attack
from .config import AttackConfig, TrainConfig
from .errors import ConfigError, TrainingDivergedError
from .models import eval_mode

__all__ = ["EpochStats", "train", "train_one_batch", "adversarial_loss", "make_accelerator"]


@dataclass
class EpochStats:
    """What one epoch of training measured (accuracies on the training batches)."""

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
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The training loss for one batch, with the clean and adversarial logits.

    ``attack_model`` (default ``model``) computes the adversarial examples: pass the unwrapped module
    when ``model`` is wrapped for distributed training.
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
        >>> loss = train_one_batch(model, x, y, attack=AttackConfig(eps=0.03, steps=2))  # doctest: +SKIP
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
    """
    from accelerate import Accelerator

    del config
    return Accelerator(cpu=not torch.cuda.is_available())


EpochCallback = Callable[[int, nn.Module, torch.optim.Optimizer, Any, list[EpochStats]], None]


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
        start_epoch, resume_state: continue a run (``resume_state`` holds optimizer and scheduler states).
        on_epoch_end: called after each epoch with ``(epoch, model, optimizer, scheduler, history)``.

    Raises:
        TrainingDivergedError: the loss became NaN or infinite (names the stage, epoch and batch).
    """
    if config.attack.eps is None and eps is None:
        raise ConfigError("The training attack has no eps: set TrainConfig.attack.eps or pass eps=.")
    attack = config.attack if config.attack.eps is not None else config.attack.with_eps(eps)
    history: list[EpochStats] = []
    if config.epochs == 0 or start_epoch >= config.epochs:
        return history
    accelerator = accelerator or make_accelerator(config)
    params = [p for p in model.parameters() if p.requires_grad]
    lr = config.learning_rate
    optimizer = torch.optim.SGD(params, lr=lr, momentum=config.momentum, weight_decay=config.weight_decay)
    total_steps = max(1, config.epochs * math.ceil(len(loader) / accelerator.num_processes))  # steps per process
    if config.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))
        )
    else:
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    if resume_state:
        optimizer.load_state_dict(resume_state["optimizer"])
        scheduler.load_state_dict(resume_state["scheduler"])
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    shuffle = _shuffle_generator(loader)
    bf16 = config.mixed_precision == "bf16"
    wrapped, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    plain = accelerator.unwrap_model(wrapped)
    for epoch in range(start_epoch, config.epochs):
        if shuffle is not None:  # the order of epoch e depends on (seed, e) only: resumed runs see the same batches
            shuffle.manual_seed(_shuffle_seed(seed, epoch))
        wrapped.train()
        started = time.perf_counter()
        totals = torch.zeros(4, device=accelerator.device)  # loss sum, clean correct, adv correct, images
        bar = tqdm(
            loader,
            desc=f"{stage} {epoch + 1}/{config.epochs}",
            disable=not (progress and accelerator.is_local_main_process),
            leave=False,
        )
        step = -1
        for step, (images, labels) in enumerate(bar):
            batch_attack = dataclasses.replace(attack, seed=_batch_seed(seed + attack.seed, epoch, step))
            with torch.autocast(accelerator.device.type, dtype=torch.bfloat16, enabled=bf16):
                loss, logits_clean, logits_adv = adversarial_loss(
                    wrapped,
                    images,
                    labels,
                    objective=config.objective,
                    attack=batch_attack,
                    trades_beta=config.trades_beta,
                    attack_model=plain,
                )
            if not torch.isfinite(loss):
                raise TrainingDivergedError(
                    f"{stage}: the loss became {loss.item()} at epoch {epoch + 1}, batch {step + 1}. "
                    f"Likely cause: the learning rate ({lr}) or eps ({attack.eps}) is too large. "
                    "The last good checkpoint (if any) is kept."
                )
            optimizer.zero_grad(set_to_none=True)
            accelerator.backward(loss)
            optimizer.step()
            scheduler.step()
            # per-image results from every process, without the samples padded into the last batch
            per_image = torch.stack(
                [
                    torch.full_like(labels, float(loss.detach()), dtype=torch.float32),
                    (logits_clean.argmax(1) == labels).float(),
                    (logits_adv.argmax(1) == labels).float(),
                ]
            )
            per_image = accelerator.gather_for_metrics(per_image.T.contiguous()).T
            totals += torch.cat([per_image.sum(1), per_image.new_tensor([per_image.shape[1]])]).to(totals.device)
            bar.set_postfix(
                loss=f"{totals[0] / totals[3]:.3f}",
                clean=f"{totals[1] / totals[3]:.3f}",
                adv=f"{totals[2] / totals[3]:.3f}",
            )
        bad = [name for name, t in plain.state_dict().items() if t.is_floating_point() and not torch.isfinite(t).all()]
        if bad:  # checked before the epoch is checkpointed, so the last checkpoint stays a good one
            raise TrainingDivergedError(
                f"{stage}: the weights became NaN or infinite during epoch {epoch + 1} (batch {step + 1} was the "
                f"last; first bad tensor {bad[0]}). Likely cause: the learning rate ({lr}) or eps "
                f"({attack.eps}) is too large. The last good checkpoint (if any) is kept."
            )
        distributed.broadcast_state(plain)  # identical weights and BatchNorm statistics on every process
        images_seen = max(float(totals[3]), 1.0)
        stats = EpochStats(
            stage=stage,
            epoch=epoch + 1,
            loss=float(totals[0]) / images_seen,
            clean_accuracy=float(totals[1]) / images_seen,
            adversarial_accuracy=float(totals[2]) / images_seen,
            lr=float(scheduler.get_last_lr()[0]),
            seconds=time.perf_counter() - started,
            images=int(totals[3]),
        )
        history.append(stats)
        if on_epoch_end is not None:
            on_epoch_end(epoch, plain, optimizer, scheduler, history)
    if config.channels_last:
        plain.to(memory_format=torch.contiguous_format)
    plain.eval()
    return history
