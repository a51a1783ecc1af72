"""Honest robustness evaluation: the attack loop that fills a :class:`~robust_prune.evaluation.report.RobustnessReport`.

The report's schema lives in :mod:`robust_prune.evaluation.report`, the size and speed metrics in
:mod:`robust_prune.evaluation.measure`, the gradient-masking checks in :mod:`robust_prune.evaluation.sanity`. Models
are evaluated in eval mode on pixel-space inputs. Each attack runs on the points the model classifies correctly;
``worst-case`` counts a point as robust only if every attack failed on it.

Example:
    >>> import timm, robust_prune as rp
    >>> report = rp.evaluate(timm.create_model("test_resnet", num_classes=10), "digits", attacks=("pgd", "fgsm"),
    ...                      n=16, steps=2, progress=False)
    >>> print(report.to_markdown())  # doctest: +ELLIPSIS
    | metric | value | 95% CI | threat model | n | time |
    ...
"""

from __future__ import annotations

import functools
import os
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from robust_prune.adapter_api import get_adapter

from ..config import AttackConfig
from ..data.hf_datasets import default_side, hf_splits, is_hf_data
from ..data.loading import DataBundle, check_pixels, first_n, load_data
from ..data.transforms import resolve_image_size
from ..distributed import gather_objects, merge_shards, model_device, shard_mask
from ..errors import ConfigError
from ..models import eval_mode
from ._attack_zoo import AUTOATTACK_BUDGETS, CW_MIN_STEPS, SQUARE_QUERIES
from .attacks import run_attack_detailed
from .measure import channel_ratio, count_macs_params, emptied_layers, measure_latency, weight_sparsity
from .report import AttackResult, RobustnessReport, wilson_interval
from .sanity import run_sanity_checks

__all__ = ["evaluate", "evaluation_loader"]


def evaluation_loader(
    data: Any,
    model: nn.Module,
    *,
    batch_size: int = 128,
    data_dir: str | os.PathLike[str] | None = None,
    image_size: int | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
) -> tuple[DataLoader, str, float | None]:
    """The test loader of ``data`` (a name, a ``DataBundle``, a ``DataLoader`` or None) fitted to ``model``,
    with the data's name and default L-inf eps (None for a user's loader: it carries no budget).

    ``data_dir`` is the folder of a torchvision dataset; ``image_size`` the evaluated resolution (default as in
    :func:`robust_prune.data.loading.load_data`: the dataset's own, an image folder at the model's input size)."""
    if isinstance(data, DataLoader):
        return data, "loader", None
    if isinstance(data, DataBundle):
        return data.test, data.name, data.default_eps
    adapter = get_adapter(model, warn=False)
    if is_hf_data(data):
        data = hf_splits(data, image_column=image_column, label_column=label_column)
    bundle = load_data(
        data,
        image_size=resolve_image_size(data, image_size, fixed=adapter.fixed_input_size(model),
                                      pretrained=default_side(data, image_size, adapter.pretrained_input_size(model))),
        channels=adapter.in_chans(model),
        batch_size=batch_size,
        data_dir=data_dir,
        augment=False,
    )
    return bundle.test, bundle.name, bundle.default_eps


def _config_for(name: str, *, norm: str, eps: float, steps: int, restarts: int, seed: int) -> AttackConfig:
    """The attack config ``evaluate`` uses for ``name``: Square gets its query budget, AutoAttack its fixed one."""
    if name == "square":
        return AttackConfig(name=name, norm=norm, eps=eps, steps=SQUARE_QUERIES, seed=seed)
    if name in AUTOATTACK_BUDGETS:
        return AttackConfig(name=name, norm=norm, eps=eps, steps=AUTOATTACK_BUDGETS[name].apgd_steps, seed=seed)
    if name == "cw":
        return AttackConfig(name=name, norm="L2", eps=eps, steps=max(CW_MIN_STEPS, steps), seed=seed)
    return AttackConfig(name=name, norm=norm, eps=eps, steps=steps, restarts=restarts, seed=seed)


