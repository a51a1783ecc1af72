"""``python -m benchmarks speed --throughput``: what robust_prune's training loop costs, on the path users run.

Three ratios, each measured inside one run (``benchmarks/results/throughput.json`` / ``throughput.md``):

1. ``library / plain``: PGD-AT training throughput (images/s) of :func:`robust_prune.training.train` (the loop
   ``robustify`` runs) over a plain-torch PGD-AT loop of the same model, batch, attack (PGD-5 L-inf, random
   start, step 2.5 eps / 5, attacked in eval mode) and optimiser. Interleaved repeats, medians. Goal >= 0.95.
2. ``2 processes``: images/s per process of the same training under ``torchrun --nproc_per_node 2`` on the CPU
   (gloo), at a global batch of 2 x half the batch, against one process at the full batch.
3. ``bf16 / fp32``: the library's training throughput with ``mixed_precision="bf16"`` over fp32 on the CPU.

The machine, threads and commit are stamped by :func:`benchmarks._common.write_results`.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["ThroughputBudget", "QUICK", "FULL", "run_throughput"]

COLUMNS = ["measure", "variant", "value", "unit", "ratio", "n", "repeats", "note"]
HEADERS = ["measure", "variant", "value", "unit", "ratio", "images", "repeats", "note"]


@dataclass(frozen=True)
class ThroughputBudget:
    model: str = "resnet10t"
    images: int = 512
    batch_size: int = 64
    repeats: int = 5
    attack_steps: int = 5


QUICK = ThroughputBudget(model="test_resnet", images=256, repeats=3)
FULL = ThroughputBudget()


def _loader(budget: ThroughputBudget, batch_size: int) -> Any:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from robust_prune.data.loading import first_n, load_data

    x, y = first_n(load_data("digits", seed=0).train, budget.images)
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True,
                      generator=torch.Generator().manual_seed(0))  # fmt: skip


def _model(budget: ThroughputBudget) -> Any:
    import torch

    from robust_prune.api import prepare

    torch.manual_seed(0)
    return prepare(budget.model, "digits")[0]


def _library_ips(model: Any, loader: Any, budget: ThroughputBudget, precision: str = "no") -> float:
    import robust_prune as rp
    from robust_prune.training.adversarial import train

    attack = rp.AttackConfig(eps=0.1, steps=budget.attack_steps)
    cfg = rp.TrainConfig(epochs=1, attack=attack, lr=0.01, mixed_precision=precision)
    stats = train(model, loader, config=cfg, progress=False)[-1]
    return stats.images / stats.seconds


def _plain_ips(model: Any, loader: Any, budget: ThroughputBudget, precision: str = "no") -> float:
    """The textbook PGD-AT loop (Madry et al.) in plain torch: the reference the library is held to.

    It runs where ``train()`` runs (``distributed.device()``: the GPU when there is one), with pinned batches copied
    without blocking, and under the same autocast as ``train()`` for ``precision="bf16"``.
    """
    import torch
    import torch.nn.functional as F

    from robust_prune.distributed import device as run_device

    device = run_device()
    model.to(device)
    eps, steps = 0.1, budget.attack_steps
    alpha = 2.5 * eps / steps
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    started, images = time.perf_counter(), 0
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        model.eval()
        delta = (torch.rand_like(x) * 2 - 1) * eps
        delta = ((x + delta).clamp(0, 1) - x).detach()
        for _ in range(steps):
            delta.requires_grad_(True)
            with autocast:
                loss = F.cross_entropy(model(x + delta), y)
            (grad,) = torch.autograd.grad(loss, delta)
            delta = (delta + alpha * grad.sign()).clamp(-eps, eps)
            delta = ((x + delta).clamp(0, 1) - x).detach()
        model.train()
        with autocast:
            loss = F.cross_entropy(model(x + delta), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        images += len(y)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return images / (time.perf_counter() - started)


def _library_vs_plain(budget: ThroughputBudget) -> list[dict[str, Any]]:
    import copy

    base = _model(budget)
    loader = _loader(budget, budget.batch_size)
    measured: dict[str, list[float]] = {"library": [], "plain": [], "bf16": []}
    _plain_ips(copy.deepcopy(base), loader, budget)  # warm-up: allocator and kernels, not counted
    for _ in range(budget.repeats):  # interleaved, so drift on a shared machine hits every variant alike
        measured["plain"].append(_plain_ips(copy.deepcopy(base), loader, budget))
        measured["library"].append(_library_ips(copy.deepcopy(base), loader, budget))
        measured["bf16"].append(_library_ips(copy.deepcopy(base), loader, budget, precision="bf16"))
    med = {k: statistics.median(v) for k, v in measured.items()}
    per_repeat = [lib / plain for lib, plain in zip(measured["library"], measured["plain"])]
    spread = f"per-repeat ratios {min(per_repeat):.3f}-{max(per_repeat):.3f}"
    common = {"n": budget.images, "repeats": budget.repeats}
    return [
        {"measure": "train", "variant": "plain-torch PGD-AT loop", "value": med["plain"], "unit": "images/s",
         "ratio": 1.0, **common, "note": "reference"},
        {"measure": "train", "variant": "robust_prune train() (robustify's loop)", "value": med["library"],
         "unit": "images/s", "ratio": med["library"] / med["plain"], **common, "note": f"goal >= 0.95; {spread}"},
        {"measure": "precision", "variant": "bf16 autocast (CPU)", "value": med["bf16"], "unit": "images/s",
         "ratio": med["bf16"] / med["library"], **common, "note": "ratio to fp32 library training"},
    ]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(budget: ThroughputBudget, batch_size: int, out: Path) -> None:
    """One process of the multi-process measurement: trains one epoch at the global ``batch_size`` (each process
    takes its share) and writes its images/s."""
    import torch

    from robust_prune import distributed

    torch.set_num_threads(1)
    loader = _loader(budget, batch_size)
    model = _model(budget)
    _library_ips(model, loader, budget)  # warm-up epoch
    images_per_s = _library_ips(model, loader, budget)  # global images / s
    per_process = images_per_s / distributed.world_size()
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank{distributed.rank()}.json").write_text(json.dumps({"per_process": per_process}))
    # leave together: rank 0 hosts the rendezvous store, and a rank aborted (SIGABRT) once in CI under load
    distributed.barrier()
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def _processes(budget: ThroughputBudget, processes: int) -> float:
    """Median over ranks of images/s per process with ``processes`` processes (global batch fixed)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        # the global batch: train() splits it over the processes
        args = ["-m", "benchmarks._throughput", "--worker", json.dumps(asdict(budget)),
                "--batch-size", str(budget.batch_size), "--out", str(out)]  # fmt: skip
        launcher = ["-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--master_addr",
                    "127.0.0.1", "--master_port", str(_free_port())] if processes > 1 else []  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
        cwd = Path(__file__).resolve().parent.parent
        done = subprocess.run([sys.executable, *launcher, *args], env=env, cwd=cwd, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"the {processes}-process run failed: {done.stderr[-2000:]}")
        values = [json.loads(p.read_text())["per_process"] for p in sorted(out.glob("rank*.json"))]
    return statistics.median(values)


