"""The robustness report: what :func:`robust_prune.evaluate` measured, as data that round-trips JSON and Markdown.

Example:
    >>> from robust_prune.evaluation.report import RobustnessReport
    >>> report = RobustnessReport(clean_accuracy=0.9, n=100)
    >>> RobustnessReport.from_json(report.to_json()) == report
    True
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AttackResult", "RobustnessReport", "wilson_interval"]


def wilson_interval(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of an accuracy ``correct / n``."""
    if n == 0:
        return 0.0, 1.0
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


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
        emptied_layers: conv/linear layers whose weights are all zero (they no longer compute anything).
        latency_ms: median latency per image (batch of one) on ``latency_device``.
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
    latency_device: str = "cpu"
    emptied_layers: list[str] = field(default_factory=list)
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
        if self.emptied_layers:
            lines.append(
                f"| layers pruned to 100% | {len(self.emptied_layers)}: {', '.join(self.emptied_layers)} | | | | |"
            )
        if self.latency_ms is not None:
            lines.append(f"| latency / image ({self.latency_device}) | {self.latency_ms:.2f} ms | | | | |")
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
