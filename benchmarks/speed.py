"""``python -m benchmarks speed``: what pruning buys in time, and what the library costs beyond training.

Four measurements, one table (``benchmarks/results/speed.json`` / ``speed.md``):

1. ``train``: adversarial-training throughput (PGD-AT, images/s) of the dense, channel-pruned and
   weight-masked model, from :func:`robust_prune.training.adversarial.train`'s own epoch statistics.
2. ``latency``: CPU inference latency of a channel-pruned model over the dense one, next to the MACs
   ratio, per family (medians of interleaved repeats, one thread).
3. ``eval``: evaluation throughput per attack (:func:`robust_prune.evaluate`'s per-attack seconds;
   attacks run on the clean-correct points, so points/s counts those).
4. ``overhead``: a small :func:`robust_prune.robustify` run: wall time minus the training epochs it ran,
   as a share of the wall time, split into evaluation and the rest (data, model, pruning, MACs, latency).

``--deploy`` measures instead what pruning buys where users deploy (``benchmarks/results/speed_deploy.json`` /
``.md``): robust_prune against raw torch-pruning at each model's native resolution, eager torch and onnxruntime,
FLOPs ratio, latency ratio and their quotient (see ``benchmarks/_deploy.py``).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
import os
import time
from dataclasses import dataclass
from typing import Any

from benchmarks._common import add_threads_argument, interleaved_medians, set_threads

__all__ = ["SpeedBudget", "QUICK", "FULL", "add_arguments", "main", "run_speed"]

COLUMNS = ["measure", "model", "variant", "value", "unit", "ratio", "macs_ratio", "n", "seconds", "note"]
HEADERS = ["measure", "model", "variant", "value", "unit", "ratio to dense", "MACs ratio", "n", "seconds", "note"]


@dataclass(frozen=True)
class SpeedBudget:
    """Sizes of the speed suite."""

    train_model: str = "resnet10t"
    train_images: int = 512
    latency_models: tuple[str, ...] = ("resnet10t", "test_resnet", "test_efficientnet", "test_convnext", "test_vit")
    latency_batch: int = 16
    latency_repeats: int = 15
    sparsity: float = 0.5
    eval_n: int = 128
    attacks: tuple[str, ...] = ("fgsm", "pgd", "apgd-ce", "square", "autoattack-fast", "autoattack")
    autoattack_n: int = 16
    overhead_model: str = "resnet10t"
    eval_train_epochs: int = 3


QUICK = SpeedBudget(
    train_model="test_resnet",
    train_images=256,
    latency_models=("test_resnet", "test_efficientnet", "test_convnext", "test_vit"),
    latency_repeats=9,
    eval_n=64,
    attacks=("fgsm", "pgd", "apgd-ce", "square", "autoattack"),
    autoattack_n=8,
    overhead_model="test_resnet",
    eval_train_epochs=1,
)
FULL = SpeedBudget()


def _subset_loader(loader: Any, n: int) -> Any:
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    xs, ys, seen = [], [], 0
    for x, y in loader:
        xs.append(x)
        ys.append(y)
        seen += len(y)
        if seen >= n:
            break
    return DataLoader(TensorDataset(torch.cat(xs)[:n], torch.cat(ys)[:n]), batch_size=loader.batch_size or 64)


def _train_rows(b: SpeedBudget) -> list[dict[str, Any]]:
    import robust_prune as rp
    from robust_prune.api import prepare
    from robust_prune.training.adversarial import train

    model, bundle = prepare(b.train_model, "digits")
    loader = _subset_loader(bundle.train, b.train_images)
    cfg = rp.TrainConfig(epochs=1)
    rows, dense_ips = [], None
    for variant in ("dense", "channel", "weight"):
        net = copy.deepcopy(model)
        if variant != "dense":
            rp.prune(net, b.sparsity, structure=variant, image_size=bundle.image_size)
        stats = train(net, loader, config=cfg, eps=bundle.default_eps, progress=False)[-1]
        ips = stats.images / stats.seconds
        dense_ips = ips if variant == "dense" else dense_ips
        rows.append(
            {
                "measure": "train",
                "model": b.train_model,
                "variant": _name(variant, b.sparsity),
                "value": ips,
                "unit": "images/s (PGD-5 AT)",
                "ratio": ips / dense_ips if dense_ips else None,
                "n": stats.images,
                "seconds": stats.seconds,
            }
        )
    return rows


def _name(variant: str, sparsity: float) -> str:
    return "dense" if variant == "dense" else f"{variant} {sparsity:g}"


def _latency_rows(b: SpeedBudget) -> list[dict[str, Any]]:
    import torch

    import robust_prune as rp
    from robust_prune.api import prepare
    from robust_prune.evaluation.measure import count_macs_params

    rows = []
    for name in b.latency_models:
        try:
            dense, bundle = prepare(name, "digits")
            pruned = rp.prune(copy.deepcopy(dense), b.sparsity, structure="channel", image_size=bundle.image_size).model
        except Exception as exc:  # noqa: BLE001 - one family failing must not lose the table
            rows.append({"measure": "latency", "model": name, "variant": "error", "note": str(exc)[:200]})
            continue
        x = torch.rand(b.latency_batch, bundle.channels, bundle.image_size, bundle.image_size)
        dense.eval(), pruned.eval()
        runners = {"dense": functools.partial(dense, x), "pruned": functools.partial(pruned, x)}
        with torch.no_grad():
            ms = interleaved_medians(runners, b.latency_repeats, warmup=2)
        d, p = ms["dense"], ms["pruned"]
        macs_d, _ = count_macs_params(dense, x[:1])
        macs_p, _ = count_macs_params(pruned, x[:1])
        rows.append(
            {
                "measure": "latency",
                "model": name,
                "variant": _name("channel", b.sparsity),
                "value": p,
                "unit": f"ms / batch of {b.latency_batch}",
                "ratio": p / d,
                "macs_ratio": macs_p / macs_d,
                "n": b.latency_repeats,
                "note": f"dense {d:.2f} ms",
            }
        )
    return rows


def _eval_rows(b: SpeedBudget) -> list[dict[str, Any]]:
    import robust_prune as rp

    result = rp.robustify(
        b.train_model, "digits", method="dense", epochs=b.eval_train_epochs, eval_attacks=(), progress=False
    )
    rows = []
    for attack in b.attacks:
        n = b.autoattack_n if attack == "autoattack" else b.eval_n
        try:
            rep = rp.evaluate(result.model, "digits", attacks=(attack,), n=n, latency=False, progress=False)
        except Exception as exc:  # noqa: BLE001
            rows.append({"measure": "eval", "model": b.train_model, "variant": attack, "note": str(exc)[:200]})
            continue
        a = rep.attacks[attack]
        attacked = round(rep.clean_accuracy * rep.n)
        rows.append(
            {
                "measure": "eval",
                "model": b.train_model,
                "variant": attack,
                "value": attacked / a.seconds if a.seconds else None,
                "unit": "attacked points/s",
                "n": attacked,
                "seconds": a.seconds,
                "note": f"{attack} on the clean-correct of {rep.n} points",
            }
        )
    return rows


def _overhead_rows(b: SpeedBudget) -> list[dict[str, Any]]:
    import robust_prune as rp

    start = time.perf_counter()
    result = rp.robustify(
        b.overhead_model,
        "digits",
        method="prune",
        sparsity=b.sparsity,
        epochs=1,
        finetune_epochs=1,
        eval_attacks=("pgd",),
        eval_n=b.eval_n,
        progress=False,
    )
    wall = time.perf_counter() - start
    training = sum(h.seconds for h in result.history)
    evaluation = sum(a.seconds for a in result.report.attacks.values())
    rest = wall - training - evaluation
    base = {"measure": "overhead", "model": b.overhead_model, "unit": "share of wall time", "seconds": None}
    return [
        {
            **base,
            "variant": "beyond training",
            "value": (wall - training) / wall,
            "seconds": wall - training,
            "note": f"wall {wall:.1f} s, training epochs {training:.1f} s",
        },
        {**base, "variant": "  of which attacks (eval)", "value": evaluation / wall, "seconds": evaluation},
        {
            **base,
            "variant": "  of which the rest",
            "value": rest / wall,
            "seconds": rest,
            "note": "data, model creation, pruning, MACs, latency",
        },
    ]


DEPLOY_COLUMNS = ["model", "size", "batch", "method", "flops_ratio", "latency_ratio", "quotient", "goal_met",
                  "ort_latency_ratio", "ort_quotient", "dense_ms", "pruned_ms", "ort_dense_ms", "ort_ms",
                  "channel_ratio", "n", "note"]  # fmt: skip
DEPLOY_HEADERS = ["model", "px", "batch", "pruned by", "FLOPs ratio", "latency ratio", "quotient", "<= goal",
                  "ORT latency ratio", "ORT quotient", "dense ms", "pruned ms", "ORT dense ms", "ORT pruned ms",
                  "channel ratio", "repeats", "note"]  # fmt: skip


_READING = (
    "The FLOPs ratio counts multiply-accumulates (convolutions, linear layers, attention matmuls), which fall with the "
    "square of the width (x0.25 at half the channels). Norms, activations, depthwise convolutions, residual adds "
    "and squeeze-excite gates do no MACs (or, depthwise, MACs linear in the width) and fall with the width (x0.5) "
    "at best; at batch 1 every layer also costs a fixed per-call overhead that does not fall at all. A model "
    "whose dense time sits in those kinds cannot reach a quotient near 1 by removing channels; onnxruntime folds "
    "norms into convolutions and fuses activations, which is why its quotient is lower for such models. Each "
    "table: the kind's share of the dense model's time, and the pruned model's time and MACs for that kind over "
    "the dense model's (medians of interleaved rounds at the largest batch; hook timing adds a little per layer)."
)


def _why_sections(why: dict[str, Any], goal: float) -> list[tuple[str, str]]:
    from benchmarks._common import markdown_table

    sections = [("Reading the why tables", _READING)] if why else []
    for model, by_method in why.items():
        parts = []
        for method, kinds in by_method.items():
            if method not in ("robust_prune", "torch-pruning"):  # the JSON keeps every variant's profile
                continue
            headers = ["layer kind", "share of dense time", "time ratio", "MACs ratio"]
            table = markdown_table(kinds, ["kind", "dense_share", "time_ratio", "macs_ratio"], headers)
            parts += [f"**{method}** against dense (eager torch, largest batch):", "", table, ""]
        sections.append((f"Why {model} misses quotient {goal:g}", "\n".join(parts)))
    return sections


def run_deploy(budget: Any, *, out_dir: str | os.PathLike[str] | None = None, quick: bool = False,
               threads: int | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Run the deployment measurement (``benchmarks/_deploy.py``) and write ``speed_deploy.json`` / ``.md``."""
    import dataclasses

    from benchmarks._common import write_results
    from benchmarks._deploy import deploy_rows

    set_threads(threads)
    start = time.perf_counter()
    rows, why = deploy_rows(budget)
    wall = time.perf_counter() - start
    ours = [r for r in rows if r["method"] == "robust_prune" and r.get("quotient") is not None]
    summary = {
        "goal": f"quotient <= {budget.goal:g} (latency ratio / FLOPs ratio, eager torch, one thread)",
        "robust_prune rows meeting it (eager)": f"{sum(r['goal_met'] for r in ours)} of {len(ours)}",
        "robust_prune rows meeting it (onnxruntime)": (
            f"{sum(r.get('ort_quotient', 9) <= budget.goal for r in ours)} of {len(ours)}"
        ),
        "torch-pruning rows meeting it (eager)": (
            f"{sum(r.get('goal_met', False) for r in rows if r['method'] == 'torch-pruning')} of "
            f"{sum(r['method'] == 'torch-pruning' for r in rows)} (the rest fail or miss)"
        ),
        "wall time": f"{wall:.0f} s",
    }
    write_results("speed_deploy", rows, title="Speed where users deploy: robust_prune against raw torch-pruning",
                  columns=DEPLOY_COLUMNS, headers=DEPLOY_HEADERS, summary=summary,
                  settings={"quick": quick, **dataclasses.asdict(budget)}, sections=_why_sections(why, budget.goal),
                  out_dir=out_dir, extra={"why": why, "wall_s": wall})  # fmt: skip
    return rows


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="the small budget (a few minutes on 2 CPU cores)")
    parser.add_argument("--deploy", action="store_true", help="robust_prune against raw torch-pruning at native "
                        "resolution, eager and onnxruntime (speed_deploy.json/.md; needs robust-prune[export])")
    parser.add_argument("--only", default=None, help="comma-separated subset of train,latency,eval,overhead (with "
                        "--deploy: of the models)")  # fmt: skip
    parser.add_argument("--out-dir", default=None, help="results folder (default benchmarks/results)")
    add_threads_argument(parser)
    # issue 16: the training loop against plain torch, 2 processes, bf16 (benchmarks/_throughput.py)
    parser.add_argument("--throughput", action="store_true",
                        help="measure only the throughput ratios (library/plain PGD-AT, 2 processes, bf16/fp32)")


