"""The ``paper`` suite's report: the table, a verdict per finding computed from the numbers, and the plots.

A verdict compares two means and calls a difference real only when it exceeds the combined spread
(``sqrt(s_a**2 + s_b**2)``, the spreads being the sd over seeds or, with one seed, the 95% Wilson half-widths);
otherwise it says "within spread". It never says more than the numbers do.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

from benchmarks._common import environment, write_results
from benchmarks._plots import plot_lines, stamp_text

__all__ = ["write_report", "verdicts", "compare"]

COLUMNS = [
    "finding",
    "method",
    "structure",
    "sparsity",
    "seeds",
    "clean",
    "clean_spread",
    "pgd",
    "pgd_spread",
    "autoattack",
    "autoattack_spread",
    "macs",
    "params",
    "measured_sparsity",
    "epochs_total",
    "spread_kind",
    "status",
    "reason",
]
HEADERS = [
    "finding",
    "method",
    "structure",
    "sparsity",
    "seeds",
    "clean",
    "±",
    "PGD-20",
    "±",
    "AutoAttack",
    "±",
    "MACs",
    "params",
    "weight sparsity",
    "epochs",
    "spread",
    "status",
    "reason",
]


def _row(rows: Sequence[Mapping[str, Any]], finding: str, method: str, sparsity: float) -> Mapping[str, Any] | None:
    for r in rows:
        if r["finding"] == finding and r["method"] == method and abs(r["sparsity"] - sparsity) < 1e-9:
            return r if r.get("seeds") else None
    return None


def compare(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None, metric: str = "pgd") -> tuple[str, float | None]:
    """``("higher" | "lower" | "within spread" | "missing", difference a - b)`` for one metric."""
    if a is None or b is None or a.get(metric) is None or b.get(metric) is None:
        return "missing", None
    diff = float(a[metric]) - float(b[metric])
    spread = math.hypot(float(a.get(f"{metric}_spread") or 0.0), float(b.get(f"{metric}_spread") or 0.0))
    if abs(diff) <= spread:
        return "within spread", diff
    return ("higher" if diff > 0 else "lower"), diff


def _line(label: str, a: Mapping[str, Any] | None, b: Mapping[str, Any] | None, claim: str) -> str:
    parts = []
    for metric, name in (("pgd", "PGD-20"), ("autoattack", "AutoAttack")):
        how, diff = compare(a, b, metric)
        if how == "missing":
            parts.append(f"{name}: not measured")
            continue
        assert a is not None and b is not None
        parts.append(f"{name} {a[metric]:.3f} vs {b[metric]:.3f} ({diff:+.3f}, {how})")
    how, _ = compare(a, b, "pgd")
    verdict = {
        "higher": "reproduced",
        "lower": "NOT reproduced (the opposite)",
        "within spread": "not resolved (difference within spread)",
        "missing": "not measured",
    }[how]
    return f"- {label}: {'; '.join(parts)}. Claim ({claim}): **{verdict}** on PGD-20."


def verdicts(rows: Sequence[Mapping[str, Any]], settings: Mapping[str, Any]) -> str:
    """Markdown bullets answering the three findings from the aggregated rows."""
    out = ["Finding 1: adversarial pruning with inherited weights, robust accuracy against sparsity.", ""]
    dense = _row(rows, "f1", "dense", 0.0)
    for structure in settings.get("structures", ()):
        channel_levels = settings.get("channel_sparsities") if structure == "channel" else None
        levels = channel_levels or settings.get("sparsities", ())
        for s in levels:
            if s > 0:
                r = next(
                    (
                        x
                        for x in rows
                        if x["finding"] == "f1"
                        and x["method"] == "prune"
                        and x["structure"] == structure
                        and abs(x["sparsity"] - s) < 1e-9
                        and x.get("seeds")
                    ),
                    None,
                )
                claim = "moderate sparsity improves robustness" if s <= 0.7 else "sparsity does not hurt"
                out.append(_line(f"{structure} sparsity {s:g} vs dense", r, dense, claim))
    for s in settings.get("robust_sparsities") or ():
        out.append(_line(f"weight sparsity {s:g}, robust importance vs magnitude", _row(rows, "f1", "prune-robust", s),
                         _row(rows, "f1", "prune", s), "robust importance beats magnitude"))  # fmt: skip
    out += ["", "Finding 2: lottery tickets (weight structure).", ""]
    for s in settings.get("lottery_sparsities", ()):
        rewind = _row(rows, "f2", "lottery-rewind", s)
        reinit = _row(rows, "f2", "lottery-reinit", s)
        out.append(
            _line(
                f"sparsity {s:g}, rewinding vs re-initialisation",
                rewind,
                reinit,
                "inherited weights beat re-initialised",
            )
        )
        out.append(
            _line(
                f"sparsity {s:g}, adversarial vs standard training while pruning",
                rewind,
                _row(rows, "f2", "lottery-clean", s),
                "adversarial pruning beats standard",
            )
        )
    out += ["", "Finding 3: inverse weights inheritance at an equal total number of epochs.", ""]
    s = settings.get("iwi_sparsity", 0.5)
    out.append(
        _line(
            f"IWI (ticket sparsity {s:g}) vs dense PGD-AT",
            _row(rows, "f3", "iwi", s),
            _row(rows, "f3", "dense", 0.0),
            "IWI is more robust",
        )
    )
    if settings.get("dense_a"):
        out.append(_line(f"IWI vs dense PGD-AT for the grown phase's {settings.get('grow_epochs')} epochs (the paper's "
                         "framing)", _row(rows, "f3", "iwi", s), _row(rows, "f3", "dense-a", 0.0),
                         "IWI is more robust"))  # fmt: skip
    return "\n".join(out)


def cell_notes(records: Sequence[Mapping[str, Any]]) -> str:
    """Per-cell facts the table does not aggregate: layers emptied by pruning, and the authors' AutoAttack against
    the library's on the same points (with both 95% Wilson intervals)."""
    from robust_prune.evaluation.report import wilson_interval

    out = []
    emptied = [r for r in records if r.get("status") == "ok" and r.get("layers") and r["method"].startswith("prune")]
    if emptied:
        out += ["Layers emptied by pruning (every weight zero), of the model's conv/linear layers:", ""]
        out += [f"- {r['key']}: {r['empty_layers']} of {r['layers']}" for r in emptied]
        out.append("")
    checked = [r for r in records if r.get("autoattack_reference") is not None and r.get("autoattack") is not None]
    if checked:
        out += ["AutoAttack at the reference budget: the library's cascade against the authors' code (pyautoattack "
                "`version='standard'`) on the same test points:", ""]  # fmt: skip
        for r in checked:
            n = int(r["n_reference"])
            lib, ref = float(r["autoattack"]), float(r["autoattack_reference"])
            lo_l, hi_l = wilson_interval(round(lib * n), n)
            lo_r, hi_r = wilson_interval(round(ref * n), n)
            overlap = "intervals overlap" if lo_l <= hi_r and lo_r <= hi_l else "**intervals do not overlap**"
            out.append(f"- {r['key']} ({n} points): library {lib:.3f} [{lo_l:.3f}, {hi_l:.3f}], reference {ref:.3f} "
                       f"[{lo_r:.3f}, {hi_r:.3f}] ({lib - ref:+.3f}; {overlap})")  # fmt: skip
    return "\n".join(out) or "none yet"