def _merged_counts(parts: list[dict[str, int]]) -> dict[str, int]:
    merged: dict[str, int] = {}
    for part in parts:
        for key, value in part.items():
            merged[key] = merged.get(key, 0) + value
    return merged


def evaluation_device(model: nn.Module, device: str | torch.device | None = None) -> torch.device:
    """Where :func:`evaluate` runs: ``device`` if given, else the model's device, else (a model on the CPU with a
    GPU present) CUDA, since attacks are the costly part.

    Example:
        >>> evaluation_device(torch.nn.Linear(2, 2), "cpu")
        device(type='cpu')
    """
    if device is not None:
        return torch.device(device)
    own = model_device(model)
    if own.type == "cpu" and torch.cuda.is_available():
        from ..distributed import device as process_device

        return process_device()
    return own


def _result(cfg: AttackConfig, robust: torch.Tensor, total: int, seconds: float, extra: dict[str, Any]) -> AttackResult:
    hits = int(robust.sum())
    low, high = wilson_interval(hits, total)
    return AttackResult(
        name=cfg.name,
        accuracy=hits / max(total, 1),
        correct=hits,
        n=total,
        ci_low=low,
        ci_high=high,
        norm=cfg.norm,
        eps=float(cfg.eps or 0.0),
        steps=cfg.steps,
        restarts=cfg.restarts,
        seconds=seconds,
        extra=extra,
    )


