"""The ``iwi`` suite's report: per-variant means over seeds, framings (a) and (b) against dense PGD-AT, exact zeros,
AutoAttack, verdicts computed from the numbers, and a robust-accuracy-against-training-FLOPs plot.

A difference is called real only when it exceeds the combined spread (``sqrt(sd_a**2 + sd_b**2)``, sd over
seeds, or the 95% Wilson half-width with one seed), as in the paper suite (:func:`benchmarks._paper_report.compare`).
"""

from __future__ import annotations

import math
import os
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks._common import environment, markdown_table, write_results
from benchmarks._paper_report import compare
from benchmarks._plots import stamp_text
from robust_prune.evaluation.report import wilson_interval

__all__ = ["aggregate", "best_variant", "iwi_default", "write_report"]

METRICS = ("clean", "pgd", "train_flops", "ticket_flops", "zero_fraction", "dead_tap_fraction", "live_zero_fraction",
           "ticket_pgd", "growth_relative_deviation")  # fmt: skip


def _spread(vals: list[float], cis: list[Sequence[float]]) -> float:
    if len(vals) >= 2:
        return statistics.stdev(vals)
    if cis:
        return (cis[0][1] - cis[0][0]) / 2
    return 0.0


def aggregate(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (model, eps, variant) of the training cells: mean and spread of every metric over seeds."""
    groups: dict[tuple[str, float, str], list[Mapping[str, Any]]] = {}
    for r in records:
        if r.get("status") == "ok" and not r.get("autoattack_cell"):
            groups.setdefault((r["model"], r["eps"], r["variant"]), []).append(r)
    rows = []
    for (model, eps, variant), rs in groups.items():
        row: dict[str, Any] = {"model": model, "eps": eps, "variant": variant, "seeds": len(rs)}
        for m in METRICS:
            vals = [float(r[m]) for r in rs if r.get(m) is not None]
            if vals:
                row[m] = statistics.fmean(vals)
                cis = [r["pgd_ci"] for r in rs if m == "pgd" and r.get("pgd_ci")]
                if m == "clean" and rs[0].get("n_eval"):  # one seed: the 95% Wilson interval of the accuracy
                    cis = [wilson_interval(round(r["clean"] * r["n_eval"]), r["n_eval"]) for r in rs]
                row[f"{m}_spread"] = _spread(vals, cis)
        row["function_preserving"] = rs[0].get("function_preserving")
        rows.append(row)
    order = {"dense-a": 0}
    return sorted(
        rows,
        key=lambda r: (
            r["model"],
            r["eps"],
            order.get(r["variant"], 2 if r["variant"].startswith("dense-b") else 1),
            r["variant"],
        ),
    )


def _find(rows: Sequence[Mapping[str, Any]], model: str, eps: float, variant: str) -> Mapping[str, Any] | None:
    return next((r for r in rows if (r["model"], r["eps"], r["variant"]) == (model, eps, variant)), None)


def _dense_b(rows: Sequence[Mapping[str, Any]], row: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The dense-b run whose training FLOPs are closest to the variant's."""
    cands = [
        r for r in rows if (r["model"], r["eps"]) == (row["model"], row["eps"]) and r["variant"].startswith("dense-b")
    ]
    if not cands or "train_flops" not in row:
        return None
    return min(cands, key=lambda r: abs(math.log(r["train_flops"] / row["train_flops"])))


def framing_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each IWI variant against dense-a (framing a) and the FLOPs-matched dense-b (framing b)."""
    out = []
    for r in rows:
        if not r["variant"].startswith("iwi:"):
            continue
        a, b = _find(rows, r["model"], r["eps"], "dense-a"), _dense_b(rows, r)
        va, da = compare(r, a)
        vb, db = compare(r, b)
        out.append({
            "model": r["model"], "eps": r["eps"], "variant": r["variant"][4:], "seeds": r["seeds"],
            "pgd": r.get("pgd"), "pgd_spread": r.get("pgd_spread"), "clean": r.get("clean"),
            "ticket_pgd": r.get("ticket_pgd"),
            "dense_a_pgd": a.get("pgd") if a else None, "dense_a_spread": a.get("pgd_spread") if a else None,
            "diff_a": da, "verdict_a": va,
            "ticket_cost": (r["ticket_flops"] / a["train_flops"]) if a and r.get("ticket_flops") is not None else None,
            "flops_vs_dense_a": (r["train_flops"] / a["train_flops"]) if a else None,
            "dense_b": b["variant"] if b else None, "dense_b_pgd": b.get("pgd") if b else None,
            "dense_b_spread": b.get("pgd_spread") if b else None, "diff_b": db, "verdict_b": vb,
            "flops_vs_dense_b": (r["train_flops"] / b["train_flops"]) if b else None,
            "zero_fraction": r.get("zero_fraction"), "dead_tap_fraction": r.get("dead_tap_fraction"),
            "live_zero_fraction": r.get("live_zero_fraction"), "function_preserving": r.get("function_preserving"),
        })  # fmt: skip
    return out


def best_variant(records: Sequence[Mapping[str, Any]], budget: Any) -> str | None:
    """The IWI variant (``"iwi:..."``) with the highest mean PGD-20 margin over dense-a on ``models[0]``, averaged
    over the eps; None before any is measured."""
    frames = [f for f in framing_rows(aggregate(records)) if f["model"] == budget.models[0] and f["diff_a"] is not None]
    margins: dict[str, list[float]] = {}
    for f in frames:
        margins.setdefault(f["variant"], []).append(f["diff_a"])
    if not margins:
        return None
    return "iwi:" + max(margins, key=lambda v: (len(margins[v]), statistics.fmean(margins[v])))


def iwi_default(variant: str, budget: Any) -> dict[str, Any]:
    """``robust_prune.methods.iwi.IWI_DEFAULT`` for a ``"iwi:<ticket_method>/<structure>/<init>"`` variant of
    ``budget``.

    Example:
        >>> from benchmarks.iwi import FULL
        >>> iwi_default("iwi:lottery/weight/zero-out", FULL)
        {'ticket_method': 'lottery', 'structure': 'weight', 'sparsity': 0.8, 'grow_init': 'zero-out'}
    """
    ticket_method, structure, init = variant[4:].split("/")
    sparsity = budget.channel_sparsity if structure == "channel" else budget.weight_sparsity
    return {"ticket_method": ticket_method, "structure": structure, "sparsity": sparsity, "grow_init": init}


def _pm(mean: Any, sd: Any) -> str:
    if mean is None:
        return ""
    return f"{mean:.3f} ± {sd:.3f}" if sd is not None else f"{mean:.3f}"


def _signed(x: Any) -> str:
    return "" if x is None else f"{x:+.3f}"


def _ratio(x: Any) -> str:
    return "" if x is None else f"{x:.2f}x"


def plot(path: Path, rows: Sequence[Mapping[str, Any]], stamp: str) -> Path | None:
    """Robust accuracy against training FLOPs, one panel per (model, eps): dense runs joined, variants as points."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    panels = sorted({(r["model"], r["eps"]) for r in rows if "train_flops" in r})
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.4), squeeze=False)
    markers = "osD^v<>px*h"
    for ax, (model, eps) in zip(axes[0], panels):
        here = [r for r in rows if (r["model"], r["eps"]) == (model, eps) and "pgd" in r]
        # FLOPs in units of dense-a's run: the framings' own scale (the spans are under 2x, so a linear axis)
        base = _find(here, model, eps, "dense-a")
        unit = base["train_flops"] if base else 1.0
        dense = sorted((r for r in here if r["variant"].startswith("dense")), key=lambda r: r["train_flops"])
        if dense:
            ax.errorbar([r["train_flops"] / unit for r in dense], [r["pgd"] for r in dense],
                        yerr=[r.get("pgd_spread", 0) for r in dense], color="k", marker="s", capsize=3,
                        label="dense PGD-AT (a, b)")  # fmt: skip
        for i, r in enumerate(r for r in here if r["variant"].startswith("iwi:")):
            ax.errorbar([r["train_flops"] / unit], [r["pgd"]], yerr=[r.get("pgd_spread", 0)], linestyle="none",
                        marker=markers[i % len(markers)], capsize=3, label=r["variant"][4:])  # fmt: skip
        ax.set_title(f"{model}, eps {eps:g}")
        ax.set_xlabel("training FLOPs, all stages" + (f" (x dense-a's {unit:.3g})" if base else ""))
        ax.set_ylabel("PGD-20 accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    fig.text(0.01, 0.005, stamp, fontsize=6, color="0.35", va="bottom", ha="left")
    fig.subplots_adjust(bottom=0.22, wspace=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, format="png", dpi=100, metadata={"Comment": stamp})
    plt.close(fig)
    os.replace(tmp, path)
    return path


def write_report(
    records: Sequence[Mapping[str, Any]],
    budget: Any,
    *,
    settings: Mapping[str, Any],
    out_dir: str | os.PathLike[str],
    name: str,
) -> tuple[Path, Path]:
    """Write ``<name>.json`` (settings, aggregated rows, framings, every cell), ``<name>.md`` and ``<name>.png``."""
    rows = aggregate(records)
    frames = framing_rows(rows)
    aa = [r for r in records if r.get("autoattack_cell") and r.get("status") == "ok"]
    best = best_variant(records, budget)
    out = Path(out_dir)
    png = plot(out / f"{name}.png", rows, stamp_text(environment()))

    fa = [{**f, "pgd_pm": _pm(f["pgd"], f["pgd_spread"]), "dense_pm": _pm(f["dense_a_pgd"], f["dense_a_spread"]),
           "diff": _signed(f["diff_a"]), "cost": _ratio(f["ticket_cost"]), "flops": _ratio(f["flops_vs_dense_a"])}
          for f in frames]  # fmt: skip
    fb = [{**f, "pgd_pm": _pm(f["pgd"], f["pgd_spread"]), "dense_pm": _pm(f["dense_b_pgd"], f["dense_b_spread"]),
           "diff": _signed(f["diff_b"]), "flops": _ratio(f["flops_vs_dense_b"])} for f in frames]  # fmt: skip
    wins_a = [f for f in frames if f["verdict_a"] == "higher"]
    wins_b = [f for f in frames if f["verdict_b"] == "higher"]
    n_a = sum(f["verdict_a"] != "missing" for f in frames)
    n_b = sum(f["verdict_b"] != "missing" for f in frames)
    verdict = (
        f"IWI beats dense PGD-AT beyond the spread in {len(wins_a)} of {n_a} measured comparisons in framing (a) "
        f"and {len(wins_b)} of {n_b} in framing (b)."
        + ("" if wins_a or wins_b else " No IWI variant beats dense PGD-AT in either framing.")
    )
    sections = [
        ("Verdict", verdict + (f"\n\nBest variant in framing (a) (mean PGD-20 margin over dense-a on "
                               f"{budget.models[0]}, both eps): **{best[4:]}**." if best else "")),
        ("Framing (a): the paper's (grown phase = dense epochs; the ticket's cost beside it)", markdown_table(
            fa, ["model", "eps", "variant", "seeds", "pgd_pm", "dense_pm", "diff", "verdict_a", "ticket_pgd", "cost",
                 "flops", "function_preserving"],
            ["model", "eps", "IWI variant", "seeds", "PGD-20 IWI", "PGD-20 dense-a", "IWI - dense", "verdict",
             "ticket PGD-20", "ticket cost / dense-a", "total FLOPs / dense-a", "growth keeps function"])),
        ("Framing (b): equal total training FLOPs", markdown_table(
            fb, ["model", "eps", "variant", "seeds", "pgd_pm", "dense_b", "dense_pm", "diff", "verdict_b", "flops"],
            ["model", "eps", "IWI variant", "seeds", "PGD-20 IWI", "dense run", "PGD-20 dense", "IWI - dense",
             "verdict", "FLOPs IWI / dense"])),
        ("Exact zeros left in the trained model", "Fractions of conv/linear weights. *dead taps*: kernel taps "
         "that only ever read zero padding at this resolution (they get no gradient, so a zero there stays zero); "
         "*live zeros*: zeros among the weights that do see the image.\n\n" + markdown_table(
            frames, ["model", "eps", "variant", "zero_fraction", "dead_tap_fraction", "live_zero_fraction"],
            ["model", "eps", "IWI variant", "zeros", "dead taps", "live zeros"])),
        ("AutoAttack (reference budget)", markdown_table(
            aa, ["model", "eps", "variant", "seed", "n_aa", "autoattack", "pgd_on_aa_points", "aa_seconds"],
            ["model", "eps", "run", "seed", "points", "AutoAttack", "PGD-20 same points", "seconds"])
         if aa else "Not run yet (it runs once every training cell is done)."),
        ("Plot", f"![robust accuracy against training FLOPs]({png.name})" if png else "No finished cell yet."),
    ]  # fmt: skip
    columns = ["model", "eps", "variant", "seeds", "clean", "clean_spread", "pgd", "pgd_spread", "train_flops",
               "ticket_flops", "zero_fraction"]  # fmt: skip
    failed = sorted(r["key"] for r in records if r.get("sanity_passed") is False)
    unknown = sum("sanity_passed" not in r for r in records)  # cells from before the field was recorded
    failed_text = ", ".join(failed) if failed else "none"
    if unknown:
        failed_text += f" (not recorded for {unknown} cell(s): see the run's log)"
    summary = {"cells finished": len(records),
               "cells whose gradient-masking checks failed": failed_text,
               "best variant (framing a)": best[4:] if best else None,
               "IWI_DEFAULT for it": iwi_default(best, budget) if best else None,
               "wall seconds": settings.get("wall_seconds"), "finished": settings.get("finished")}  # fmt: skip
    table = [{**r, **{k: f"{r[k]:.3g}" for k in ("train_flops", "ticket_flops") if r.get(k) is not None}}
             for r in rows]  # fmt: skip
    return write_results(name, table, title="Inverse weights inheritance against dense PGD-AT", columns=columns,
                         headers=["model", "eps", "run", "seeds", "clean", "±", "PGD-20", "±", "train FLOPs",
                                  "ticket FLOPs", "zeros"],
                         settings=dict(settings), summary=summary, sections=sections, out_dir=out,
                         extra={"framings": frames, "best_variant": best, "cells": list(records)})  # fmt: skip
