"""Gradient-masking checks: flag a robustness number that is too good to be true instead of publishing it.

Each check returns a :class:`SanityCheck`; :func:`run_sanity_checks` runs them all on a few points
and returns their dictionaries, which :func:`robust_prune.evaluate` stores in the report. The checks
(Carlini et al. 2019, "On Evaluating Adversarial Robustness"; Athalye et al. 2018):

- ``robust <= clean``: no attack may raise accuracy.
- ``autoattack <= pgd``: AutoAttack is at least as strong as PGD (within sampling error).
- ``pgd more steps/restarts``: PGD with the full steps is not weaker than with half of them, nor with 2
  restarts than with 1.
- ``large eps``: a very large budget drives accuracy to about zero.
- ``input gradient``: the gradient of the margin loss with respect to the input is non-zero.
- ``deterministic``: the model's output is the same for the same input.

Example:
    >>> import timm
    >>> from robust_prune.data.loading import first_n, load_data
    >>> model = timm.create_model("test_resnet", num_classes=10).eval()
    >>> x, y = first_n(load_data("digits").test, 8)
    >>> checks = run_sanity_checks(model, x, y, attack=AttackConfig(eps=0.1, steps=2))
    >>> [c["name"] for c in checks]
    ['pgd more steps/restarts', 'large eps -> ~0 accuracy', 'input gradient non-zero', 'deterministic output']
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..config import AttackConfig
from .attacks import preserve_state, run_attack

__all__ = [
    "SanityCheck",
    "run_sanity_checks",
    "check_robust_le_clean",
    "check_autoattack_le_pgd",
    "check_pgd_monotone",
    "check_large_eps",
    "check_input_gradient",
    "check_deterministic",
]


@dataclass
class SanityCheck:
    """One check's verdict, with a one-line explanation and the numbers behind it."""

    name: str
    passed: bool
    detail: str
    values: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def sampling_slack(correct: int, n: int, z: float = 1.96) -> float:
    """Allowed excess in points when comparing two accuracies on the same ``n`` points (at least 1)."""
    p = correct / max(n, 1)
    return max(1.0, z * math.sqrt(n * p * (1 - p)))


def _robust_count(model: nn.Module, x: torch.Tensor, y: torch.Tensor, config: AttackConfig) -> int:
    x_adv = run_attack(model, x, y, config)
    with torch.no_grad():
        return int((model(x_adv).argmax(1) == y).sum())


def check_robust_le_clean(clean: float, robust: dict[str, float]) -> SanityCheck:
    """Every attack's accuracy is at most the clean accuracy."""
    worse = {k: v for k, v in robust.items() if v > clean + 1e-12}
    detail = "ok" if not worse else f"attacks raised accuracy above clean {clean:.2%}: {worse}"
    return SanityCheck("robust <= clean", not worse, detail, {"clean": clean, **robust})


def check_autoattack_le_pgd(aa_correct: int, pgd_correct: int, n: int, *, name: str = "autoattack") -> SanityCheck:
    """AutoAttack's robust count does not exceed PGD's on the same points by more than sampling error."""
    slack = sampling_slack(pgd_correct, n)
    ok = aa_correct <= pgd_correct + slack
    detail = f"{name} {aa_correct}/{n} vs pgd {pgd_correct}/{n} (slack {slack:.1f} points)"
    if not ok:
        detail += ": the stronger attack finds fewer adversarial examples, a sign of a broken attack or masking"
    return SanityCheck(f"{name} <= pgd", ok, detail, {name: aa_correct, "pgd": pgd_correct, "n": n})


