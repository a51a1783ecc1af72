"""``python -m benchmarks gpu``: one command that shows the CUDA path works, in at most 8 minutes on one GPU.

Checks, each printed as one JSON line as it finishes, then a summary table (``benchmarks/results/gpu.md`` and
``.json``); the exit status is non-zero when any check failed. Without CUDA it refuses at once (exit 2).

- ``method:<name>``: every registered method on timm ``resnet18`` (digits, tiny budgets) ends on CUDA, and a
  ``from_pretrained`` reload of its saved folder gives the same outputs;
- ``bf16-channels-last-resume`` and ``fp16-exact-resume``: a run killed after its first epoch's checkpoint and
  resumed ends with exactly the weights of an uninterrupted run (``deterministic=True``);
- ``evaluate-device-none``: ``evaluate(device=None)`` on a CPU model runs on CUDA, and on a CUDA model stays there;
- ``model-on-cuda``: ``robustify`` of a model handed in already on CUDA (channel pruning included);
- ``host-syncs``: host syncs per training step, counted with ``torch.cuda.set_sync_debug_mode``;
- ``throughput``: PGD-10 adversarial training images/s of ``train()`` against a plain-torch loop of the same model
  on the same GPU (batch 256, 32 px, bf16; goal >= 0.95), and the achieved TFLOP/s against the chip's bf16 peak;
- ``two-processes``: ``torchrun --nproc_per_node 2`` of the CLI when two GPUs exist (skipped otherwise).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._common import markdown_table, write_results

__all__ = ["add_arguments", "main", "BF16_PEAK_TFLOPS"]

MODEL = "resnet18"
# dense bf16 tensor-core peaks (TFLOP/s, without sparsity) by the name torch.cuda.get_device_name reports
BF16_PEAK_TFLOPS = {"H100 SXM": 989.0, "H100 80GB HBM3": 989.0, "H100 PCIe": 756.0, "H100 NVL": 835.0,
                    "H200": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0}  # fmt: skip
TINY = {"epochs": 1, "finetune_epochs": 1, "grow_epochs": 1, "rounds": 2, "train_steps": 2, "eval_steps": 5,
        "eval_n": 128, "progress": False}  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--only", default=None, help="comma-separated check names (default: all)")
    parser.add_argument("--out-dir", default=None, help="where gpu.json / gpu.md go (default: benchmarks/results)")


def _model(device: Any = "cpu") -> Any:
    import torch

    from robust_prune.models import create_model

    torch.manual_seed(0)
    return create_model(MODEL, num_classes=10).to(device)


def _same_outputs(a: Any, b: Any) -> float:
    """The largest output difference of two models on the same CUDA batch."""
    import torch

    x = torch.rand(16, 3, 32, 32, generator=torch.Generator().manual_seed(0)).cuda()
    with torch.no_grad():
        return float((a.eval()(x) - b.eval()(x)).abs().max())


def _method(name: str) -> Callable[[], dict[str, Any]]:
    def check() -> dict[str, Any]:
        import robust_prune as rp

        result = rp.robustify(_model(), method=name, **TINY)
        devices = {p.device.type for p in result.model.parameters()}
        with tempfile.TemporaryDirectory() as tmp:
            result.save_pretrained(tmp)
            diff = _same_outputs(result.model, rp.from_pretrained(tmp).cuda())
        ok = devices == {"cuda"} and diff < 1e-4
        return {"ok": ok, "devices": sorted(devices), "reload_max_diff": diff,
                "clean": result.report.clean_accuracy, "pgd": result.report.robust_accuracy.get("pgd")}  # fmt: skip

    return check


def _resume(precision: str, channels_last: bool) -> Callable[[], dict[str, Any]]:
    """Kill a run after its first epoch's checkpoint, resume it, compare with an uninterrupted run."""

    def check() -> dict[str, Any]:
        import torch

        import robust_prune as rp
        import robust_prune.training.runner as runner_module

        options = {"method": "dense", "epochs": 2, "train_steps": 2, "eval_n": 64, "eval_steps": 2,
                   "mixed_precision": precision, "channels_last": channels_last, "deterministic": True,
                   "progress": False}  # fmt: skip
        straight = rp.robustify(_model(), **options).model.state_dict()
        original = runner_module.train

        def die_after_first_epoch(*args: Any, on_epoch_end: Any = None, **kwargs: Any) -> Any:
            def hook(epoch: int, *rest: Any) -> None:
                on_epoch_end(epoch, *rest)
                if epoch == 0:
                    raise KeyboardInterrupt

            return original(*args, on_epoch_end=hook, **kwargs)

        with tempfile.TemporaryDirectory() as run_dir:
            runner_module.train = die_after_first_epoch
            try:
                rp.robustify(_model(), run_dir=run_dir, **options)
            except KeyboardInterrupt:
                pass
            finally:
                runner_module.train = original
            resumed = rp.robustify(_model(), resume=run_dir, **options).model.state_dict()
        differ = [k for k in straight if not torch.equal(straight[k], resumed[k])]
        return {"ok": not differ, "tensors_differing": len(differ), "first": differ[:1]}

    return check