def _keeps_global_rng(fn: Callable[..., RobustnessReport]) -> Callable[..., RobustnessReport]:
    """Run ``fn`` on a forked global RNG (CPU, and the current CUDA device when initialised)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> RobustnessReport:
        cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
        with torch.random.fork_rng(devices=[torch.cuda.current_device()] if cuda else []):
            return fn(*args, **kwargs)

    return wrapper


@_keeps_global_rng
def evaluate(
    model: nn.Module,
    data: Any = None,
    *,
    attacks: tuple[str, ...] | list[str] = ("pgd",),
    eps: float | None = None,
    norm: str = "Linf",
    steps: int = 20,
    restarts: int = 1,
    n: int | None = None,
    batch_size: int = 128,
    seed: int = 0,
    latency: bool = True,
    progress: bool = True,
    sanity: bool = True,
    sanity_n: int = 32,
    data_dir: str | os.PathLike[str] | None = None,
    image_size: int | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
    device: str | torch.device | None = None,
) -> RobustnessReport:
    """Measure clean and adversarial accuracy, size, latency and sparsity of ``model``.

    Every attack runs on all clean-correct points (so accuracies are comparable); ``worst-case``
    counts a point robust only if every eps-bounded attack failed. ``autoattack`` is the reference
    budget, run as a per-point cascade (APGD-CE, APGD-T, FAB-T, Square); ``cw`` has no eps and is
    reported as success rate and median L2 perturbation in ``extra``, outside ``robust_accuracy``.

    Args:
        model: a pixel-space model (normalisation inside), e.g. ``RobustifyResult.model``.
        data: a dataset name, a ``DataBundle``, a test ``DataLoader``, Hugging Face data (a ``DatasetDict``, a
            ``(train, test)`` pair of ``datasets.Dataset``, ``"hf:REPO[:CONFIG]"``) or None (the embedded digits).
        attacks: attack names from ``ATTACK_NAMES``.
        eps: the budget in pixel units; the dataset's default when None (required for a user's DataLoader).
        norm, steps, restarts: the threat model of gradient attacks (PGD, FGSM, APGD).
        n: evaluate on the first ``n`` test points (all when None).
        batch_size: points per attack batch.
        seed: seeds every attack (the global RNG is left alone).
        latency: also measure the latency per image on the model's device.
        progress: show one progress bar with an ETA over all attacks.
        sanity: run the gradient-masking checks (:mod:`robust_prune.evaluation.sanity`) on up to ``sanity_n`` points;
            failures are stored in ``report.sanity``, warned about, and bannered when printed.
        data_dir: the local folder of a named torchvision dataset (``"cifar10"``...).
        image_size: the evaluated resolution (default: the dataset's own; an image folder at the model's input
            size). A model saved by robustify is evaluated by ``robust-prune evaluate`` at the size it trained at.
        image_column, label_column: Hugging Face data's image and label columns (default: found by name).
        device: where to evaluate. None: the model's device, or CUDA when the model sits on the CPU and a GPU is
            present (the model is moved there).

    Example:
        >>> import timm
        >>> model = timm.create_model("test_resnet", num_classes=10)
        >>> report = evaluate(model, "digits", attacks=("pgd", "fgsm"), n=16, steps=2, progress=False)
        >>> report.n, sorted(report.robust_accuracy)
        (16, ['fgsm', 'pgd', 'worst-case'])
    """
    if not isinstance(model, nn.Module):
        raise ConfigError(f"evaluate() needs a torch.nn.Module, got {type(model).__name__}.")
    if isinstance(attacks, str) or not isinstance(attacks, (tuple, list)):
        raise ConfigError("attacks must be a sequence of attack names (or () for clean accuracy only).")
    if is_hf_data(data):  # read once; its origin (repo, splits, fingerprints) goes into the report
        data = hf_splits(data, image_column=image_column, label_column=label_column)
    loader, data_name, data_eps = evaluation_loader(
        data, model, batch_size=batch_size, data_dir=data_dir, image_size=image_size
    )
    eps = data_eps if eps is None else eps
    if eps is None and any(name != "cw" for name in attacks):
        raise ConfigError(
            "A user's data loader carries no attack budget: pass eps= (pixel units, e.g. 8/255 for CIFAR-10)."
        )
    configs = [_config_for(a, norm=norm, eps=eps, steps=steps, restarts=restarts, seed=seed) for a in attacks]
    with torch.random.fork_rng(devices=[]):  # iterating a DataLoader draws its base seed from the global RNG
        x_all, y_all = first_n(loader, n)
    check_pixels(x_all, "evaluation", batch_size=loader.batch_size)
    device = evaluation_device(model, device)
    model.to(device)
    with eval_mode(model):
        report = _evaluate(model, x_all, y_all, configs, device=device, batch_size=batch_size, seed=seed,
                           norm=norm, eps=eps, steps=steps, restarts=restarts, data_name=data_name,
                           latency=latency, progress=progress, sanity=sanity, sanity_n=sanity_n)  # fmt: skip
    if getattr(data, "origin", None):  # Hugging Face data (HFSplits, HFDataBundle): name it down to the fingerprints
        report.meta["hf"] = dict(data.origin)
    return report


def _evaluate(
    model: nn.Module,
    x_all: torch.Tensor,
    y_all: torch.Tensor,
    configs: list[AttackConfig],
    *,
    device: torch.device,
    batch_size: int,
    seed: int,
    norm: str,
    eps: float | None,
    steps: int,
    restarts: int,
    data_name: str,
    latency: bool,
    progress: bool,
    sanity: bool,
    sanity_n: int,
) -> RobustnessReport:
    total = len(y_all)
    correct_clean = torch.zeros(total, dtype=torch.bool, device=y_all.device)  # host bookkeeping, beside the labels
    with torch.no_grad():
        for start in range(0, total, batch_size):
            x = x_all[start : start + batch_size].to(device)
            correct_clean[start : start + batch_size] = model(x).argmax(1).cpu() == y_all[start : start + batch_size]
    idx = correct_clean.nonzero().flatten()
    owned = shard_mask(total)  # under torchrun each process attacks its own points; merged per attack below
    mine = (correct_clean & owned).nonzero().flatten()
    batches = list(range(0, len(mine), batch_size))
    bar = tqdm(total=len(batches) * len(configs), desc="evaluate", disable=not progress, unit="batch")
    robust_all = correct_clean.clone()
    results: dict[str, AttackResult] = {}
    masks: dict[str, torch.Tensor] = {}
    for cfg in configs:
        started = time.perf_counter()
        robust = correct_clean.clone()
        breakdown: dict[str, int] = {}
        l2: list[torch.Tensor] = []
        extra: dict[str, Any] = {}
        bar.set_description(f"evaluate {cfg.name}")
        for start in batches:
            batch = mine[start : start + batch_size]
            x, y = x_all[batch].to(device), y_all[batch].to(device)
            x_adv, info = run_attack_detailed(model, x, y, cfg)
            with torch.no_grad():
                ok = (model(x_adv).argmax(1) == y).cpu()
            robust[batch] = ok
            for key, value in info.get("breakdown", {}).items():
                breakdown[key] = breakdown.get(key, 0) + value
            extra.update({k: v for k, v in info.items() if k != "breakdown"})
            if cfg.name == "cw":
                l2.append((x_adv - x).flatten(1).norm(dim=1).cpu()[~ok])
            bar.update(1)
        robust = merge_shards(robust, owned)
        # AutoAttack's per-attack counts and CW's perturbation sizes are rank-local: merge them over the processes
        breakdown = _merged_counts(gather_objects(breakdown))  # type: ignore[arg-type]
        if breakdown:
            extra["broken_by"] = breakdown
        if cfg.name == "cw":
            local = torch.cat(l2).tolist() if l2 else []
            merged = [v for part in gather_objects(local) for v in part]  # type: ignore[attr-defined]
            sizes = torch.tensor(merged, dtype=torch.float32, device="cpu")
            extra.update(
                success_rate=len(sizes) / max(len(idx), 1),
                median_l2=float(sizes.median()) if len(sizes) else None,
                unbounded=True,
            )
        else:
            robust_all &= robust
            masks[cfg.name] = robust[idx]
        results[cfg.name] = _result(cfg, robust, total, time.perf_counter() - started, extra)
    bar.close()
    bounded = {name: r for name, r in results.items() if name != "cw"}
    robust_accuracy = {name: r.accuracy for name, r in bounded.items()}
    if len(bounded) > 1:
        robust_accuracy["worst-case"] = float(robust_all.sum()) / max(total, 1)
    clean_accuracy = float(correct_clean.sum()) / max(total, 1)
    checks: list[dict[str, Any]] = []
    if sanity and len(idx) and eps is not None:  # clean accuracy alone on a user's loader: no budget to check
        base = AttackConfig(name="pgd", norm=norm, eps=eps, steps=steps, seed=seed)
        checks = run_sanity_checks(
            model,
            x_all[idx].to(device),
            y_all[idx].to(device),
            attack=base,
            clean_accuracy=clean_accuracy,
            robust_accuracy=robust_accuracy,
            robust_masks=masks,
            max_points=sanity_n,
        )
        failed = [c for c in checks if not c["passed"]]
        if failed:
            lines = "; ".join(f"{c['name']}: {c['detail']}" for c in failed)
            warnings.warn(f"GRADIENT-MASKING CHECKS FAILED, do not publish these numbers: {lines}", stacklevel=2)
    example = x_all[:1].to(device)
    macs, params = count_macs_params(model, example)
    sparsity, per_layer = weight_sparsity(model)
    return RobustnessReport(
        clean_accuracy=clean_accuracy,
        n=total,
        robust_accuracy=robust_accuracy,
        attacks=results,
        params=params,
        macs=macs,
        sparsity=sparsity,
        layer_sparsity=per_layer,
        channel_ratio=channel_ratio(model),
        latency_ms=measure_latency(model, example) if latency else None,
        latency_device=str(example.device),
        emptied_layers=emptied_layers(per_layer),
        sanity=checks,
        meta={
            "data": data_name,
            "seed": seed,
            "eps": None if eps is None else float(eps),
            "norm": norm,
            "steps": steps,
            "restarts": restarts,
        },
    )
