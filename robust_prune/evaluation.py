"""Honest robustness evaluation: clean and adversarial accuracy, size, speed and sparsity in one report.

Models are evaluated in eval mode on pixel-space inputs. Each attack runs on the points the model
classifies correctly; ``worst-case`` counts a point as robust only if every attack failed on it.

Example:
    >>> import robust_prune as rp
    >>> report = rp.evaluate(model, "digits", attacks=("pgd", "fgsm"), n=200)  # doctest: +SKIP
    >>> print(report)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from robust_prune.adapters import get_adapter, unwrap_model

from ._attack_zoo import AUTOATTACK_BUDGETS, CW_MIN_STEPS, SQUARE_QUERIES
from .attacks import run_attack_detailed
from .config import AttackConfig
from .data import DataBundle, load_data
from .distributed import merge_shards, shard_mask
from .errors import ConfigError, DatasetError
from .pruning.structured import count_macs_params
from .sanity import run_sanity_checks

__all__ = [
    "AttackResult",
    "RobustnessReport",
    "channel_ratio",
    "evaluate",
    "measure_latency",
    "weight_sparsity",
    "wilson_interval",
]


def wilson_interval(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of an accuracy ``correct / n``."""
    if n == 0:
        return 0.0, 1.0
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def weight_sparsity(model: nn.Module) -> tuple[float, dict[str, float]]:
    """Global and per-layer fraction of exactly-zero weights over convolution and linear layers."""
    zeros = total = 0
    per_layer: dict[str, float] = {}
    for name, module in unwrap_model(model).named_modules():
        weight = getattr(module, "weight", None)
        if not isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear)) or not isinstance(weight, torch.Tensor):
            continue
        z = int((weight == 0).sum())
        per_layer[name] = z / max(weight.numel(), 1)
        zeros, total = zeros + z, total + weight.numel()
    return zeros / max(total, 1), per_layer


@dataclass
class AttackResult:
    """One attack's outcome: robust accuracy over ``n`` points with its 95% interval and threat model."""

    name: str
    accuracy: float
    correct: int
    n: int
    ci_low: float
    ci_high: float
    norm: str
    eps: float
    steps: int
    restarts: int
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    def threat_model(self) -> str:
        """``"Linf eps=8/255"``; CW, which has no eps, is ``"L2 minimal perturbation"``."""
        if self.extra.get("unbounded"):
            return f"{self.norm} minimal perturbation"
        eps = f"{self.eps:.4g}" if self.eps < 0.01 or self.eps * 255 % 1 else f"{round(self.eps * 255)}/255"
        return f"{self.norm} eps={eps}"

    def budget(self) -> str:
        """Iterations, restarts or queries as a short phrase."""
        if "budget" in self.extra:
            return str(self.extra["budget"])
        if self.name == "square":
            return f"{self.steps} queries"
        return f"{self.steps} steps, {self.restarts} restart(s)"