def _evaluate_device_none() -> dict[str, Any]:
    from torch.utils.data import DataLoader, TensorDataset

    import robust_prune as rp
    from robust_prune.api import prepare
    from robust_prune.data.loading import first_n

    model, bundle = prepare(_model(), "digits")
    x, y = first_n(bundle.test, 64)
    loader = DataLoader(TensorDataset(x, y), batch_size=64)
    on_cpu = rp.evaluate(model.cpu(), loader, attacks=("pgd",), eps=0.1, steps=2, progress=False)
    moved = next(model.parameters()).device.type
    on_cuda = rp.evaluate(model.cuda(), loader, attacks=("pgd",), eps=0.1, steps=2, progress=False)
    stayed = next(model.parameters()).device.type
    ok = on_cpu.latency_device.startswith("cuda") and on_cuda.latency_device.startswith("cuda") and stayed == "cuda"
    return {"ok": ok, "cpu_model_ran_on": on_cpu.latency_device, "cpu_model_now_on": moved,
            "cuda_model_ran_on": on_cuda.latency_device}  # fmt: skip


def _model_on_cuda() -> dict[str, Any]:
    import robust_prune as rp

    result = rp.robustify(_model("cuda"), method="prune", **TINY)
    devices = {p.device.type for p in result.model.parameters()}
    return {"ok": devices == {"cuda"}, "devices": sorted(devices), "macs_ratio": result.record.stats.get("macs_ratio")}


def _host_syncs() -> dict[str, Any]:
    import torch

    from robust_prune.api import prepare
    from robust_prune.config import AttackConfig, TrainConfig
    from robust_prune.training.adversarial import PROGRESS_EVERY, train

    model, bundle = prepare(_model(), "digits", batch_size=64)
    config = TrainConfig(epochs=1, attack=AttackConfig(eps=0.1, steps=2), mixed_precision="fp16")
    train(copy.deepcopy(model), bundle.train, config=config, progress=False)  # warm-up: CUDA init, allocator
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            train(model, bundle.train, config=config, progress=False)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    steps = len(bundle.train)
    syncs = sum("synchroniz" in str(w.message) for w in caught)
    per_step = syncs / steps
    # the progress read every PROGRESS_EVERY steps and the epoch's end are allowed; one per step is the failure
    return {"ok": per_step < 1.0, "syncs": syncs, "steps": steps, "syncs_per_step": per_step,
            "progress_every": PROGRESS_EVERY}  # fmt: skip