def check_pgd_monotone(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: AttackConfig) -> SanityCheck:
    """PGD with ``attack.steps`` is not weaker than with half the steps, nor with 2 restarts than with 1."""
    base = dataclasses.replace(attack, name="pgd", step_size=None, restarts=1)
    few = dataclasses.replace(base, steps=max(1, base.steps // 2))
    efforts = {f"{few.steps} steps": few, f"{base.steps} steps": base,  # one entry when steps=1 (half is 1 too)
               f"{base.steps} steps x 2 restarts": dataclasses.replace(base, restarts=2)}  # fmt: skip
    counts = {name: _robust_count(model, x, y, config) for name, config in efforts.items()}
    n, names = len(y), list(counts)
    pairs = list(zip(names, names[1:]))
    rises = [(a, b) for a, b in pairs if counts[b] > counts[a] + sampling_slack(counts[a], n)]
    detail = f"robust points out of {n}: " + ", ".join(f"{k}: {v}" for k, v in counts.items())
    if rises:
        detail += "; accuracy ROSE with more effort (" + "; ".join(f"{a} -> {b}" for a, b in rises) + ")"
    return SanityCheck("pgd more steps/restarts", not rises, detail, {**counts, "n": n})


def check_large_eps(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack: AttackConfig, *, threshold: float = 0.05
) -> SanityCheck:
    """PGD at a budget covering the whole image box leaves (about) no point robust."""
    big = math.sqrt(x[0].numel()) if attack.norm == "L2" else 1.0
    config = dataclasses.replace(attack, name="pgd", eps=big, step_size=None, restarts=1)
    correct, n = _robust_count(model, x, y, config), len(y)
    ok = correct <= max(1, math.floor(threshold * n))
    detail = f"PGD at {attack.norm} eps={big:.3g}: {correct}/{n} robust"
    if not ok:
        detail += " (should be ~0: gradients do not lead the attack anywhere)"
    return SanityCheck("large eps -> ~0 accuracy", ok, detail, {"eps": big, "robust": correct, "n": n})


def check_input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, max_zero: float = 0.05) -> SanityCheck:
    """The margin loss's gradient with respect to the input is non-zero on (almost) every point.

    The margin (best other logit minus true logit) is used rather than cross-entropy, whose gradient
    underflows to exactly zero on confidently classified points without any masking.
    """
    with preserve_state(model):
        xr = x.clone().detach().requires_grad_(True)
        logits = model(xr)
        true = logits.gather(1, y.view(-1, 1)).squeeze(1)
        other = logits.scatter(1, y.view(-1, 1), float("-inf")).amax(1)
        (grad,) = torch.autograd.grad((other - true).sum(), xr, allow_unused=True)
    norms = torch.zeros(len(y)) if grad is None else grad.flatten(1).norm(dim=1).detach().cpu()
    zero = float((norms == 0).float().mean()) if len(y) else 0.0
    ok = zero <= max_zero and bool(torch.isfinite(norms).all())
    detail = f"{zero:.0%} of points have a zero input gradient (median norm {float(norms.median()):.3g})"
    if not ok:
        detail += ": gradients are masked (non-differentiable or saturated input processing)"
    return SanityCheck(
        "input gradient non-zero", ok, detail, {"zero_fraction": zero, "median_norm": float(norms.median())}
    )


def check_deterministic(model: nn.Module, x: torch.Tensor) -> SanityCheck:
    """Two forward passes in eval mode give the same logits (a randomised model needs EOT attacks)."""
    with preserve_state(model), torch.no_grad():
        a, b = model(x), model(x)
    diff = float((a - b).abs().max()) if a.numel() else 0.0
    ok = diff <= 1e-5
    detail = f"max logit difference between two passes {diff:.3g}"
    if not ok:
        detail += ": the model is randomised; gradient attacks need expectation over transformation"
    return SanityCheck("deterministic output", ok, detail, {"max_diff": diff})


def run_sanity_checks(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    attack: AttackConfig,
    clean_accuracy: float | None = None,
    robust_accuracy: dict[str, float] | None = None,
    robust_masks: dict[str, torch.Tensor] | None = None,
    max_points: int = 32,
) -> list[dict[str, Any]]:
    """Run every check on up to ``max_points`` of the clean-correct points ``x, y``.

    Args:
        model: the model under evaluation (left exactly as found).
        x, y: clean-correct points (pixel space) the attacks were run on.
        attack: the PGD threat model (norm, eps, steps, seed).
        clean_accuracy, robust_accuracy: the report's numbers for ``robust <= clean``.
        robust_masks: attack name -> per-point robust flags over ``x`` (for ``autoattack <= pgd``).
        max_points: the subset size for the checks that run extra attacks.

    Example:
        >>> import timm
        >>> from robust_prune.data.loading import first_n, load_data
        >>> model = timm.create_model("test_resnet", num_classes=10).eval()
        >>> x, y = first_n(load_data("digits").test, 8)
        >>> checks = run_sanity_checks(model, x, y, attack=AttackConfig(eps=0.1, steps=2), clean_accuracy=0.5,
        ...                            robust_accuracy={"pgd": 0.25})
        >>> next(c for c in checks if c["name"] == "robust <= clean")["passed"]
        True
    """
    checks: list[SanityCheck] = []
    if clean_accuracy is not None and robust_accuracy:
        checks.append(check_robust_le_clean(clean_accuracy, robust_accuracy))
    masks = robust_masks or {}
    xs, ys = x[:max_points], y[:max_points]
    for name in ("autoattack", "autoattack-fast"):
        if name in masks and "pgd" in masks:
            checks.append(check_autoattack_le_pgd(int(masks[name].sum()), int(masks["pgd"].sum()), len(y), name=name))
        elif name in masks and len(ys):  # no PGD in the report: compare on the subset
            pgd = _robust_count(model, xs, ys, dataclasses.replace(attack, name="pgd", restarts=1))
            checks.append(check_autoattack_le_pgd(int(masks[name][: len(ys)].sum()), pgd, len(ys), name=name))
    if len(ys):
        checks.append(check_pgd_monotone(model, xs, ys, attack))
        checks.append(check_large_eps(model, xs, ys, attack))
        checks.append(check_input_gradient(model, xs, ys))
        checks.append(check_deterministic(model, xs))
    return [c.to_dict() for c in checks]
