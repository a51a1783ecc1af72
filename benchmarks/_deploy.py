"""``python -m benchmarks speed --deploy``: do pruned models run as fast as their FLOPs say, where users deploy?

For each model at its native resolution: the dense timm model, robust_prune's channel pruning (the defaults:
kept widths rounded to multiples of 8, whole attention heads), robust_prune as it pruned before issue 15
(``round_to=1, attention="head_dim"``, to show what the defaults buy) and raw torch-pruning with generic settings
(``MagnitudePruner``, only the classifier ignored), all pruned to the same sparsity in the same run. Reported per
batch size: FLOPs ratio, latency ratio (eager torch, one thread) and their quotient (latency ratio / FLOPs ratio:
1.00 means the FLOPs cut is fully paid back in time), and the same through onnxruntime (one thread). Timings are
medians of repeats interleaved over the variants, so load changes on a shared machine hit all alike. Where the
quotient misses the goal, a per-layer-kind profile (``_layer_kinds``) says where the time went.
"""

from __future__ import annotations

import copy
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks._common import interleaved_medians

__all__ = ["DeployBudget", "DEPLOY", "DEPLOY_QUICK", "METHODS", "deploy_rows"]

EXACT = "robust_prune round_to=1 head_dim"
METHODS = ("robust_prune", EXACT, "torch-pruning")


@dataclass(frozen=True)
class DeployBudget:
    """Sizes of the deployment measurement."""

    models: tuple[str, ...] = (
        "resnet50",
        "convnext_tiny",
        "vit_small_patch16_224",
        "mobilenetv3_large_100",
        "efficientnet_b0",
        "swin_tiny_patch4_window7_224",
    )
    sparsity: float = 0.5
    batches: tuple[int, ...] = (1, 16)
    repeats: tuple[int, ...] = (15, 5)  # per batch size
    goal: float = 1.15
    onnx: bool = True
    profile_rounds: int = 3  # per-layer-kind profile where the goal is missed: interleaved rounds, medians
    image_size: int | None = None  # None: each model's native resolution


DEPLOY = DeployBudget()
DEPLOY_QUICK = DeployBudget(models=("test_resnet", "test_vit"), batches=(1, 4), repeats=(5, 3), profile_rounds=1)


def _raw_torch_pruning(model: Any, example: Any, sparsity: float) -> Any:
    """torch-pruning as its README shows it: magnitude importance, the classifier ignored, nothing else."""
    import torch_pruning as tp

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pruner = tp.pruner.MagnitudePruner(
            model,
            example,
            importance=tp.importance.GroupMagnitudeImportance(p=2),
            pruning_ratio=sparsity,
            ignored_layers=[model.get_classifier()],
            in_channel_groups={},  # torch-pruning's shared mutable defaults (FIELD-NOTES)
            out_channel_groups={},
        )
        pruner.step()
    return model


def _variants(name: str, b: DeployBudget, size: int) -> tuple[dict[str, Any], dict[str, str]]:
    import torch

    import robust_prune as rp
    from robust_prune.models import create_model

    torch.manual_seed(0)
    dense = create_model(name).eval()
    example = torch.rand(1, 3, size, size)
    expected = dense(example).shape
    models, errors = {"dense": dense}, {}
    makers: dict[str, Callable[[Any], Any]] = {
        "robust_prune": lambda m: rp.prune(m, b.sparsity, image_size=size).model,
        # what robust_prune did before issue 15: exact fractions, every head narrowed
        EXACT: lambda m: rp.prune(m, b.sparsity, image_size=size, round_to=1, attention="head_dim").model,
        "torch-pruning": lambda m: _raw_torch_pruning(m, example, b.sparsity),
    }
    for label, make in makers.items():
        try:
            with torch.enable_grad():
                pruned = make(copy.deepcopy(dense)).eval()
            with torch.no_grad():
                if pruned(example).shape != expected:
                    raise RuntimeError("the output shape changed")
            models[label] = pruned
        except Exception as exc:  # noqa: BLE001 - a failure is a result of the comparison
            errors[label] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    return models, errors


