"""``python -m benchmarks quickstart``: the README's first command, timed, in a child process.

Runs ``robust-prune robustify`` with its defaults (as ``python -m robust_prune.cli robustify``, so this checkout's
code runs) in a scratch directory and writes ``benchmarks/results/quickstart.{json,md}``: wall seconds, the
child's CPU seconds and peak resident memory, the report's clean / PGD accuracies, sparsity, parameters and MACs,
and the load average before and after, which says whether other work shared the cores (a shared machine is slower).

    OMP_NUM_THREADS=1 python -m benchmarks quickstart
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks._common import write_results

__all__ = ["README_COMMAND", "add_arguments", "main", "run_quickstart", "write_quickstart"]

README_COMMAND = "robust-prune robustify"
ROOT = Path(__file__).resolve().parent.parent  # the checkout whose code the child runs


def _child_usage() -> tuple[float, int]:
    """CPU seconds and peak resident KiB over the children this process has waited for (Linux: ru_maxrss in KiB)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime, int(usage.ru_maxrss)


def run_quickstart(cli_args: Sequence[str] = (), *, workdir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Run ``robust-prune robustify [cli_args]`` in a child process; return what it cost and what it reported.

    ``cli_args`` is empty for the README's command (tests pass a tiny budget). The run's folder is written under
    ``workdir`` (a temporary directory by default), where the CLI puts it: ``runs/<model>-digits-<method>/``.
    """
    with tempfile.TemporaryDirectory(prefix="quickstart-") as scratch:
        cwd = Path(workdir) if workdir is not None else Path(scratch)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        command = [sys.executable, "-m", "robust_prune.cli", "robustify", *cli_args]
        cpu_before, _ = _child_usage()
        load_before = os.getloadavg()
        start = time.perf_counter()
        done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        load_after = os.getloadavg()
        cpu_after, peak_kib = _child_usage()
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-4000:]}")
        (report_path,) = (cwd / "runs").glob("*/report.json")
        report = json.loads(report_path.read_text(encoding="utf-8"))
    pgd = report["attacks"].get("pgd", {})
    return {
        "command": " ".join([README_COMMAND, *cli_args]),
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu_after - cpu_before, 1),
        "peak_rss_mib": round(peak_kib / 1024, 1),
        "clean": report["clean_accuracy"],
        "pgd": pgd.get("accuracy"),
        "pgd_ci": [pgd.get("ci_low"), pgd.get("ci_high")],
        "pgd_steps": pgd.get("steps"),
        "eps": pgd.get("eps"),
        "n": report["n"],
        "sparsity": report["sparsity"],
        "channel_ratio": report.get("channel_ratio"),
        "params": report["params"],
        "macs": report["macs"],
        "sanity_passed": all(check.get("passed", True) for check in report.get("sanity", [])),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in load_after],
        "run_folder": report_path.parent.name,
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out-dir", type=Path, default=None, help="where to write (default: benchmarks/results)")


def write_quickstart(row: dict[str, Any], out_dir: str | os.PathLike[str] | None = None) -> tuple[Path, Path]:
    """``quickstart.{json,md}`` from one :func:`run_quickstart` row, with whether other work shared the cores."""
    cores = os.cpu_count() or 1
    # the 1-minute load average just before the run counts the other jobs already on the cores
    shared = row["load_before"][0] >= 0.5
    summary = {
        "wall seconds": row["wall_s"],
        "child CPU seconds": row["cpu_s"],
        "peak resident memory (MiB)": row["peak_rss_mib"],
        "clean accuracy": row["clean"],
        f"PGD-{row['pgd_steps']} accuracy (eps {row['eps']})": row["pgd"],
        "machine shared": f"{'yes' if shared else 'no'} (1-minute load {row['load_before'][0]} before, "
        f"{row['load_after'][0]} after, on {cores} cores)",
    }
    return write_results(
        "quickstart",
        [row],
        title=f"Quickstart: `{README_COMMAND}` (the defaults), timed",
        columns=["command", "wall_s", "cpu_s", "peak_rss_mib", "clean", "pgd", "n", "sparsity", "params", "macs"],
        summary=summary,
        settings={"OMP_NUM_THREADS": row["omp_num_threads"], "cores": cores, "machine_shared": shared},
        out_dir=out_dir,
    )


def main(args: argparse.Namespace) -> int:
    row = run_quickstart()
    print(json.dumps(row))
    write_quickstart(row, args.out_dir)
    return 0