def _throughput() -> dict[str, Any]:
    import torch
    from torch.utils.data import DataLoader, TensorDataset
    from torch.utils.flop_counter import FlopCounterMode

    from benchmarks._throughput import ThroughputBudget, _library_ips, _plain_ips
    from robust_prune.api import prepare
    from robust_prune.data.loading import first_n

    budget = ThroughputBudget(model=MODEL, images=1437, batch_size=256, repeats=3, attack_steps=10)
    base, bundle = prepare(_model(), "digits")
    x, y = first_n(bundle.train, None)
    loader = DataLoader(TensorDataset(x, y), batch_size=256, shuffle=True, pin_memory=True,
                        generator=torch.Generator().manual_seed(0))  # fmt: skip
    _plain_ips(copy.deepcopy(base), loader, budget, precision="bf16")  # warm-up: kernels, allocator
    _library_ips(copy.deepcopy(base), loader, budget, precision="bf16")
    plain, library = [], []
    for _ in range(budget.repeats):
        plain.append(_plain_ips(copy.deepcopy(base), loader, budget, precision="bf16"))
        library.append(_library_ips(copy.deepcopy(base), loader, budget, precision="bf16"))
    plain_ips, library_ips = sorted(plain)[1], sorted(library)[1]
    # model FLOPs per training image: the forward counted (FlopCounterMode cannot follow torchattacks' autograd.grad),
    # each attack step a forward and an input-gradient backward (2 forwards' worth), the update 3 (forward + backward)
    model = copy.deepcopy(base).cuda().eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x[:1].cuda())
    forward = counter.get_total_flops()
    flops_per_image = forward * (2 * budget.attack_steps + 3)
    tflops = flops_per_image * library_ips / 1e12
    name = torch.cuda.get_device_name()
    peak = next((v for k, v in BF16_PEAK_TFLOPS.items() if k in name), None)
    ratio = library_ips / plain_ips
    return {"ok": ratio >= 0.95, "library_images_per_s": library_ips, "plain_images_per_s": plain_ips,
            "ratio": ratio, "goal": 0.95, "forward_gflops_per_image": forward / 1e9, "achieved_tflops": tflops,
            "bf16_peak_tflops": peak,
            "fraction_of_peak": tflops / peak if peak else None, "gpu": name}  # fmt: skip


def _two_processes() -> dict[str, Any]:
    import torch

    if torch.cuda.device_count() < 2:
        return {"ok": True, "skipped": f"{torch.cuda.device_count()} GPU(s): needs 2"}
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "robust_prune.cli",
                   "robustify", "--model", MODEL, "--method", "prune", "--epochs", "1", "--finetune-epochs", "1",
                   "--train-steps", "2", "--eval-n", "128", "--eval-steps", "5", "--no-progress",
                   "--out", out]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        report = Path(out) / "report.json"
        ok = done.returncode == 0 and report.is_file()
        facts = json.loads(report.read_text()) if report.is_file() else {}
    return {"ok": ok, "returncode": done.returncode, "clean": facts.get("clean_accuracy"),
            "stderr_tail": "" if ok else done.stderr[-800:]}  # fmt: skip


def _checks() -> dict[str, Callable[[], dict[str, Any]]]:
    from robust_prune.methods import list_methods

    checks = {f"method:{name}": _method(name) for name in list_methods()}
    checks.update({
        "bf16-channels-last-resume": _resume("bf16", channels_last=True),
        "fp16-exact-resume": _resume("fp16", channels_last=False),
        "evaluate-device-none": _evaluate_device_none,
        "model-on-cuda": _model_on_cuda,
        "host-syncs": _host_syncs,
        "throughput": _throughput,
        "two-processes": _two_processes,
    })  # fmt: skip
    return checks


def _run_one(name: str, check: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        row = check()
    except Exception as exc:  # noqa: BLE001 - a failing check is reported, the others still run
        row = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()[-1500:]}
    return {"check": name, **row, "seconds": round(time.perf_counter() - started, 1)}


def main(args: argparse.Namespace) -> int:
    import torch

    if not torch.cuda.is_available():
        print("python -m benchmarks gpu needs a CUDA GPU, and torch.cuda.is_available() is False on this machine "
              f"(torch {torch.__version__}, CUDA build {torch.version.cuda}). Run it on a GPU machine; the CPU "
              "path is covered by the test suite.", file=sys.stderr)  # fmt: skip
        return 2
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before the first cuBLAS call (deterministic runs)
    checks = _checks()
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = sorted(set(wanted) - set(checks))
        if unknown:
            print(f"unknown check(s) {', '.join(unknown)}; choose from {', '.join(checks)}", file=sys.stderr)
            return 2
        checks = {n: checks[n] for n in wanted}
    rows = []
    for name, check in checks.items():
        row = _run_one(name, check)
        print(json.dumps(row, default=str), flush=True)
        rows.append(row)
    failed = [r["check"] for r in rows if not r["ok"]]
    columns = ["check", "ok", "seconds"]
    print("\n" + markdown_table(rows, columns))
    verdict = f"; failed: {', '.join(failed)}" if failed else ""
    print(f"\n{len(rows) - len(failed)}/{len(rows)} checks passed{verdict}")
    write_results("gpu", rows, title=f"GPU checks on {torch.cuda.get_device_name()}", columns=columns,
                  summary={"passed": len(rows) - len(failed), "checks": len(rows), "failed": failed},
                  out_dir=args.out_dir)  # fmt: skip
    return 1 if failed else 0
