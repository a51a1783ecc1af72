"""Cells of a benchmark grid: run each once, record it as it finishes, skip finished ones on ``--resume``.

A cell is one measurement keyed ``(finding, method, structure, sparsity, seed)``. Its ``run`` returns a dict
of numbers; a :class:`CellUnavailable` raised inside becomes status ``"unavailable"`` (a method or attack
not installed), any other exception status ``"error"``; neither stops the grid. After every cell the
caller's ``on_update`` rewrites the results files, so an interrupted run loses at most one cell.

Example:
    >>> cells = [Cell("f1", "prune", "weight", 0.5, 0, lambda: {"clean": 0.9})]
    >>> records = run_cells(cells, previous={}, progress=False)
    >>> records[0]["status"]
    'ok'
"""

from __future__ import annotations

import math
import statistics
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Cell", "CellUnavailable", "cell_key", "run_cells", "aggregate", "previous_cells"]


class CellUnavailable(RuntimeError):
    """A cell cannot run here (its method, structure or attack is not installed); recorded, not fatal."""


def cell_key(finding: str, method: str, structure: str, sparsity: float, seed: int) -> str:
    """The stable identity of a cell, e.g. ``"f1/prune/weight/0.5/seed0"``."""
    return f"{finding}/{method}/{structure}/{sparsity:g}/seed{seed}"


@dataclass(frozen=True)
class Cell:
    """One measurement: where it sits in the grid and how to produce its numbers."""

    finding: str
    method: str
    structure: str
    sparsity: float
    seed: int
    run: Callable[[], dict[str, Any]]

    @property
    def key(self) -> str:
        return cell_key(self.finding, self.method, self.structure, self.sparsity, self.seed)

    def ident(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "finding": self.finding,
            "method": self.method,
            "structure": self.structure,
            "sparsity": self.sparsity,
            "seed": self.seed,
        }


def previous_cells(payload: Mapping[str, Any] | None, fingerprint: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Finished cells of an earlier results payload, keyed, if it was run with the same ``fingerprint``.

    Cells from a run with a different budget are not reused (their numbers would not be comparable); keys of
    the stored fingerprint that the current one does not have (e.g. a cell selection) are ignored.
    """
    stored = (payload or {}).get("settings", {}).get("fingerprint")
    if not payload or not isinstance(stored, dict) or {k: stored.get(k) for k in fingerprint} != dict(fingerprint):
        return {}
    return {c["key"]: c for c in payload.get("cells", []) if c.get("status") == "ok"}


def run_cells(
    cells: Sequence[Cell],
    *,
    previous: Mapping[str, dict[str, Any]],
    progress: bool = True,
    on_update: Callable[[list[dict[str, Any]]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run the cells not in ``previous`` (finished, keyed), in order; return every cell's record.

    ``on_update(records)`` is called after each cell with the records so far (finished and skipped).
    """
    from tqdm.auto import tqdm

    records: dict[str, dict[str, Any]] = {k: dict(v, resumed=True) for k, v in previous.items()}
    todo = [c for c in cells if c.key not in previous]
    bar = tqdm(todo, desc="cells", unit="cell", disable=not progress)
    for cell in bar:
        bar.set_postfix_str(cell.key)
        started = time.perf_counter()
        record = cell.ident()
        try:
            record.update(cell.run())
            record["status"] = "ok"
        except CellUnavailable as exc:
            record.update(status="unavailable", reason=str(exc))
        except Exception as exc:  # noqa: BLE001 - one failing cell must not lose the grid
            last = traceback.format_exception_only(type(exc), exc)[-1].strip()
            record.update(status="error", reason=last[:500])
        record["seconds"] = round(time.perf_counter() - started, 2)
        records[cell.key] = record
        if on_update is not None:
            on_update(_ordered(records, cells))
    return _ordered(records, cells)


def _ordered(records: Mapping[str, dict[str, Any]], cells: Sequence[Cell]) -> list[dict[str, Any]]:
    order = {c.key: i for i, c in enumerate(cells)}
    return sorted(records.values(), key=lambda r: order.get(r["key"], len(order)))


def _spread(values: Sequence[float], ci: Sequence[tuple[float, float]]) -> tuple[float, str]:
    """Sample standard deviation over seeds; with one seed, the half-width of its 95% Wilson interval."""
    if len(values) >= 2:
        return statistics.stdev(values), f"sd over {len(values)} seeds"
    if ci and ci[0] is not None:
        return (ci[0][1] - ci[0][0]) / 2, "95% CI (1 seed)"
    return math.nan, ""


def aggregate(records: Iterable[Mapping[str, Any]], metrics: Sequence[str]) -> list[dict[str, Any]]:
    """Group finished cells over seeds: ``<metric>`` mean and ``<metric>_spread`` for each metric.

    A metric ``m`` may carry ``m_ci`` ([low, high]) per cell, used as the spread when only one seed ran.
    Cells that did not finish appear as rows with their status and reason, so gaps stay visible.
    """
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["finding"], r["method"], r["structure"], r["sparsity"]), []).append(r)
    rows = []
    for (finding, method, structure, sparsity), rs in groups.items():
        ok = [r for r in rs if r.get("status") == "ok"]
        row: dict[str, Any] = {
            "finding": finding,
            "method": method,
            "structure": structure,
            "sparsity": sparsity,
            "seeds": len(ok),
        }
        if not ok:
            row["status"] = rs[0].get("status")
            row["reason"] = rs[0].get("reason", "")
            rows.append(row)
            continue
        row["status"] = "ok" if len(ok) == len(rs) else f"{len(ok)}/{len(rs)} ok"
        for m in metrics:
            vals = [float(r[m]) for r in ok if r.get(m) is not None]
            if not vals:
                continue
            row[m] = statistics.fmean(vals)
            spread, how = _spread(vals, [tuple(r[f"{m}_ci"]) for r in ok if r.get(f"{m}_ci")])
            row[f"{m}_spread"] = spread
            row.setdefault("spread_kind", how)  # of the first metric every seed measured (clean, PGD)
            if len(vals) < len(ok):  # e.g. AutoAttack on the first seed only: its spread is that seed's interval
                row[f"{m}_seeds"] = len(vals)
        for extra in ("macs", "params", "measured_sparsity", "epochs_total"):
            vals = [float(r[extra]) for r in ok if r.get(extra) is not None]
            if vals:
                mean = statistics.fmean(vals)
                row[extra] = mean if extra == "measured_sparsity" else round(mean)
        rows.append(row)
    return rows