def _multi_process(budget: ThroughputBudget) -> list[dict[str, Any]]:
    one, two = _processes(budget, 1), _processes(budget, 2)
    common = {"n": budget.images, "repeats": 1}
    return [
        {"measure": "processes", "variant": f"1 process, batch {budget.batch_size}", "value": one,
         "unit": "images/s per process", "ratio": 1.0, **common, "note": "CPU, one thread"},
        {"measure": "processes", "variant": f"2 processes (gloo), 2 x {budget.batch_size // 2}", "value": two,
         "unit": "images/s per process", "ratio": two / one, **common,
         "note": f"{2 * two:.1f} images/s together; CPU, one thread each"},
    ]  # fmt: skip


def run_throughput(
    *,
    quick: bool = False,
    out_dir: str | os.PathLike[str] | None = None,
    threads: int | None = None,
    budget: ThroughputBudget | None = None,
) -> list[dict[str, Any]]:
    """Measure the three ratios and write ``throughput.json`` / ``throughput.md``; return the rows (``budget``
    overrides the quick/full sizes)."""
    from benchmarks._common import set_threads, write_results

    budget = budget or (QUICK if quick else FULL)
    set_threads(threads)
    rows = _library_vs_plain(budget) + _multi_process(budget)
    ratio = {r["measure"] + ":" + r["variant"]: r["ratio"] for r in rows}
    library = next(r for r in rows if r["variant"].startswith("robust_prune"))
    write_results(
        "throughput",
        rows,
        title="Throughput: robust_prune's PGD-AT loop against plain torch, 2 processes, bf16",
        columns=COLUMNS,
        headers=HEADERS,
        settings={"quick": quick, **asdict(budget)},
        summary={"library_over_plain": library["ratio"], "goal": 0.95, "ratios": ratio},
        out_dir=out_dir,
    )
    return rows


if __name__ == "__main__":  # a worker of the multi-process measurement (started by _processes)
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--out", required=True)
    ns = parser.parse_args()
    _worker(ThroughputBudget(**json.loads(ns.worker)), ns.batch_size, Path(ns.out))