def _ort_session(model: Any, size: int, folder: Path, label: str) -> Any:
    import onnxruntime as ort

    from robust_prune.publishing.export import export_onnx

    path = export_onnx(model, folder / f"{label}.onnx", image_size=size)
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _median_profile(runs: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    kinds = {k for r in runs for k in r}
    return {k: {"ms": statistics.median(r.get(k, {"ms": 0.0})["ms"] for r in runs),
                "macs": runs[-1].get(k, {"macs": 0.0})["macs"]} for k in kinds}  # fmt: skip


def _why(profiles: dict[str, dict[str, dict[str, float]]], label: str) -> list[dict[str, Any]]:
    """Per layer kind: share of the dense time, time ratio and MACs ratio of ``label`` against dense."""
    dense, pruned = profiles["dense"], profiles[label]
    total = sum(v["ms"] for v in dense.values()) or 1.0
    rows = []
    for kind in sorted(dense, key=lambda k: -dense[k]["ms"]):
        d, p = dense[kind], pruned.get(kind, {"ms": 0.0, "macs": 0.0})
        if d["ms"] / total < 0.02:
            continue
        rows.append({"kind": kind, "dense_share": d["ms"] / total, "time_ratio": p["ms"] / d["ms"] if d["ms"] else None,
                     "macs_ratio": p["macs"] / d["macs"] if d["macs"] else None})  # fmt: skip
    return rows


def deploy_rows(b: DeployBudget, *, progress: Callable[[str], None] = print) -> tuple[list[dict[str, Any]], dict]:
    """Measure every model of ``b``; return the table rows and the per-layer-kind profiles (``{model: {...}}``)."""
    import torch

    from benchmarks._layer_kinds import kind_profile
    from robust_prune.adapter_api import get_adapter
    from robust_prune.evaluation.measure import count_macs_params, output_width

    rows, why = [], {}
    for name in b.models:
        start = time.perf_counter()
        probe = __import__("timm").create_model(name, pretrained=False)
        size = b.image_size or int(probe.pretrained_cfg["input_size"][-1])
        del probe
        models, errors = _variants(name, b, size)
        x1 = torch.rand(1, 3, size, size)
        macs = {k: count_macs_params(m, x1)[0] for k, m in models.items()}
        sessions: dict[str, Any] = {}
        with tempfile.TemporaryDirectory() as tmp:
            if b.onnx:
                for label, m in models.items():
                    try:
                        sessions[label] = _ort_session(m, size, Path(tmp), label.replace("-", "_"))
                    except Exception as exc:  # noqa: BLE001
                        errors[f"{label} onnx"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
            for batch, repeats in zip(b.batches, b.repeats):
                x = torch.rand(batch, 3, size, size)
                xn = x.numpy()
                runners: dict[str, Callable[[], Any]] = {}
                for label, m in models.items():
                    runners[label] = lambda m=m, x=x: m(x)
                for label, s in sessions.items():
                    runners[f"{label} ort"] = lambda s=s, xn=xn: s.run(None, {"pixels": xn})
                with torch.no_grad():
                    ms = interleaved_medians(runners, repeats)
                for label in METHODS:
                    row: dict[str, Any] = {"model": name, "size": size, "batch": batch, "method": label,
                                           "n": repeats, "dense_ms": ms["dense"]}  # fmt: skip
                    if label not in models:
                        rows.append({**row, "note": f"fails: {errors.get(label, '')}"})
                        continue
                    flops = macs[label] / macs["dense"]
                    lat = ms[label] / ms["dense"]
                    row.update(flops_ratio=flops, latency_ratio=lat, quotient=lat / flops, pruned_ms=ms[label])
                    row["channel_ratio"] = output_width(models[label]) / output_width(models["dense"])
                    if f"{label} ort" in ms and "dense ort" in ms:
                        ort_lat = ms[f"{label} ort"] / ms["dense ort"]
                        row.update(ort_ms=ms[f"{label} ort"], ort_dense_ms=ms["dense ort"], ort_latency_ratio=ort_lat,
                                   ort_quotient=ort_lat / flops)  # fmt: skip
                    elif f"{label} onnx" in errors:
                        row["note"] = f"onnx: {errors[f'{label} onnx']}"
                    row["goal_met"] = row["quotient"] <= b.goal
                    rows.append(row)
        if "robust_prune" in models:
            adapter = get_adapter(models["robust_prune"], warn=False)
            for row in rows:
                if row["model"] == name and row["method"].startswith("robust_prune"):
                    row["adapter"] = adapter.name
        # the "why" for the largest batch, where per-layer costs dominate the fixed per-call cost
        misses = [r for r in rows if r["model"] == name and r.get("quotient") and r["quotient"] > b.goal]
        if misses:
            xb = torch.rand(b.batches[-1], 3, size, size)
            rounds: dict[str, list[dict[str, dict[str, float]]]] = {k: [] for k in models}
            for _ in range(b.profile_rounds):  # interleaved, like the timings
                for k, m in models.items():
                    rounds[k].append(kind_profile(m, xb, repeats=1))
            profiles = {k: _median_profile(r) for k, r in rounds.items()}
            why[name] = {label: _why(profiles, label) for label in models if label != "dense"}
        progress(f"{name}: {time.perf_counter() - start:.0f} s")
        del models, sessions
    return rows, why
