"""``python -m benchmarks zoo --all-families``: one representative per timm model module, both structures.

The representative of a module is its smallest registered model by parameter count (counted on the meta
device, so nothing is allocated), created with ``pretrained=False`` and 10 classes, at the smallest input of
32, 64, 128, 224 pixels or its own size that it runs at (with ``img_size`` set to it where the model takes one). For
``structure="channel"`` (50% of channels) and ``structure="weight"`` (50% of weights) each gets one state:

- **works**: prune succeeded; forward runs with the dense output shape; MACs and parameters fall (channel) or
  the nonzero weights fall (weight); rebuilding from the JSON round-tripped record (plus the state dict) gives
  the same outputs (to 1e-5; most rows are bit-identical, see ``rebuild_max_diff``); one PGD adversarial
  training step gives a finite loss.
- **refused**: prune raised a robust_prune error and the model is byte-identical to before.
- **failed**: prune returned but a check above failed (or a refusal left the model changed).
- **crashed**: a foreign (non-robust_prune) exception, or the per-model time limit ran out.

Each (module, structure) result is appended to a progress file as soon as it is known, so an interrupted
run resumes where it stopped (``--resume``); ``--redo`` reruns chosen modules. Results:
``benchmarks/results/zoo_all.json`` and ``zoo_all.md``.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import math
import time
import warnings
from pathlib import Path
from typing import Any

STATES = ("works", "refused", "failed", "crashed")
STRUCTURES = ("channel", "weight")
SIZES = (32, 64, 128, 224)
REBUILD_TOLERANCE = 1e-5
COLUMNS = ["module", "model", "input", "structure", "state", "step", "macs_ratio", "params_ratio", "prune_s", "reason"]
HEADERS = [
    "timm module",
    "representative",
    "input",
    "structure",
    "state",
    "failed step",
    "MACs ratio",
    "params ratio",
    "prune time (s)",
    "reason",
]


def representatives() -> dict[str, str]:
    """``{timm module: its smallest registered model}``, parameters counted on the meta device."""
    import timm
    import torch

    reps: dict[str, str] = {}
    for module in sorted(timm.list_modules()):
        best: tuple[int, str] | None = None
        for name in timm.list_models(module=module):
            try:
                with torch.device("meta"), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model = timm.create_model(name, pretrained=False)
            except Exception:  # a model timm cannot build without its weights or extra packages: not a candidate
                continue
            count = sum(p.numel() for p in model.parameters())
            if best is None or (count, name) < best:
                best = (count, name)
        if best is not None:
            reps[module] = best[1]
    return reps


def small_model(name: str) -> tuple[Any, dict[str, Any], tuple[int, int]]:
    """The model at the smallest input it runs at: ``(model, create_model kwargs, (height, width))``."""
    import timm
    import torch

    from robust_prune.adapter_api import get_adapter
    from robust_prune.models import create_model

    last: Exception | None = None
    native = (timm.get_pretrained_cfg_value(name, "input_size") or (3, 224, 224))[-1]
    for size in sorted({*SIZES, int(native)}):
        for kwargs in ({"img_size": size}, {}):
            try:
                torch.manual_seed(0)
                model = create_model(name, num_classes=10, **kwargs).eval()
                adapter = get_adapter(model, warn=False)
                hw = adapter.fixed_input_size(model) or (size, size)
                with torch.no_grad():
                    model(torch.rand(1, adapter.in_chans(model), *hw))
                return model, kwargs, hw
            except Exception as exc:  # the time bound (OutOfTime) is a BaseException: it passes
                last = exc
    raise RuntimeError(f"no input size in {SIZES} runs: {type(last).__name__}: {last}")


def _same_state(a: dict[str, Any], b: dict[str, Any]) -> bool:
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def check_module(module: str, name: str, structure: str, *, sparsity: float = 0.5) -> dict[str, Any]:
    """Every step for one representative and structure; the row (never raises except on the time limit)."""
    import torch

    import robust_prune as rp
    from robust_prune.config import AttackConfig
    from robust_prune.errors import RobustPruneError
    from robust_prune.models import NormalizedModel
    from robust_prune.pruning import PruningRecord
    from robust_prune.pruning.masks import folded_state
    from robust_prune.training.adversarial import train_one_batch

    row: dict[str, Any] = {
        "module": module,
        "model": name,
        "structure": structure,
        "state": "crashed",
        "step": None,
        "reason": "",
        "macs_ratio": None,
        "params_ratio": None,
        "prune_s": None,
    }
    step = "create"
    try:
        model, kwargs, hw = small_model(name)
        row.update(kwargs=kwargs, input=f"{hw[0]}x{hw[1]}")
        x = torch.rand(2, int(rp.get_adapter(model, warn=False).in_chans(model)), *hw)
        with torch.no_grad():
            y_dense = model(x)
        before = copy.deepcopy(model.state_dict())
        step = "prune"
        t0 = time.perf_counter()
        try:
            _, record = rp.prune(model, sparsity, structure=structure, image_size=hw[0])
        except RobustPruneError as exc:
            row["prune_s"] = round(time.perf_counter() - t0, 2)
            untouched = _same_state(before, model.state_dict())
            row.update(
                state="refused" if untouched else "failed",
                step="prune",
                untouched=untouched,
                error=type(exc).__name__,
                reason=str(exc)[:400],
            )
            return row
        row["prune_s"] = round(time.perf_counter() - t0, 2)
        checks: dict[str, bool] = {}
        step = "forward"
        model.eval()
        with torch.no_grad():
            y = model(x)
        checks["shape"] = tuple(y.shape) == tuple(y_dense.shape)
        stats = record.stats
        if structure == "channel":
            row["macs_ratio"], row["params_ratio"] = round(stats["macs_ratio"], 4), round(stats["params_ratio"], 4)
            checks["smaller"] = stats["macs_ratio"] < 1 and stats["params_ratio"] < 1
        else:
            row["params_ratio"] = round(stats["params_nonzero"] / stats["params"], 4)
            checks["smaller"] = stats["params_nonzero"] < stats["params"]
        step = "rebuild"
        again = PruningRecord.from_dict(json.loads(json.dumps(record.to_dict())), masks=record.masks)
        rebuilt = again.build()
        state = model.state_dict() if structure == "channel" else folded_state(model.state_dict())[0]
        rebuilt.load_state_dict(state, strict=True)
        with torch.no_grad():
            diff = float((rebuilt.eval()(x) - y).abs().max())
        # the same weights; a masked layer computes with a freshly multiplied weight, which some kernels sum in
        # another order (DaViT: 3e-7), so "identical" allows float rounding
        row["rebuild_max_diff"] = diff
        checks["rebuild"] = diff <= REBUILD_TOLERANCE
        step = "adversarial step"
        loss = train_one_batch(
            NormalizedModel.from_timm(model), x, torch.arange(2) % 10, attack=AttackConfig(eps=0.03, steps=2), lr=0.01
        )
        checks["adversarial_step"] = math.isfinite(loss)
        failed = [k for k, ok in checks.items() if not ok]
        row.update(state="failed" if failed else "works", step=", ".join(failed) or None, checks=checks)
    except RobustPruneError as exc:  # after pruning succeeded: the model it returned does not hold up
        row.update(state="failed", step=step, error=type(exc).__name__, reason=str(exc)[:400])
    except Exception as exc:
        row.update(state="crashed", step=step, error=type(exc).__name__, reason=f"{type(exc).__name__}: {exc}"[:400])
    return row


def _load_progress(path: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """Finished rows by (module, structure). A row that was started but never finished killed the process (the
    kernel's out-of-memory killer, a segfault): it is recorded as crashed instead of being tried again."""
    done: dict[tuple[str, str], dict[str, Any]] = {}
    started: dict[tuple[str, str], dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a kill
                continue
            key = (row["module"], row["structure"])
            if row.get("started"):
                started[key] = row
            else:
                done[key] = row
                started.pop(key, None)
    for key, row in started.items():
        done[key] = {"module": key[0], "model": row.get("model"), "structure": key[1], "state": "crashed",
                     "step": "process killed", "reason": "the process running it was killed (out of memory?)",
                     "commit": row.get("commit")}  # fmt: skip
    return done


def summarise(rows: list[dict[str, Any]], modules: int) -> dict[str, Any]:
    """Modules per state and structure, as fractions of all the modules asked for (rows not run yet say so)."""
    summary: dict[str, Any] = {"timm model modules": modules}
    for structure in STRUCTURES:
        mine = [r for r in rows if r["structure"] == structure]
        counts = {state: sum(r["state"] == state for r in mine) for state in STATES}
        counts["works or refused"] = counts["works"] + counts["refused"]
        counts["not run"] = modules - len(mine)
        for state, n in counts.items():
            if state != "not run" or n:
                summary[f"{structure}: {state}"] = f"{n} / {modules} ({100.0 * n / max(modules, 1):.1f}%)"
    return summary


def main(args: argparse.Namespace) -> int:
    import torch

    from ._common import RESULTS_DIR, write_results

    torch.set_num_threads(1)
    out = Path(args.out) if args.out else RESULTS_DIR
    name = args.name if args.name != "zoo" else "zoo_all"
    progress = Path(args.progress) if args.progress else Path("runs") / f"{name}_progress.jsonl"
    progress.parent.mkdir(parents=True, exist_ok=True)
    done = _load_progress(progress) if args.resume else {}
    if not args.resume:
        progress.write_text("")
    reps_key = ("__representatives__", "")
    if reps_key in done:
        reps = done[reps_key]["reps"]
    else:
        reps = representatives()
        with progress.open("a") as f:
            f.write(json.dumps({"module": reps_key[0], "structure": "", "reps": reps}) + "\n")
    only = {s.strip() for s in args.models.split(",")} if args.models else None
    redo = {s.strip() for s in args.redo.split(",")} if args.redo else set()
    from robust_prune.pruning.guard import OutOfTime, time_bound

    from ._common import environment

    commit = environment()["git_commit"]
    t_start = time.perf_counter()
    todo = [(m, n) for m, n in sorted(reps.items()) if only is None or m in only or n in only]
    structures = [s for s in STRUCTURES if s in (getattr(args, "structures", None) or ",".join(STRUCTURES)).split(",")]
    # every module's channel row first, then the weight rows: the harder structure's table fills first
    for structure in structures:
        for i, (module, model_name) in enumerate(todo, 1):
            if (module, structure) in done and module not in redo:
                continue
            with progress.open("a") as f:
                f.write(json.dumps({"module": module, "model": model_name, "structure": structure,
                                    "started": True, "commit": commit}) + "\n")  # fmt: skip
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    with time_bound(args.timeout):
                        row = check_module(module, model_name, structure, sparsity=args.sparsity)
                except OutOfTime:
                    row = {
                        "module": module,
                        "model": model_name,
                        "structure": structure,
                        "state": "crashed",
                        "step": "time limit",
                        "reason": f"not finished within {args.timeout} s",
                    }
            row["wall_s"] = round(time.perf_counter() - t0, 1)
            row["commit"] = commit
            done[(module, structure)] = row
            with progress.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(
                f"[{i}/{len(todo)}] {module:28s} {model_name:36s} {structure:7s} {row['state']:8s} "
                f"{row['wall_s']:6.1f}s {str(row.get('reason', ''))[:90]}",
                flush=True,
            )
            gc.collect()
    rows = [done[(m, s)] for m, _ in todo for s in STRUCTURES if (m, s) in done]
    summary = summarise(rows, len(todo))
    settings = {
        "sparsity": args.sparsity,
        "representative": "smallest registered model of each timm module by parameter count, pretrained=False, "
        "10 classes, smallest input of 32/64/128/224 px or its native size that it runs at",
        "time limit": f"{args.timeout} s per module and structure (SIGALRM; pruning itself is bounded by "
        "robust_prune.config.PRUNE_TIME_LIMIT_S)",
        "adversarial step": "PGD-AT, eps 0.03, 2 steps, SGD lr 0.01, batch 2",
        "rebuild": f"JSON round-tripped record + state dict (masks folded for weight); max |difference| <= "
        f"{REBUILD_TOLERANCE:g} (per row: rebuild_max_diff)",
        "commits": sorted({str(r.get("commit")) for r in rows}),
        "total_wall_s (this invocation)": round(time.perf_counter() - t_start, 1),
        "total_wall_s (sum over rows)": round(sum(float(r.get("wall_s") or 0) for r in rows), 1),
    }
    json_path, md_path = write_results(
        name,
        rows,
        title="All of timm: one representative per model module, channel and weight pruning at 50%",
        columns=COLUMNS,
        headers=HEADERS,
        settings=settings,
        summary=summary,
        out_dir=out,
    )
    print("\n".join(f"{k}: {v}" for k, v in summary.items()))
    print(f"wrote {json_path} and {md_path}")
    return 0
