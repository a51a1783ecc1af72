"""``python -m benchmarks zoo``: can every timm family be channel-pruned, rebuilt and trained?

For each adapter's example models (``Adapter.examples``: the smallest member of each family at a small
input size), with a time limit per model (so a hang costs one row, not the run; ``--isolate`` runs each
model in its own subprocess, which also survives crashes):

1. create the model with ``robust_prune.models.create_model`` (10 classes);
2. ``robust_prune.prune(model, sparsity)`` (channel structure) and time it;
3. check the forward pass, the output shape, that MACs and parameters fall;
4. rebuild from a fresh timm model plus the JSON round-tripped record, load the state dict strictly and
   compare outputs (``torch.equal``);
5. measure CPU latency of the pruned vs the dense model (interleaved repeats, medians, one thread);
6. take one PGD adversarial training step (``robust_prune.training.adversarial.train_one_batch``): finite loss.

A family passes when every one of its example models passes every step. Results:
``benchmarks/results/zoo.json`` and ``zoo.md``.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import math
import os
import statistics
import subprocess
import sys
import time
import warnings
from typing import Any

# Families named in the coverage requirement, in table order, with the members they include.
FAMILIES: dict[str, str] = {
    "resnet": "resnet, resnext, seresnext, wide_resnet, resnest, res2net, skresnet",
    "vgg": "vgg",
    "densenet": "densenet",
    "dpn": "dpn",
    "convnext": "convnext, convnextv2",
    "efficientnet": "efficientnet, mobilenetv2, mobilenetv3, mobilenetv4, mnasnet, tinynet, lcnet, hardcorenas",
    "ghostnet": "ghostnet, ghostnetv2",
    "regnet": "regnet",
    "rexnet": "rexnet",
    "vision_transformer": "vit, deit, deit3",
    "beit": "beit",
    "eva": "eva, eva02",
    "cait": "cait",
    "swin": "swin, swinv2",
    "mlp_mixer": "mixer, resmlp",
    "levit": "levit",
    "efficientformer": "efficientformer, efficientformerv2",
    "metaformer": "poolformer, convformer, caformer",
    "mobilevit": "mobilevit, mobilevitv2",
    "edgenext": "edgenext",
    "fastvit": "fastvit",
    "byobnet": "repvgg, byobnet (gernet, resnext-ts, ...)",
    "cspnet": "cspnet (cspresnet, cspdarknet, cs3)",
    "dla": "dla",
    "hrnet": "hrnet",
    "inception_v3": "inception_v3",
    "maxxvit": "coatnet, maxvit",
    "test_*": "timm's tiny test_* models",
}

COLUMNS = [
    "family", "variant", "id", "adapter", "status", "reason",
    "macs_ratio", "params_ratio", "latency_ratio", "prune_s",
]
HEADERS = [
    "family", "member", "model (timm arguments)", "adapter", "status", "reason",
    "MACs ratio", "params ratio", "latency ratio", "prune time (s)",
]
_MARK = "ZOO-RESULT "


def _examples(quick: bool, only: list[str] | None) -> list[tuple[str, Any]]:
    from robust_prune.adapter_api import adapter_by_name, list_adapters

    out = []
    for name in list_adapters():
        for ex in adapter_by_name(name).examples:
            if only is not None:
                if ex.model in only or ex.id in only or ex.family in only or name in only:
                    out.append((name, ex))
            elif ex.quick or not quick:
                out.append((name, ex))
    order = {f: i for i, f in enumerate(FAMILIES)}
    return sorted(out, key=lambda item: (order.get(item[1].family, len(order)), item[1].label, item[1].id))


def _find(example_id: str) -> tuple[str, Any]:
    for name, ex in _examples(quick=False, only=None):
        if ex.id == example_id:
            return name, ex
    raise SystemExit(f"No adapter example with id {example_id!r}.")


def _median_latency(dense: Any, pruned: Any, x: Any, repeats: int) -> tuple[float, float]:
    """Median seconds of one forward pass of each model (interleaved repeats after 2 warm-ups)."""
    import torch

    from ._common import interleaved_medians

    runners = {"dense": functools.partial(dense, x), "pruned": functools.partial(pruned, x)}
    with torch.no_grad():
        ms = interleaved_medians(runners, repeats, warmup=2)
    return ms["dense"] / 1000, ms["pruned"] / 1000


def check_example(
    example: Any,
    *,
    sparsity: float = 0.5,
    latency: bool = True,
    latency_batch: int = 4,
    latency_size: int = 64,
    repeats: int = 15,
) -> dict[str, Any]:
    """Run every zoo step on one example model; return its table row (never raises)."""
    import torch

    import robust_prune as rp
    from robust_prune.adapter_api import get_adapter
    from robust_prune.config import AttackConfig
    from robust_prune.errors import UnsupportedArchitectureError
    from robust_prune.models import NormalizedModel, create_model
    from robust_prune.pruning import PruningRecord, rebuild_model
    from robust_prune.training.adversarial import train_one_batch

    row: dict[str, Any] = {
        "family": example.family, "variant": example.label, "model": example.model, "id": example.id, "adapter": None,
        "status": "fail", "reason": "", "macs_ratio": None, "params_ratio": None, "latency_ratio": None,
        "prune_s": None, "steps": {},
    }
    steps = row["steps"]
    step = "create"
    try:
        torch.manual_seed(0)
        model = create_model(example.model, num_classes=10, **example.kwargs).eval()
        adapter = get_adapter(model, warn=False)
        row["adapter"] = adapter.name
        size = adapter.fixed_input_size(model) or (example.image_size, example.image_size)
        x = torch.rand(2, adapter.in_chans(model), *size)
        with torch.no_grad():
            y_dense = model(x)
        dense = copy.deepcopy(model)

        step = "prune"
        t0 = time.perf_counter()
        try:
            _, record = rp.prune(model, sparsity, image_size=example.image_size)
        except UnsupportedArchitectureError as exc:
            row.update(status="unsupported", reason=str(exc.reason))
            return row
        row["prune_s"] = round(time.perf_counter() - t0, 2)
        steps["prune"] = True

        step = "forward"
        model.eval()
        with torch.no_grad():
            y = model(x)
        steps["forward"] = True
        steps["shape"] = tuple(y.shape) == tuple(y_dense.shape)
        row["macs_ratio"] = round(record.stats["macs_ratio"], 4)
        row["params_ratio"] = round(record.stats["params_ratio"], 4)
        steps["macs"] = record.stats["macs_ratio"] < 1.0
        steps["params"] = record.stats["params_ratio"] < 1.0

        step = "rebuild"
        again = PruningRecord.from_dict(json.loads(json.dumps(record.to_dict())))
        rebuilt = rebuild_model(again)
        rebuilt.load_state_dict(model.state_dict(), strict=True)
        rebuilt.eval()
        with torch.no_grad():
            y_rebuilt = rebuilt(x)
        steps["rebuild"] = bool(torch.equal(y, y_rebuilt))
        if not steps["rebuild"]:
            row["rebuild_max_diff"] = float((y - y_rebuilt).abs().max())

        if latency:
            step = "latency"
            side = max(latency_size, example.image_size)  # some models need more than the default (inception)
            lsize = adapter.fixed_input_size(model) or (side, side)
            lx = torch.rand(latency_batch, adapter.in_chans(model), *lsize)
            t_dense, t_pruned = _median_latency(dense.eval(), model.eval(), lx, repeats)
            row["latency_ratio"] = round(t_pruned / t_dense, 4)
            row["latency_dense_ms"] = round(1000 * t_dense, 3)
            row["latency_pruned_ms"] = round(1000 * t_pruned, 3)
            row["latency_input"] = [latency_batch, adapter.in_chans(model), *lsize]

        step = "adversarial step"
        labels = torch.arange(x.shape[0]) % 10
        loss = train_one_batch(
            NormalizedModel.from_timm(model), x, labels, attack=AttackConfig(eps=0.03, steps=2), lr=0.01
        )
        steps["adversarial_step"] = math.isfinite(loss)
        row["loss"] = round(loss, 4)
    except Exception as exc:  # a row, not a crash: the table says which step broke and why
        steps[step.replace(" ", "_")] = False
        row["reason"] = f"{step}: {type(exc).__name__}: {exc}"[:300]
        return row
    failed = [k for k, ok in steps.items() if not ok]
    if failed:
        row["reason"] = "failed: " + ", ".join(failed)
    else:
        row["status"] = "pass"
    return row


def _run_one_in_process(example: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Run one example here, in bounded time where the platform allows it (a hang costs one row)."""
    import torch

    from robust_prune.pruning.guard import OutOfTime, time_bound

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with warnings.catch_warnings(), time_bound(args.timeout):
            warnings.simplefilter("ignore")
            return check_example(
                example, sparsity=args.sparsity, latency=not args.no_latency, latency_batch=args.latency_batch,
                latency_size=args.latency_size, repeats=args.repeats,
            )
    except OutOfTime:
        return {"status": "fail", "reason": f"timed out after {args.timeout} s"}
    finally:
        torch.set_num_threads(threads)


