"""Honest evaluation: an independent PGD agrees, AutoAttack <= PGD, and gradient masking is flagged."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
import torch.nn.functional as F
from _adv_model import EPS, adversarially_trained, digits_points
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import robust_prune as rp
from robust_prune.cli import main
from robust_prune.evaluation.measure import channel_ratio
from robust_prune.evaluation.report import RobustnessReport, wilson_interval
from robust_prune.evaluation.robustness import evaluate
from robust_prune.models import create_model

torch.set_num_threads(1)


def _loader(n: int) -> DataLoader:
    x, y = digits_points(n)
    return DataLoader(TensorDataset(x, y), batch_size=n)


def plain_pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int, seed: int) -> torch.Tensor:
    """Madry PGD in plain torch: uniform start, signed-gradient ascent on cross-entropy, projection.

    The random start is drawn from a local generator seeded like ``evaluate``'s attack, which removes the
    random-start noise from the comparison; everything else is written here independently of torchattacks.
    """
    alpha = 2.5 * eps / steps
    generator = torch.Generator(x.device).manual_seed(seed)  # on CUDA: the stream evaluate's seeded attack draws
    x_adv = (x + torch.empty_like(x).uniform_(-eps, eps, generator=generator)).clamp(0, 1)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(x_adv), y), x_adv)
        x_adv = x_adv.detach() + alpha * grad.sign()
        x_adv = (x + (x_adv - x).clamp(-eps, eps)).clamp(0, 1)
    return x_adv.detach()


class Quantised(nn.Module):
    """Gradient masking by construction: the input is rounded to 4 levels (zero gradient almost everywhere)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(torch.round(x * 3) / 3)


def test_evaluate_pgd_agrees_with_an_independent_pgd() -> None:
    model, _ = adversarially_trained()
    n = 96
    x, y = digits_points(n)
    report = evaluate(
        model, _loader(n), attacks=("pgd",), eps=EPS, steps=10, latency=False, sanity=False, progress=False
    )
    with torch.no_grad():
        correct = model(x).argmax(1) == y
    x, y = x[correct], y[correct]  # evaluate attacks the clean-correct points, in one batch here
    x_adv = plain_pgd(model, x, y, EPS, 10, seed=0)
    with torch.no_grad():
        ours = int((model(x_adv).argmax(1) == y).sum())
    theirs = report.attacks["pgd"].correct
    assert 0 < theirs < n  # the model is robust on some points and not on others
    assert abs(ours - theirs) <= max(1, round(0.01 * n)), (ours, theirs)


@pytest.mark.slow
def test_autoattack_reference_budget_is_at_most_pgd_and_sanity_passes() -> None:
    model, _ = adversarially_trained()
    report = evaluate(
        model, _loader(16), attacks=("pgd", "autoattack"), eps=EPS, steps=20, latency=False, progress=False, sanity_n=16
    )
    aa, pgd = report.attacks["autoattack"], report.attacks["pgd"]
    assert aa.correct <= pgd.correct
    assert aa.steps == 100 and "Square 5000 queries" in aa.extra["budget"]
    assert set(aa.extra["broken_by"]) == {"apgd-ce", "apgd-t", "fab-t", "square"}
    assert report.sanity and report.sanity_passed, [c for c in report.sanity if not c["passed"]]
    assert report.robust_accuracy["worst-case"] <= min(aa.accuracy, pgd.accuracy)


def test_the_autoattack_cascade_agrees_with_the_authors_code_on_the_same_points() -> None:
    pytest.importorskip("pyautoattack", reason="the authors' AutoAttack comes with the test extra")
    from benchmarks._reference_aa import reference_autoattack

    model, _ = adversarially_trained()
    x, y = digits_points(16)
    report = evaluate(model, DataLoader(TensorDataset(x, y), batch_size=16), attacks=("autoattack",), eps=EPS,
                      latency=False, progress=False, sanity=False)  # fmt: skip
    ours = report.attacks["autoattack"].correct
    theirs = round(reference_autoattack(model, x, y, eps=EPS, seed=0)["autoattack_reference"] * 16)
    clean = int((model(x).argmax(1) == y).sum())
    assert 0 < theirs < clean, "a model with some robust points, some broken ones: the comparison can tell"
    assert abs(ours - theirs) <= 2, f"library {ours}/16 vs reference {theirs}/16 on the same points"


def test_one_pgd_step_still_runs_the_more_effort_check() -> None:
    model, _ = adversarially_trained()
    report = evaluate(model, _loader(16), attacks=("pgd",), eps=EPS, steps=1, latency=False, progress=False)
    monotone = next(c for c in report.sanity if c["name"] == "pgd more steps/restarts")
    assert "1 steps:" in monotone["detail"] and "1 steps x 2 restarts:" in monotone["detail"]


def test_gradient_masking_fails_the_checks_loudly() -> None:
    model, _ = adversarially_trained()
    masked = Quantised(model).eval()
    with pytest.warns(UserWarning, match="GRADIENT-MASKING"):
        report = evaluate(masked, _loader(32), attacks=("pgd",), eps=EPS, steps=5, latency=False, progress=False)
    failed = {c["name"] for c in report.sanity if not c["passed"]}
    assert "input gradient non-zero" in failed and not report.sanity_passed
    text = str(report)
    assert text.startswith("!" * 72) and "GRADIENT-MASKING CHECKS FAILED" in text
    assert "FAILED" in report.to_markdown()
    assert json.loads(report.to_json())["sanity"]  # stored in the report, not only printed


