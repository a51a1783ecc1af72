"""``python -m benchmarks sync_bn``: 2 processes with and without synchronised BatchNorm against one process.

At each global batch (64 and 16 by default) it trains ``tests/_robustify_child.py`` (test_resnet, dense PGD-2
adversarial training for 4 epochs on the 1,437 training digits, PGD-20 on 300 test points, seed 0) three times on
the CPU: one process (plain ``python``), and 2 processes (``python -m torch.distributed.run --nproc_per_node 2``,
gloo) with ``--sync-bn auto`` (the default) and ``--sync-bn off``. The table puts each 2-process PGD-20 accuracy
beside the one-process run's 95% Wilson interval at the same global batch; results go to
``benchmarks/results/sync_bn.{json,md}``.

    OMP_NUM_THREADS=1 python -m benchmarks sync_bn
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks._common import comma_list, write_results

__all__ = ["BUDGET", "add_arguments", "comparison_rows", "main", "run_all", "run_child"]

ROOT = Path(__file__).resolve().parent.parent
CHILD = ROOT / "tests" / "_robustify_child.py"
BUDGET = {"epochs": 4, "n_train": 1437, "n_test": 300, "train_steps": 2, "eval_steps": 20}
COLUMNS = ["global_batch", "processes", "sync_bn", "synchronised", "pgd", "ci_low", "ci_high", "clean",
           "in_one_process_interval", "wall_s"]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_child(processes: int, batch: int, sync_bn: str, budget: dict[str, int], workdir: Path) -> dict[str, Any]:
    """One dense run of the child on ``processes`` CPU processes at the global ``batch``; its rank-0 result."""
    from robust_prune.training.sync_bn import use_sync_bn

    out = workdir / f"p{processes}-b{batch}-{sync_bn}"
    args = [str(CHILD), "--method", "dense", "--weights-dir", str(out), "--batch-size", str(batch)]
    args += ["--sync-bn", sync_bn]
    for key, value in budget.items():
        args += ["--" + key.replace("_", "-"), str(value)]
    if processes == 1:
        command = [sys.executable, *args]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
                   "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), *args]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}  # fmt: skip
    load = os.getloadavg()[0]
    start = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=workdir, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-4000:]}")
    facts = json.loads((out / "facts-rank0.json").read_text(encoding="utf-8"))
    if facts["world_size"] != processes:
        raise RuntimeError(f"expected {processes} processes, the child ran on {facts['world_size']}")
    pgd = facts["attacks"]["pgd"]
    setting = {"auto": None, "on": True, "off": False}[sync_bn]
    return {
        "global_batch": batch,
        "processes": processes,
        "sync_bn": sync_bn,
        "synchronised": use_sync_bn(setting, per_process_batch=batch // processes, processes=processes),
        "pgd": pgd["accuracy"],
        "ci_low": pgd["ci"][0],
        "ci_high": pgd["ci"][1],
        "correct": pgd["correct"],
        "n": facts["n"],
        "clean": facts["clean_accuracy"],
        "lr": facts["lr"],
        "wall_s": round(wall, 1),
        "load_before": round(load, 2),
    }


def comparison_rows(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs, each 2-process run marked with whether its PGD accuracy lies in the one-process interval."""
    one = {r["global_batch"]: r for r in runs if r["processes"] == 1}
    rows = []
    for run in runs:
        ref = one.get(run["global_batch"])
        inside = None if run["processes"] == 1 or ref is None else ref["ci_low"] <= run["pgd"] <= ref["ci_high"]
        rows.append({**run, "in_one_process_interval": inside})
    return rows


def _pivot(rows: Sequence[dict[str, Any]]) -> str:
    """The README's table: per global batch, one process with its interval, then the two 2-process runs."""
    lines = ["| global batch | one process (95% interval) | 2 processes, sync_bn auto | 2 processes, no sync_bn |",
             "|---|---|---|---|"]  # fmt: skip
    for batch in dict.fromkeys(r["global_batch"] for r in rows):
        cell = {(r["processes"], r["sync_bn"]): r for r in rows if r["global_batch"] == batch}
        one = cell.get((1, "auto"))
        parts = [f"{batch} (2 x {batch // 2})"]
        parts.append(f"{one['pgd']:.3f} ({one['ci_low']:.3f}-{one['ci_high']:.3f})" if one else "")
        for key in ((2, "auto"), (2, "off")):
            r = cell.get(key)
            where = "" if r is None else "inside" if r["in_one_process_interval"] else "outside"
            parts.append("" if r is None else f"{r['pgd']:.3f} ({where})")
        lines.append("| " + " | ".join(parts) + " |")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batches", default="64,16", help="comma-separated global batch sizes (default: 64,16)")
    parser.add_argument("--out-dir", type=Path, default=None, help="where to write (default: benchmarks/results)")


def run_all(batches: Sequence[int], budget: dict[str, int], workdir: Path) -> list[dict[str, Any]]:
    """At each global batch: one process, then 2 processes with sync_bn auto (the default) and off."""
    runs = []
    for batch in batches:
        for processes, sync_bn in ((1, "auto"), (2, "auto"), (2, "off")):
            runs.append(run_child(processes, batch, sync_bn, budget, workdir))
            print(json.dumps(runs[-1]), flush=True)
    return runs


def main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="sync-bn-") as scratch:
        runs = run_all([int(b) for b in comma_list(args.batches)], BUDGET, Path(scratch))
    rows = comparison_rows(runs)
    compared = [r["in_one_process_interval"] for r in rows if r["in_one_process_interval"] is not None]
    write_results(
        "sync_bn",
        rows,
        title="Synchronised BatchNorm: 2 processes against one at the same global batch (PGD-20 accuracy)",
        columns=COLUMNS,
        summary={"2-process runs inside the one-process 95% interval": f"{sum(compared)} of {len(compared)}"},
        sections=[("Against one process", _pivot(rows))],
        settings={
            **BUDGET,
            "model": "test_resnet",
            "method": "dense",
            "data": "digits",
            "eps": 0.1,
            "seed": 0,
            "child": "tests/_robustify_child.py",
            "threads_per_process": 1,
            "device": "cpu",
        },  # fmt: skip
        out_dir=args.out_dir,
    )
    return 0