def _run_one_subprocess(model: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [
        sys.executable, "-m", "benchmarks.zoo", "--worker", model, "--sparsity", str(args.sparsity),
        "--latency-batch", str(args.latency_batch), "--latency-size", str(args.latency_size),
        "--repeats", str(args.repeats),
    ]
    if args.no_latency:
        cmd.append("--no-latency")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, cwd=root)
    except subprocess.TimeoutExpired:
        return {"status": "fail", "reason": f"timed out after {args.timeout} s"}
    for line in out.stdout.splitlines():
        if line.startswith(_MARK):
            return json.loads(line[len(_MARK):])
    tail = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["no output"]
    return {"status": "fail", "reason": f"worker exited with {out.returncode}: {tail[0][:200]}"}


def summarise(rows: list[dict[str, Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Coverage over the required families and one summary row per family."""
    per_family = []
    for family, members in FAMILIES.items():
        mine = [r for r in rows if r["family"] == family]
        passed = [r for r in mine if r["status"] == "pass"]
        lat = [r["latency_ratio"] for r in passed if r.get("latency_ratio") is not None]
        macs = [r["macs_ratio"] for r in passed if r.get("macs_ratio") is not None]
        per_family.append({
            "family": family, "members": members, "models": len(mine), "passed": len(passed),
            "status": "pass" if mine and len(passed) == len(mine) else ("not run" if not mine else "fail"),
            "median_macs_ratio": statistics.median(macs) if macs else None,
            "median_latency_ratio": statistics.median(lat) if lat else None,
        })
    run = [f for f in per_family if f["status"] != "not run"]
    families_passing = sum(f["status"] == "pass" for f in run)
    summary = {
        "families passing": f"{families_passing} / {len(run)}",
        "family coverage": f"{100.0 * families_passing / max(len(run), 1):.1f}%",
        "models passing": f"{sum(r['status'] == 'pass' for r in rows)} / {len(rows)}",
    }
    return summary, per_family


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="only the quick subset (the models the tests use)")
    parser.add_argument("--models", default=None, help="comma-separated models, families or adapters to run")
    parser.add_argument("--sparsity", type=float, default=0.5, help="channel sparsity (default 0.5)")
    parser.add_argument("--latency-batch", type=int, default=4, help="batch size for timing (default 4)")
    parser.add_argument("--latency-size", type=int, default=64,
                        help="input size for timing models without a fixed size (default 64)")
    parser.add_argument("--repeats", type=int, default=15, help="interleaved timing repeats (default 15)")
    parser.add_argument("--no-latency", action="store_true", help="skip the latency measurement")
    parser.add_argument("--timeout", type=int, default=240, help="seconds per model before it counts as failed")
    parser.add_argument("--isolate", action="store_true",
                        help="run each model in its own subprocess (slower; survives crashes, not just hangs)")
    parser.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    parser.add_argument("--name", default="zoo", help="results file stem (default zoo; zoo_all with --all-families)")
    parser.add_argument("--all-families", action="store_true",
                        help="one representative per timm model module, channel and weight (benchmarks/zoo_all.py)")
    parser.add_argument("--resume", action="store_true", help="--all-families: continue from the progress file")
    parser.add_argument("--redo", default=None, help="--all-families: comma-separated modules to run again")
    parser.add_argument("--structures", default="channel,weight",
                        help="--all-families: which structures to run (another process can run the other one)")
    parser.add_argument("--progress", default=None,
                        help="--all-families: progress file (default runs/zoo_all_progress.jsonl)")


def main(args: argparse.Namespace) -> int:
    from ._common import write_results

    if getattr(args, "all_families", False):
        from . import zoo_all

        return zoo_all.main(args)

    only = [s.strip() for s in args.models.split(",")] if args.models else None
    todo = _examples(args.quick, only)
    rows = []
    t_start = time.perf_counter()
    for i, (adapter, ex) in enumerate(todo, 1):
        t0 = time.perf_counter()
        result = _run_one_subprocess(ex.id, args) if args.isolate else _run_one_in_process(ex, args)
        row = {
            "family": ex.family, "variant": ex.label, "model": ex.model, "adapter": adapter,
            "status": "fail", "reason": "", "macs_ratio": None, "params_ratio": None,
            "latency_ratio": None, "prune_s": None,
        }
        row.update(result)
        row["id"] = ex.id
        row["kwargs"] = dict(ex.kwargs)
        row["image_size"] = ex.image_size
        row["wall_s"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
        print(f"[{i}/{len(todo)}] {ex.family:18s} {ex.id:50s} {row['status']:11s} "
              f"macs={row['macs_ratio']} lat={row['latency_ratio']} {row['reason'][:80]}", flush=True)
    summary, per_family = summarise(rows)
    settings = {
        "sparsity": args.sparsity,
        "subset": "quick" if args.quick else ("selected" if only else "full"),
        "classes": 10,
        "latency": "skipped" if args.no_latency else (
            f"batch {args.latency_batch}, {args.latency_size}x{args.latency_size} input "
            "(the model's own size where it is fixed), 1 thread, median of "
            f"{args.repeats} interleaved repeats after 2 warm-ups; ratio = pruned / dense"),
        "adversarial step": "PGD-AT, eps 0.03, 2 steps, SGD lr 0.01, batch 2",
        "rebuild": "fresh timm model + JSON round-tripped record, load_state_dict(strict=True), torch.equal",
        "timeout_s": args.timeout,
        "isolation": "one subprocess per model" if args.isolate else "in process, SIGALRM time limit per model",
        "total_wall_s": round(time.perf_counter() - t_start, 1),
    }
    from ._common import markdown_table

    family_table = markdown_table(
        per_family,
        ["family", "members", "models", "passed", "status", "median_macs_ratio", "median_latency_ratio"],
        ["family", "members", "models", "passed", "status", "median MACs ratio", "median latency ratio"],
    )
    json_path, md_path = write_results(
        args.name, rows, title="Zoo coverage: channel pruning at 50% across timm families",
        columns=COLUMNS, headers=HEADERS, settings=settings, summary=summary,
        sections=[("Families", family_table)], out_dir=args.out,
    )
    print(f"{summary['families passing']} families pass ({summary['family coverage']}); "
          f"wrote {json_path} and {md_path}")
    return 0


def _worker(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", required=True)
    add_arguments(parser)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    _, ex = _find(args.worker)
    row = check_example(
        ex, sparsity=args.sparsity, latency=not args.no_latency, latency_batch=args.latency_batch,
        latency_size=args.latency_size, repeats=args.repeats,
    )
    print(_MARK + json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1:]))