def test_report_is_deterministic_and_round_trips() -> None:
    model, _ = adversarially_trained()

    def run() -> RobustnessReport:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            return evaluate(model, _loader(24), attacks=("fgsm", "pgd"), eps=EPS, steps=3, progress=False, sanity_n=8)

    a, b = run(), run()
    strip = ("seconds", "latency_ms")

    def clean(d: dict) -> dict:
        d = {k: v for k, v in d.items() if k not in strip}
        d["attacks"] = {k: {kk: vv for kk, vv in v.items() if kk not in strip} for k, v in d["attacks"].items()}
        return d

    assert clean(a.to_dict()) == clean(b.to_dict())
    assert RobustnessReport.from_json(a.to_json()).to_dict() == a.to_dict()
    res = a.attacks["pgd"]
    assert res.n == 24 and res.ci_low <= res.accuracy <= res.ci_high and res.norm == "Linf" and res.steps == 3
    assert a.params > 0 and a.macs > 0 and a.latency_ms and a.latency_ms > 0 and 0 <= a.sparsity < 1
    assert a.layer_sparsity and a.channel_ratio is None
    assert "worst-case" in a.robust_accuracy and "| pgd accuracy |" in a.to_markdown()
    assert a.sanity_passed


def test_cw_is_reported_as_success_rate_and_median_perturbation() -> None:
    model, _ = adversarially_trained()
    report = evaluate(
        model, _loader(8), attacks=("pgd", "cw"), eps=EPS, steps=2, latency=False, progress=False, sanity=False
    )
    cw = report.attacks["cw"]
    assert "cw" not in report.robust_accuracy and cw.extra["unbounded"]
    assert 0 <= cw.extra["success_rate"] <= 1 and cw.steps >= 100
    assert cw.extra["median_l2"] is None or cw.extra["median_l2"] > 0
    assert "cw success rate" in report.to_markdown() and "minimal perturbation" in report.to_markdown()


def test_evaluate_leaves_model_modes_as_found() -> None:
    model, _ = adversarially_trained()
    model.train()
    model.model.bn1.eval()
    modes = [m.training for m in model.modules()]
    loader = _loader(8)  # iterating the digits loader itself draws from the global RNG
    rng = torch.get_rng_state()
    try:
        evaluate(model, loader, attacks=("pgd",), eps=EPS, steps=2, latency=False, progress=False, sanity_n=4)
        assert [m.training for m in model.modules()] == modes
        assert torch.equal(torch.get_rng_state(), rng)
    finally:
        model.eval()


def _kept_widths(model: nn.Module) -> int:
    return sum(getattr(m, "out_channels", 0) + getattr(m, "out_features", 0) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear)))  # fmt: skip


def test_channel_ratio_is_the_kept_fraction_of_a_real_pruned_model() -> None:
    dense = create_model("test_resnet", num_classes=10)
    assert channel_ratio(dense) is None  # no record: unknown
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruned = rp.prune(create_model("test_resnet", num_classes=10), 0.5)
    expected = _kept_widths(pruned.model) / _kept_widths(dense)
    assert 0.3 < expected < 0.9  # pruning removed channels (the classifier's 10 stay)
    assert channel_ratio(pruned.model, pruned.record) == pytest.approx(expected)
    pruned.record.stats.pop("channel_ratio", None)  # a record without the figure: measured from a rebuild
    assert channel_ratio(pruned.model, pruned.record) == pytest.approx(expected)
    weights = rp.prune(create_model("test_resnet", num_classes=10), 0.5, structure="weight")
    assert channel_ratio(weights.model, weights.record) == 1.0  # masks keep every channel


def test_wilson_interval() -> None:
    low, high = wilson_interval(50, 100)
    assert low < 0.5 < high and high - low == pytest.approx(0.19, abs=0.01)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_cli_evaluate_flags_change_what_is_measured(tmp_path, capsys) -> None:
    model, _ = adversarially_trained()
    rp.save_pretrained(model, tmp_path / "m")
    base = ["evaluate", str(tmp_path / "m"), "--n", "8", "--steps", "2", "--no-progress", "--no-sanity"]
    assert main([*base, "--attacks", "fgsm", "--diagnostics"]) == 0
    out = capsys.readouterr().out
    assert "| fgsm accuracy |" in out and "pgd accuracy" not in out and "| 8 |" in out
    assert "Sparsity diagnostics (8 points, Linf eps=0.1)" in out
    assert main(base) == 0  # the defaults: PGD at 2 steps, no diagnostics
    out = capsys.readouterr().out
    assert "| pgd accuracy |" in out and "2 steps" in out and "fgsm" not in out and "Sparsity diagnostics" not in out


def test_one_step_pgd_runs_the_sanity_checks_without_a_half_step_comparison() -> None:
    model, _ = adversarially_trained()
    report = evaluate(model, _loader(8), attacks=("pgd",), eps=EPS, steps=1, latency=False, progress=False, sanity_n=8)
    monotone = next(c for c in report.sanity if c["name"] == "pgd more steps/restarts")
    assert "1 steps: " in monotone["detail"] and "1 steps x 2 restarts: " in monotone["detail"]
    assert "0 steps" not in monotone["detail"]  # 1 step has no half to compare with