def _series(rows: Sequence[Mapping[str, Any]], metric: str) -> dict[str, list[tuple[float, float, float]]]:
    series: dict[str, list[tuple[float, float, float]]] = {}
    dense = _row(rows, "f1", "dense", 0.0)
    for r in rows:
        if not r.get("seeds") or r.get(metric) is None or r["finding"] not in ("f1", "f2"):
            continue
        if r["finding"] == "f1" and r["method"] == "dense":
            continue
        label = f"{r['method']} ({r['structure']})" if r["finding"] == "f1" else f"{r['method']} (weight)"
        series.setdefault(label, []).append((r["sparsity"], r[metric], r.get(f"{metric}_spread") or 0.0))
    if dense is not None and dense.get(metric) is not None:
        for label in [k for k in series if k.startswith("prune")]:
            series[label].append((0.0, dense[metric], dense.get(f"{metric}_spread") or 0.0))
    return {k: [(x, y, 0.0 if math.isnan(e) else e) for x, y, e in v] for k, v in series.items()}


def _on(settings: Mapping[str, Any]) -> str:
    return "" if settings.get("dataset", "digits") == "digits" else f": {settings.get('dataset')}"


def _aa_seeds_note(settings: Mapping[str, Any]) -> str:
    n = settings.get("aa_seeds")
    return f", on the first {n} seed(s) only (its ± is then that seed's 95% Wilson half-width)" if n else ""


