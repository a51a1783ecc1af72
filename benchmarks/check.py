"""``python -m benchmarks check NEW COMMITTED``: does a fresh ``paper`` run reproduce a committed table?

Each row of the committed table states a mean and a spread (the sd over seeds or, with one seed, the 95%
Wilson half-width). A fresh run reproduces a row when each of its metrics lies within that stated spread of
the committed mean; the exit status is 0 only when every row the two files share does.

    python -m benchmarks paper --quick --out-dir /tmp/rerun
    python -m benchmarks check /tmp/rerun/paper.json benchmarks/results/paper.json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks._common import comma_list, markdown_table

__all__ = ["add_arguments", "main", "reproduction_rows"]

METRICS = ("clean", "pgd", "autoattack")
COLUMNS = ["cell", "metric", "committed", "spread", "new", "difference", "within"]


def _key(row: Mapping[str, Any]) -> str:
    return f"{row['finding']}/{row['method']}/{row['structure']}/{row['sparsity']:g}"


def reproduction_rows(
    new: Sequence[Mapping[str, Any]], committed: Sequence[Mapping[str, Any]], *, metrics: Sequence[str] = METRICS
) -> list[dict[str, Any]]:
    """One row per (cell, metric) measured in both: the committed mean and spread, the new mean, and the verdict."""
    fresh = {_key(r): r for r in new if r.get("status") == "ok"}
    out: list[dict[str, Any]] = []
    for old in committed:
        row = fresh.get(_key(old))
        if old.get("status") != "ok" or row is None:
            continue
        for metric in metrics:
            if old.get(metric) is None or row.get(metric) is None:
                continue
            spread = float(old.get(f"{metric}_spread") or 0.0)
            diff = float(row[metric]) - float(old[metric])
            out.append(
                {
                    "cell": _key(old),
                    "metric": metric,
                    "committed": float(old[metric]),
                    "spread": spread,
                    "new": float(row[metric]),
                    "difference": diff,
                    "within": abs(diff) <= spread + 1e-9,
                }
            )
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("new", type=Path, help="the fresh run's JSON (e.g. from --out-dir)")
    parser.add_argument("committed", type=Path, help="the committed JSON, e.g. benchmarks/results/paper.json")
    parser.add_argument("--metrics", default=",".join(METRICS), help="comma-separated subset of clean,pgd,autoattack")


def main(args: argparse.Namespace) -> int:
    tables = []
    for path in (args.new, args.committed):
        if not path.is_file():
            raise SystemExit(f"error: {path} does not exist; give the JSON a `paper` run wrote.")
        tables.append(json.loads(path.read_text(encoding="utf-8")))
    new, committed = tables
    rows = reproduction_rows(new.get("rows", []), committed.get("rows", []), metrics=comma_list(args.metrics))
    if not rows:
        raise SystemExit("error: the two files share no finished cell; were they run with the same budget?")
    print(markdown_table(rows, COLUMNS))
    within = sum(r["within"] for r in rows)
    print(f"\n{within} of {len(rows)} (cell, metric) pairs within the committed spread")
    for name, table in (("new", new), ("committed", committed)):
        env = table.get("environment", {})
        print(f"{name}: torch {env.get('torch')}, {env.get('threads')} thread(s), commit {env.get('git_commit')}")
    return 0 if within == len(rows) else 1
