"""Line plots for the benchmark suites (matplotlib, headless), stamped with where the numbers came from.

Example:
    >>> from benchmarks._plots import plot_lines
    >>> plot_lines(tmp / "a.png", {"weight": [(0.0, 0.5, 0.02), (0.5, 0.55, 0.03)]},
    ...            title="Robust accuracy", xlabel="sparsity", ylabel="PGD-20 accuracy", stamp="demo")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["plot_lines", "stamp_text"]

Point = tuple[float, float, float]  # x, mean, spread (error-bar half-width; 0 for none)


def stamp_text(env: Mapping[str, Any]) -> str:
    """One or two lines naming command, commit, torch/timm versions, threads and CPU (for a figure footer)."""
    commit = str(env.get("git_commit", "?"))[:10] + (" (dirty)" if env.get("git_dirty") else "")
    return (
        f"{env.get('command', '')}  |  commit {commit}\n"
        f"torch {env.get('torch')}  timm {env.get('timm')}  threads {env.get('threads')}  {env.get('cpu')}"
    )


def plot_lines(
    path: str | os.PathLike[str],
    series: Mapping[str, Sequence[Point]],
    *,
    title: str,
    xlabel: str,
    ylabel: str,
    stamp: str = "",
    ylim: tuple[float, float] | None = (0.0, 1.0),
) -> Path:
    """Write a PNG with one line (with error bars) per series; the file is written atomically.

    Args:
        path: where the PNG goes.
        series: label -> points ``(x, mean, spread)``; points are sorted by x.
        title, xlabel, ylabel: figure text.
        stamp: provenance footer (see :func:`stamp_text`), also stored in the PNG's metadata.
        ylim: y-axis range (accuracies by default); ``None`` lets matplotlib choose.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    for label, points in series.items():
        pts = sorted(points)
        if not pts:
            continue
        xs, ys, es = zip(*pts)
        ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=label)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.grid(alpha=0.3)
    if series:
        ax.legend(fontsize=8)
    if stamp:
        fig.text(0.01, 0.005, stamp, fontsize=6, color="0.35", va="bottom", ha="left")
        fig.subplots_adjust(bottom=0.2)
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, format="png", dpi=110, metadata={"Comment": stamp or "", "Software": "robust_prune benchmarks"})
    plt.close(fig)
    os.replace(tmp, path)
    return path