def _split_note(settings: Mapping[str, Any]) -> str:
    if settings.get("dataset", "digits") == "digits":
        return "train/test split of the embedded digits"
    subset = settings.get("train_subset")
    return (f"training subset of {subset} images and shuffling" if subset else "shuffling") + " of the official split"


def write_report(
    records: Sequence[Mapping[str, Any]],
    rows: Sequence[Mapping[str, Any]],
    *,
    settings: Mapping[str, Any],
    out_dir: str | os.PathLike[str],
    name: str = "paper",
    total: int | None = None,
) -> None:
    """Write ``<name>.json`` (rows, raw cells), ``<name>.md`` and ``<name>_sparsity.png`` (+ ``_aa.png``).

    ``total`` is the number of cells in the grid (finished or not), for the summary line.
    """
    from pathlib import Path

    out = Path(out_dir)
    done = sum(1 for r in records if r.get("status") == "ok")
    summary = {
        "cells finished": f"{done} of {total if total is not None else len(records)} ok",
        "model": settings.get("model"),
        "dataset": settings.get("dataset"),
        "seeds": settings.get("seeds"),
    }
    notes = (
        f"Spread: sd over seeds (each seed also draws its own {_split_note(settings)}); with one "
        f"seed, the half-width of the 95% Wilson interval of that seed's accuracy. PGD-20 on "
        f"{settings.get('eval_n') or 'all'} test points; AutoAttack at the reference budget on the first "
        f"{settings.get('aa_n')} of them{_aa_seeds_note(settings)}. Finding-1 cells share one dense PGD-AT model "
        f"per seed ({settings.get('pretrain_epochs')} epochs), then {settings.get('finetune_epochs')} epochs "
        "(pruned: fine-tuning with inherited weights; sparsity 0: the same extra dense epochs). MACs/params are "
        "those of the evaluated model; weight-masked models keep their dense MACs (see 'weight sparsity')."
    )
    stamp = stamp_text(environment())
    figures = []
    for metric, suffix, label in (("pgd", "sparsity", "PGD-20"), ("autoattack", "sparsity_aa", "AutoAttack")):
        series = _series(rows, metric)
        if series:
            path = plot_lines(
                out / f"{name}_{suffix}.png",
                series,
                title=f"{label} accuracy against sparsity ({settings.get('model')}, {settings.get('dataset')})",
                xlabel="sparsity",
                ylabel=f"{label} accuracy",
                stamp=stamp,
            )
            figures.append(f"![{label} against sparsity]({path.name})")
    write_results(
        name,
        rows,
        title=f"Paper findings (Liao et al. 2022) at small scale{_on(settings)}",
        columns=COLUMNS,
        headers=HEADERS,
        settings=dict(settings),
        summary=summary,
        sections=[
            ("Findings", verdicts(rows, settings)),
            *([("Per-cell checks", cell_notes(records))] if settings.get("reference_aa") or
              settings.get("robust_sparsities") else []),  # fmt: skip
            ("Notes", notes),
            ("Plots", "\n\n".join(figures) or "none yet"),
        ],
        out_dir=out,
        extra={"cells": list(records)},
    )