@dataclass
class RobustnessReport:
    """Clean and robust accuracy, size, speed and sparsity of a model; JSON and Markdown round-trip.

    Attributes:
        clean_accuracy: accuracy on the ``n`` evaluated points.
        robust_accuracy: attack name -> robust accuracy (``worst-case`` when several attacks ran).
        attacks: attack name -> :class:`AttackResult` with interval, threat model and time.
        params, macs: parameters and multiply-accumulates of one forward pass.
        sparsity: global fraction of zero weights (conv + linear); ``layer_sparsity`` per layer.
        latency_ms: median CPU latency per image (batch of one).
        sanity: results of the gradient-masking checks (filled by ``evaluate(..., sanity=True)``).
        meta: data, seed and model facts.
    """

    clean_accuracy: float
    n: int
    robust_accuracy: dict[str, float] = field(default_factory=dict)
    attacks: dict[str, AttackResult] = field(default_factory=dict)
    params: int = 0
    macs: int = 0
    sparsity: float = 0.0
    layer_sparsity: dict[str, float] = field(default_factory=dict)
    channel_ratio: float | None = None
    latency_ms: float | None = None
    sanity: list[dict[str, Any]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def sanity_passed(self) -> bool:
        return all(check.get("passed", False) for check in self.sanity)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RobustnessReport:
        data = dict(data)
        data["attacks"] = {k: AttackResult(**v) for k, v in data.get("attacks", {}).items()}
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_json(cls, text: str) -> RobustnessReport:
        return cls.from_dict(json.loads(text))

    def to_markdown(self) -> str:
        lines = ["| metric | value | 95% CI | threat model | n | time |", "|---|---|---|---|---|---|"]
        low, high = wilson_interval(round(self.clean_accuracy * self.n), self.n)
        lines.append(f"| clean accuracy | {self.clean_accuracy:.2%} | {low:.1%} - {high:.1%} | none | {self.n} | |")
        for name, res in self.attacks.items():
            if res.extra.get("unbounded"):
                median = res.extra.get("median_l2")
                size = "n/a" if median is None else f"{median:.3g}"
                lines.append(
                    f"| {name} success rate | {res.extra.get('success_rate', 0.0):.2%} | | "
                    f"{res.threat_model()}, median L2 {size}, {res.steps} steps | {res.n} | {res.seconds:.1f} s |"
                )
                continue
            lines.append(
                f"| {name} accuracy | {res.accuracy:.2%} | {res.ci_low:.1%} - {res.ci_high:.1%} | "
                f"{res.threat_model()}, {res.budget()} | {res.n} | {res.seconds:.1f} s |"
            )
        if "worst-case" in self.robust_accuracy:
            lines.append(f"| worst case over attacks | {self.robust_accuracy['worst-case']:.2%} | | | {self.n} | |")
        lines += [
            f"| parameters | {self.params:,} | | | | |",
            f"| MACs | {self.macs:,} | | | | |",
            f"| weight sparsity | {self.sparsity:.2%} | | | | |",
        ]
        if self.channel_ratio is not None:
            lines.append(f"| channel-width ratio | {self.channel_ratio:.3f} | | | | |")
        if self.latency_ms is not None:
            lines.append(f"| CPU latency / image | {self.latency_ms:.2f} ms | | | | |")
        failed = [c for c in self.sanity if not c.get("passed", False)]
        if self.sanity:
            verdict = (
                "all passed" if not failed else f"**{len(failed)} FAILED**: " + "; ".join(c["name"] for c in failed)
            )
            lines.append(f"| sanity checks | {verdict} | | | | |")
        return "\n".join(lines)

    def __str__(self) -> str:
        text = self.to_markdown()
        failed = [c for c in self.sanity if not c.get("passed", False)]
        if failed:
            banner = "!" * 72
            failures = "\n".join(f"  FAILED {c['name']}: {c.get('detail', '')}" for c in failed)
            title = "GRADIENT-MASKING CHECKS FAILED: do not publish these robust accuracies."
            text = f"{banner}\n{title}\n{failures}\n{banner}\n{text}"
        return text


def _loader_of(data: Any, model: nn.Module, batch_size: int) -> tuple[DataLoader, str, float]:
    if isinstance(data, DataLoader):
        return data, "loader", 8 / 255
    if isinstance(data, DataBundle):
        return data.test, data.name, data.default_eps
    adapter = get_adapter(model, warn=False)
    size = adapter.fixed_input_size(model)
    bundle = load_data(
        data, image_size=size[0] if size else 32, channels=adapter.in_chans(model), batch_size=batch_size
    )
    return bundle.test, bundle.name, bundle.default_eps


def _first_n(loader: DataLoader, n: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys, seen = [], [], 0
    for x, y in loader:
        xs.append(x)
        ys.append(y)
        seen += len(y)
        if n is not None and seen >= n:
            break
    if not xs:
        raise DatasetError("The evaluation data is empty.")
    x, y = torch.cat(xs), torch.cat(ys)
    return (x[:n], y[:n]) if n is not None else (x, y)


def measure_latency(model: nn.Module, example: torch.Tensor, *, repeats: int = 20) -> float:
    """Median wall time in ms of one forward pass on ``example`` (after warm-up), in eval mode."""
    model.eval()
    times = []
    with torch.no_grad():
        for i in range(repeats + 3):
            start = time.perf_counter()
            model(example)
            if i >= 3:
                times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _config_for(name: str, *, norm: str, eps: float, steps: int, restarts: int, seed: int) -> AttackConfig:
    """The attack config ``evaluate`` uses for ``name``: Square gets its query budget, AutoAttack its fixed one."""
    if name == "square":
        return AttackConfig(name=name, norm=norm, eps=eps, steps=SQUARE_QUERIES, seed=seed)
    if name in AUTOATTACK_BUDGETS:
        return AttackConfig(name=name, norm=norm, eps=eps, steps=AUTOATTACK_BUDGETS[name].apgd_steps, seed=seed)
    if name == "cw":
        return AttackConfig(name=name, norm="L2", eps=eps, steps=max(CW_MIN_STEPS, steps), seed=seed)
    return AttackConfig(name=name, norm=norm, eps=eps, steps=steps, restarts=restarts, seed=seed)


def channel_ratio(model: nn.Module) -> float | None:
    """Kept fraction of output channels (conv + linear) from the model's ``pruning_record``; None without one."""
    record = getattr(model, "pruning_record", None)
    if record is None:
        return None
    stats = getattr(record, "stats", {}) or {}
    for key in ("channel_ratio", "width_ratio"):
        if isinstance(stats.get(key), (int, float)):
            return float(stats[key])
    if getattr(record, "structure", "none") != "channel":
        return 1.0
    try:
        import timm

        fresh = timm.create_model(record.architecture, **record.model_args)
    except Exception:  # noqa: BLE001 - a record we cannot rebuild has no known original width
        return None

    def width(module: nn.Module) -> int:
        return sum(
            m.out_channels if isinstance(m, nn.Conv2d) else m.out_features
            for m in module.modules()
            if isinstance(m, (nn.Conv2d, nn.Linear))
        )

    return width(unwrap_model(model)) / max(width(fresh), 1)


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
) -> RobustnessReport:
    """Measure clean and adversarial accuracy, size, latency and sparsity of ``model``.

    Every attack runs on all clean-correct points (so accuracies are comparable); ``worst-case``
    counts a point robust only if every eps-bounded attack failed. ``autoattack`` is the reference
    budget, run as a per-point cascade (APGD-CE, APGD-T, FAB-T, Square); ``cw`` has no eps and is
    reported as success rate and median L2 perturbation in ``extra``, outside ``robust_accuracy``.

    Args:
        model: a pixel-space model (normalisation inside), e.g. ``RobustifyResult.model``.
        data: a dataset name, a ``DataBundle``, a test ``DataLoader`` or None (the embedded digits).
        attacks: attack names from ``ATTACK_NAMES``.
        eps: the budget in pixel units; the dataset's default when None.
        norm, steps, restarts: the threat model of gradient attacks (PGD, FGSM, APGD).
        n: evaluate on the first ``n`` test points (all when None).
        batch_size: points per attack batch.
        seed: seeds every attack (the global RNG is left alone).
        latency: also measure CPU latency per image.
        progress: show one progress bar with an ETA over all attacks.
        sanity: run the gradient-masking checks (:mod:`robust_prune.sanity`) on up to ``sanity_n`` points;
            failures are stored in ``report.sanity``, warned about, and bannered when printed.

    Example:
        >>> report = evaluate(model, "digits", attacks=("pgd", "autoattack"), n=100)  # doctest: +SKIP
        >>> report.robust_accuracy["autoattack"] <= report.robust_accuracy["pgd"]  # doctest: +SKIP
        True
    """
    if not isinstance(model, nn.Module):
        raise ConfigError(f"evaluate() needs a torch.nn.Module, got {type(model).__name__}.")
    if isinstance(attacks, str) or not isinstance(attacks, (tuple, list)):
        raise ConfigError("attacks must be a sequence of attack names (or () for clean accuracy only).")
    loader, data_name, data_eps = _loader_of(data, model, batch_size)
    eps = data_eps if eps is None else eps
    configs = [_config_for(a, norm=norm, eps=eps, steps=steps, restarts=restarts, seed=seed) for a in attacks]
    with torch.random.fork_rng(devices=[]):  # iterating a DataLoader draws its base seed from the global RNG
        x_all, y_all = _first_n(loader, n)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    total = len(y_all)
    correct_clean = torch.zeros(total, dtype=torch.bool)
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
        if breakdown:
            extra["broken_by"] = breakdown
        if cfg.name == "cw":
            sizes = torch.cat(l2) if l2 else torch.zeros(0)
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
    if sanity and len(idx):
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
    report = RobustnessReport(
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
        sanity=checks,
        meta={"data": data_name, "seed": seed, "eps": float(eps), "norm": norm, "steps": steps, "restarts": restarts},
    )
    for module, mode in modes:
        module.training = mode
    return report
