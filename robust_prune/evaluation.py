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
import json
import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from robust_prune.adapters import get_adapter, unwrap_model

from .attacks import run_attack
from .config import AttackConfig
from .data import DataBundle, load_data
from .errors import ConfigError, DatasetError
from .pruning.structured import count_macs_params

__all__ = ["AttackResult", "RobustnessReport", "evaluate", "weight_sparsity", "wilson_interval"]


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
        eps = f"{self.eps:.4g}" if self.eps < 0.01 or self.eps * 255 % 1 else f"{round(self.eps * 255)}/255"
        return f"{self.norm} eps={eps}"


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
        lines = ["| metric | value | 95% CI | threat model | n |", "|---|---|---|---|---|"]
        low, high = wilson_interval(round(self.clean_accuracy * self.n), self.n)
        lines.append(f"| clean accuracy | {self.clean_accuracy:.2%} | {low:.1%} - {high:.1%} | none | {self.n} |")
        for name, res in self.attacks.items():
            lines.append(
                f"| {name} accuracy | {res.accuracy:.2%} | {res.ci_low:.1%} - {res.ci_high:.1%} | "
                f"{res.threat_model()}, {res.steps} steps, {res.restarts} restart(s) | {res.n} |"
            )
        if "worst-case" in self.robust_accuracy:
            lines.append(f"| worst case over attacks | {self.robust_accuracy['worst-case']:.2%} | | | {self.n} |")
        lines += [
            f"| parameters | {self.params:,} | | | |",
            f"| MACs | {self.macs:,} | | | |",
            f"| weight sparsity | {self.sparsity:.2%} | | | |",
        ]
        if self.channel_ratio is not None:
            lines.append(f"| channel-width ratio | {self.channel_ratio:.3f} | | | |")
        if self.latency_ms is not None:
            lines.append(f"| CPU latency / image | {self.latency_ms:.2f} ms | | | |")
        failed = [c for c in self.sanity if not c.get("passed", False)]
        if self.sanity:
            verdict = "all passed" if not failed else f"**{len(failed)} FAILED**: " + "; ".join(c["name"] for c in failed)
            lines.append(f"| sanity checks | {verdict} | | | |")
        return "\n".join(lines)

    def __str__(self) -> str:
        text = self.to_markdown()
        failed = [c for c in self.sanity if not c.get("passed", False)]
        if failed:
            banner = "!" * 72
            warnings = "\n".join(f"  FAILED {c['name']}: {c.get('detail', '')}" for c in failed)
            text = f"{banner}\nGRADIENT-MASKING CHECKS FAILED: do not publish these robust accuracies.\n{warnings}\n{banner}\n{text}"
        return text


def _loader_of(data: Any, model: nn.Module, batch_size: int) -> tuple[DataLoader, str, float]:
    if isinstance(data, DataLoader):
        return data, "loader", 8 / 255
    if isinstance(data, DataBundle):
        return data.test, data.name, data.default_eps
    adapter = get_adapter(model, warn=False)
    size = adapter.fixed_input_size(model)
    bundle = load_data(data, image_size=size[0] if size else 32, channels=adapter.in_chans(model), batch_size=batch_size)
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
) -> RobustnessReport:
    """Measure clean and adversarial accuracy, size, latency and sparsity of ``model``.

    Args:
        model: a pixel-space model (normalisation inside), e.g. ``RobustifyResult.model``.
        data: a dataset name, a ``DataBundle``, a test ``DataLoader`` or None (the embedded digits).
        attacks: attack names, each run on the clean-correct points (see ``AttackConfig``).
        eps: the budget in pixel units; the dataset's default when None.
        norm, steps, restarts: the threat model of gradient attacks.
        n: evaluate on the first ``n`` test points (all when None).
        seed: seeds every attack (the global RNG is left alone).
        latency: also measure CPU latency per image.

    Example:
        >>> report = evaluate(model, "digits", attacks=("pgd",), n=100)  # doctest: +SKIP
        >>> report.robust_accuracy["pgd"] <= report.clean_accuracy  # doctest: +SKIP
        True
    """
    if not isinstance(model, nn.Module):
        raise ConfigError(f"evaluate() needs a torch.nn.Module, got {type(model).__name__}.")
    if not attacks and attacks != ():
        raise ConfigError("attacks must be a sequence of attack names (or () for clean accuracy only).")
    loader, data_name, data_eps = _loader_of(data, model, batch_size)
    eps = data_eps if eps is None else eps
    configs = [
        AttackConfig(name=a, norm=norm, eps=eps, steps=steps, restarts=restarts, seed=seed) for a in attacks
    ]
    x_all, y_all = _first_n(loader, n)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    total = len(y_all)
    correct_clean = torch.zeros(total, dtype=torch.bool)
    with torch.no_grad():
        for start in range(0, total, batch_size):
            x = x_all[start : start + batch_size].to(device)
            correct_clean[start : start + batch_size] = (model(x).argmax(1).cpu() == y_all[start : start + batch_size])
    robust_all = correct_clean.clone()
    results: dict[str, AttackResult] = {}
    for cfg in configs:
        started = time.perf_counter()
        robust = correct_clean.clone()
        idx = correct_clean.nonzero().flatten()
        bar = tqdm(range(0, len(idx), batch_size), desc=f"eval {cfg.name}", disable=not progress, leave=False)
        for start in bar:
            batch = idx[start : start + batch_size]
            x, y = x_all[batch].to(device), y_all[batch].to(device)
            x_adv = run_attack(model, x, y, cfg)
            with torch.no_grad():
                robust[batch] = (model(x_adv).argmax(1) == y).cpu()
        robust_all &= robust
        hits = int(robust.sum())
        low, high = wilson_interval(hits, total)
        results[cfg.name] = AttackResult(
            name=cfg.name,
            accuracy=hits / max(total, 1),
            correct=hits,
            n=total,
            ci_low=low,
            ci_high=high,
            norm=cfg.norm,
            eps=float(eps),
            steps=cfg.steps,
            restarts=cfg.restarts,
            seconds=time.perf_counter() - started,
        )
    robust_accuracy = {name: r.accuracy for name, r in results.items()}
    if len(results) > 1:
        robust_accuracy["worst-case"] = float(robust_all.sum()) / max(total, 1)
    example = x_all[:1].to(device)
    macs, params = count_macs_params(model, example)
    sparsity, per_layer = weight_sparsity(model)
    report = RobustnessReport(
        clean_accuracy=float(correct_clean.sum()) / max(total, 1),
        n=total,
        robust_accuracy=robust_accuracy,
        attacks=results,
        params=params,
        macs=macs,
        sparsity=sparsity,
        layer_sparsity=per_layer,
        latency_ms=measure_latency(model, example) if latency else None,
        meta={"data": data_name, "seed": seed, "eps": float(eps), "norm": norm},
    )
    model.train(was_training)
    return report