def main(args: argparse.Namespace) -> int:
    if getattr(args, "throughput", False):  # issue 16: its own results file, throughput.{json,md}
        from benchmarks._throughput import run_throughput

        run_throughput(quick=args.quick, out_dir=args.out_dir, threads=args.threads)
        return 0
    if args.deploy:
        from benchmarks._deploy import DEPLOY, DEPLOY_QUICK

        budget = DEPLOY_QUICK if args.quick else DEPLOY
        if args.only:
            budget = dataclasses.replace(budget, models=tuple(args.only.split(",")))
        run_deploy(budget, out_dir=args.out_dir, quick=args.quick, threads=args.threads)
        return 0
    run_speed(
        QUICK if args.quick else FULL,
        only=args.only.split(",") if args.only else None,
        out_dir=args.out_dir,
        quick=args.quick,
        threads=args.threads,
    )
    return 0


def run_speed(
    budget: SpeedBudget,
    *,
    only: list[str] | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    quick: bool = False,
    threads: int | None = None,
) -> list[dict[str, Any]]:
    """Run the measurements (all, or ``only`` those named) and write ``speed.json`` / ``speed.md``."""
    import dataclasses

    import torch

    from benchmarks._common import write_results

    set_threads(threads)
    parts = {"train": _train_rows, "latency": _latency_rows, "eval": _eval_rows, "overhead": _overhead_rows}
    rows: list[dict[str, Any]] = []
    settings = {"quick": quick, **dataclasses.asdict(budget)}
    for name, fn in parts.items():
        if only is None or name in only:
            torch.manual_seed(0)
            rows += fn(budget)
            write_results(  # after each part, so an interrupted run keeps what it measured
                "speed",
                rows,
                title="Speed: training, inference, evaluation and overhead",
                columns=COLUMNS,
                headers=HEADERS,
                settings=settings,
                out_dir=out_dir,
            )
    return rows
