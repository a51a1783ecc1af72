"""``python -m benchmarks iwi``: inverse weights inheritance against dense PGD-AT, in two framings.

Every cell is one ``robustify()`` run on the digits data at one training eps (also the report's) and seed:

- ``iwi:<ticket_method>/<structure>/<init>``: ``method="iwi"``: a ticket (``ticket_epochs`` of adversarial
  training, pruning, ``finetune_epochs`` of fine-tuning; ``lottery`` rewinds once), grown back to full width
  with ``init``, then ``dense_epochs`` of adversarial training of the grown model.
- ``dense-a``: dense PGD-AT for ``dense_epochs``: the paper's framing (a), the large network trained for the
  same epochs with and without inheritance; the ticket's cost is reported beside it.
- ``dense-b<E>``: dense PGD-AT for ``E`` epochs, ``E`` the dense epochs whose training FLOPs come closest to
  an IWI recipe's whole cost (ticket + grown phase): framing (b), equal total training FLOPs.

Training FLOPs are counted from every epoch's history: ``6 x MACs x images x (attack steps + 1)`` (forward
2 FLOPs per MAC, backward twice the forward; each PGD step is a forward and a backward, plus the training
step), with the ticket's MACs during its fine-tuning and the full model's elsewhere (weight masks do not save
compute here). PGD-20 runs on the whole test split; once every training cell is done, AutoAttack at the
reference budget runs on ``aa_n`` test points for the best IWI variant of framing (a) and for ``dense-a``
(retrained from the same seed: training is deterministic at one thread). Each finished cell is one JSON line of
``benchmarks/results/<name>.jsonl`` (a rerun skips the cells already there with the same budget); the tables,
verdicts and the plot are rewritten into ``<name>.json``/``.md``/``.png`` after every cell (see
:mod:`benchmarks._iwi_report`). ``--jobs N`` runs N cells at once, in N processes of one thread each.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from benchmarks._common import RESULTS_DIR, comma_list

__all__ = ["Budget", "FULL", "QUICK", "TINY", "add_arguments", "build_cells", "main", "run_iwi"]


@dataclass(frozen=True)
class Budget:
    """Everything that decides the numbers (its fingerprint keys the resumable cells).

    ``variants`` run on ``models[0]``, ``wide_variants`` on the other models; a variant is
    ``"<ticket_method>/<structure>/<init>"``.
    """

    models: tuple[str, ...] = ("resnet10t", "resnet18")
    dataset: str = "digits"
    eps: tuple[float, ...] = (0.1, 0.2)
    seeds: int = 3
    dense_epochs: int = 3  # dense-a, and the grown phase of every variant (the paper's framing)
    ticket_epochs: int = 2  # adversarial training before pruning (lottery: per round)
    finetune_epochs: int = 1
    lottery_rounds: int = 1
    rewind_epoch: int = 1
    channel_sparsity: float = 0.5
    weight_sparsity: float = 0.8
    lr: float = 0.05
    finetune_lr: float = 0.02
    grow_lr: float = 0.05
    train_steps: int = 5
    eval_n: int | None = None
    aa_n: int = 100
    variants: tuple[str, ...] = (
        "prune/channel/zero-out",
        "prune/channel/zero",
        "prune/channel/random",
        "prune/channel/small-out",
        "prune/channel/net2net",
        "prune/weight/zero-out",
        "prune/weight/small-out",
        "lottery/weight/zero-out",
    )
    wide_variants: tuple[str, ...] = ("prune/channel/zero-out", "prune/channel/net2net", "prune/weight/zero-out")

    def fingerprint(self) -> str:
        text = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# About 60 minutes with --jobs 2 on 2 otherwise idle cores (one thread per job).
FULL = Budget()
QUICK = Budget(
    models=("test_resnet",),
    eps=(0.1,),
    seeds=1,
    dense_epochs=2,
    ticket_epochs=1,
    eval_n=200,
    aa_n=16,
    variants=("prune/channel/zero-out", "prune/channel/net2net", "prune/weight/zero-out"),
    wide_variants=(),
)
# The tests' budget: a few seconds a cell.
TINY = Budget(
    models=("test_resnet",),
    eps=(0.1,),
    seeds=1,
    dense_epochs=1,
    ticket_epochs=1,
    finetune_epochs=0,
    train_steps=1,
    eval_n=24,
    aa_n=4,
    variants=("prune/channel/zero-out", "prune/channel/net2net"),
    wide_variants=(),
)


def _options(budget: Budget, variant: str, eps: float, seed: int, epochs: int | None = None) -> dict[str, Any]:
    """The cell's robustify options (build_config keywords)."""
    b = budget
    common = dict(seed=seed, eps=eps, lr=b.lr, train_steps=b.train_steps, eval_attacks=("pgd",), eval_steps=20,
                  eval_n=b.eval_n)  # fmt: skip
    if not variant.startswith("iwi:"):
        return dict(common, method="dense", epochs=epochs if epochs is not None else b.dense_epochs)
    ticket_method, structure, init = variant[4:].split("/")
    sparsity = b.channel_sparsity if structure == "channel" else b.weight_sparsity
    extra = dict(rounds=b.lottery_rounds, rewind_epoch=b.rewind_epoch) if ticket_method == "lottery" else {}
    if structure == "channel":
        extra["round_to"] = 1  # exact fractions, as the paper prunes (and as the committed cells were run)
    return dict(common, method="iwi", ticket_method=ticket_method, structure=structure, sparsity=sparsity,
                grow_init=init, epochs=b.ticket_epochs, finetune_epochs=b.finetune_epochs, finetune_lr=b.finetune_lr,
                grow_epochs=b.dense_epochs, grow_lr=b.grow_lr, **extra)  # fmt: skip


def ticket_cost(budget: Budget, model: str, variant: str) -> float:
    """A ticket's training cost in dense epochs (``ticket_epochs`` per round at full size; fine-tuning at the
    ticket's MACs, measured on a freshly pruned model: layerwise channel pruning fixes the widths)."""
    ticket_method, structure, _ = variant[4:].split("/")
    rounds = budget.lottery_rounds if ticket_method == "lottery" else 1
    ratio = 1.0
    if structure == "channel":
        import timm
        import torch

        import robust_prune as rp
        from robust_prune.evaluation.measure import count_macs_params

        x = torch.rand(1, 3, 32, 32)
        dense = timm.create_model(model, num_classes=10)
        macs, _ = count_macs_params(dense, x)
        pruned = rp.prune(timm.create_model(model, num_classes=10), budget.channel_sparsity, round_to=1).model
        ratio = count_macs_params(pruned, x)[0] / macs
    return budget.ticket_epochs * rounds + budget.finetune_epochs * ratio


@dataclass(frozen=True)
class CellSpec:
    """One cell, picklable (it travels to a worker process)."""

    key: str
    model: str
    eps: float
    variant: str
    seed: int
    options: dict[str, Any]
    autoattack: bool = False

    def ident(self) -> dict[str, Any]:
        return {"key": self.key, "model": self.model, "eps": self.eps, "variant": self.variant, "seed": self.seed,
                "autoattack_cell": self.autoattack}  # fmt: skip


def cell_key(model: str, eps: float, variant: str, seed: int, autoattack: bool = False) -> str:
    return f"{'aa/' if autoattack else ''}{model}/eps{eps:g}/{variant}/seed{seed}"


def build_cells(budget: Budget) -> list[CellSpec]:
    """The training cells, seed-major (so an interrupted run has whole seeds first)."""
    cells: list[CellSpec] = []
    for seed in range(budget.seeds):
        for m_index, model in enumerate(budget.models):
            variants = ["iwi:" + v for v in (budget.variants if m_index == 0 else budget.wide_variants)]
            dense_b = sorted({budget.dense_epochs + round(ticket_cost(budget, model, v)) for v in variants})
            for eps in budget.eps:
                for v in ["dense-a", *variants, *(f"dense-b{e}" for e in dense_b)]:
                    epochs = int(v[7:]) if v.startswith("dense-b") else None
                    cells.append(CellSpec(cell_key(model, eps, v, seed), model, eps, v, seed,
                                          _options(budget, v, eps, seed, epochs)))  # fmt: skip
    return cells


def autoattack_cells(budget: Budget, best: str | None) -> list[CellSpec]:
    """AutoAttack on ``models[0]`` at ``eps[0]``, seed 0: the best IWI variant and dense-a."""
    if budget.aa_n <= 0 or best is None:
        return []
    model, eps = budget.models[0], budget.eps[0]
    return [CellSpec(cell_key(model, eps, v, 0, True), model, eps, v, 0, _options(budget, v, eps, 0), True)
            for v in (best, "dense-a")]  # fmt: skip


# ----------------------------------------------------------------------------------------------- one cell


def _flops(history: list[Any], dense_macs: int, ticket_macs: int | None, steps: int) -> tuple[float, float]:
    """(total, ticket part) training FLOPs from the epoch history (see the module doc)."""
    total = ticket = 0.0
    for h in history:
        # the pruned ticket's own training (prune's fine-tuning, lottery's final training) runs at its MACs
        at_ticket = "fine-tuning" in h.stage or "ticket" in h.stage
        macs = ticket_macs if (at_ticket and ticket_macs) else dense_macs
        flops = 6.0 * macs * h.images * (steps + 1)
        total += flops
        if "(grown)" not in h.stage and ticket_macs is not None:
            ticket += flops
    return total, ticket


def dead_tap_mask(model: Any, image_size: int) -> dict[str, Any]:
    """For each Conv2d weight, a bool mask of the taps that only ever read zero padding at ``image_size``."""
    import torch
    from torch import nn

    from robust_prune.distributed import model_device

    sizes: dict[str, tuple[int, int]] = {}
    hooks = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(lambda mod, inp, out, n=name: sizes.__setitem__(n, inp[0].shape[-2:])))
    was = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, image_size, image_size, device=model_device(model)))
    model.train(was)
    for h in hooks:
        h.remove()
    masks = {}
    for name, m in model.named_modules():
        if not isinstance(m, nn.Conv2d) or name not in sizes or not isinstance(m.padding, tuple):
            continue
        live = []
        for axis in (0, 1):
            n_in, k, s, p, d = sizes[name][axis], m.kernel_size[axis], m.stride[axis], m.padding[axis], m.dilation[axis]
            n_out = (n_in + 2 * p - d * (k - 1) - 1) // s + 1
            live.append(torch.tensor([any(0 <= o * s - p + a * d < n_in for o in range(n_out)) for a in range(k)]))
        dead = ~(live[0][:, None] & live[1][None, :])
        masks[f"{name}.weight"] = dead.expand_as(m.weight)
    return masks


def zero_stats(model: Any, image_size: int) -> dict[str, float]:
    """Exact zeros among conv/linear weights; the share of weights at taps that only see padding; the zeros
    among the weights that do see the image."""
    import torch

    dead = dead_tap_mask(model, image_size)
    total = zeros = dead_n = live_n = live_zeros = 0
    for name, p in model.named_parameters():
        if p.dim() < 2:
            continue
        z = p.detach() == 0
        total += p.numel()
        zeros += int(z.sum())
        d = dead.get(name, torch.zeros_like(z)).to(z.device)
        dead_n += int(d.sum())
        live_n += int((~d).sum())
        live_zeros += int((z & ~d).sum())
    return {"zero_fraction": zeros / total, "dead_tap_fraction": dead_n / total,
            "live_zero_fraction": live_zeros / max(live_n, 1)}  # fmt: skip


def run_cell(spec: CellSpec, dataset: str, aa_n: int, data_dir: str | None = None) -> dict[str, Any]:
    """robustify() one cell (and, for an AutoAttack cell, evaluate it with AutoAttack); its record."""
    import robust_prune as rp
    from robust_prune.api import prepare
    from robust_prune.options import build_config

    record = spec.ident()
    started = time.perf_counter()
    try:
        cfg = build_config(data=dataset, **spec.options)
        result = rp.robustify(spec.model, dataset, data_dir=data_dir, config=cfg, progress=False)
        rep = result.report
        pgd = rep.attacks["pgd"]
        ticket = result.ticket_report
        total, ticket_flops = _flops(result.history, rep.macs, ticket.macs if ticket else None,
                                     cfg.pretrain.attack.steps)  # fmt: skip
        image_size = int(result.data.get("image_size", 32))
        record.update(
            method=cfg.method, clean=rep.clean_accuracy, pgd=pgd.accuracy, pgd_ci=[pgd.ci_low, pgd.ci_high],
            n_eval=rep.n, macs=rep.macs, params=rep.params, epochs_total=cfg.total_epochs(),
            sanity_passed=rep.sanity_passed,
            train_flops=total, ticket_flops=ticket_flops,
            train_seconds=round(sum(h.seconds for h in result.history), 2),
            **zero_stats(result.model, image_size), config=cfg.to_dict(),
        )  # fmt: skip
        if ticket is not None:
            growth = result.record.extra.get("growth", {})
            record.update(ticket_clean=ticket.clean_accuracy, ticket_pgd=ticket.robust_accuracy.get("pgd"),
                          ticket_macs=ticket.macs, ticket_params=ticket.params,
                          function_preserving=growth.get("function_preserving"),
                          growth_relative_deviation=growth.get("relative_deviation"))  # fmt: skip
        if spec.autoattack:
            bundle = prepare(spec.model, dataset, data_dir=data_dir, seed=spec.seed)[1]
            aa_rep = rp.evaluate(result.model, bundle, attacks=("pgd", "autoattack"), eps=spec.eps, n=aa_n,
                                 seed=spec.seed, latency=False, progress=False)  # fmt: skip
            aa = aa_rep.attacks["autoattack"]
            record.update(autoattack=aa.accuracy, autoattack_ci=[aa.ci_low, aa.ci_high], n_aa=aa.n,
                          pgd_on_aa_points=aa_rep.attacks["pgd"].accuracy, aa_seconds=round(aa.seconds, 2))  # fmt: skip
        record["status"] = "ok"
    except Exception as exc:  # noqa: BLE001 - one failing cell must not lose the study
        record.update(status="error", reason=traceback.format_exception_only(type(exc), exc)[-1].strip()[:500])
    record["seconds"] = round(time.perf_counter() - started, 2)
    return record


def _work(spec: CellSpec, dataset: str, aa_n: int, data_dir: str | None) -> dict[str, Any]:
    """A worker process's entry: one thread, one cell."""
    import torch

    torch.set_num_threads(1)
    return run_cell(spec, dataset, aa_n, data_dir)


# ------------------------------------------------------------------------------------------------ the study


def _load_lines(path: Path, fingerprint: str) -> dict[str, dict[str, Any]]:
    done: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return done
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a kill: that cell runs again
        if rec.get("fingerprint") == fingerprint and rec.get("status") == "ok":
            done[rec["key"]] = rec
    return done


def _run(specs: list[CellSpec], jobs: int, budget: Budget, data_dir: str | None, on_done: Any) -> None:
    if jobs <= 1:
        for spec in specs:
            on_done(run_cell(spec, budget.dataset, budget.aa_n, data_dir))
        return
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        pending = {pool.submit(_work, s, budget.dataset, budget.aa_n, data_dir) for s in specs}
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for f in finished:
                on_done(f.result())


def run_iwi(
    budget: Budget,
    *,
    jobs: int = 1,
    out_dir: str | os.PathLike[str] | None = None,
    name: str = "iwi",
    data_dir: str | None = None,
    restart: bool = False,
    report_only: bool = False,
) -> list[dict[str, Any]]:
    """Run (or resume) the study; write ``<name>.jsonl`` line by line and the report after every cell.

    Returns every finished cell's record.
    """
    from benchmarks._iwi_report import best_variant, write_report

    out = Path(out_dir) if out_dir is not None else RESULTS_DIR
    out.mkdir(parents=True, exist_ok=True)
    lines = out / f"{name}.jsonl"
    fp = budget.fingerprint()
    if restart and lines.exists():
        lines.unlink()
    done = _load_lines(lines, fp)
    started = time.time()
    prior_wall = max((r.get("wall_seconds_at_finish", 0.0) for r in done.values()), default=0.0)
    settings = {"budget": dataclasses.asdict(budget), "fingerprint": fp, "jobs": jobs,
                "threads_per_job": 1 if jobs > 1 else None}  # fmt: skip

    def report(finished: bool) -> None:
        wall = prior_wall + (time.time() - started)
        write_report(list(done.values()), budget, settings=dict(settings, wall_seconds=round(wall, 1),
                     finished=finished), out_dir=out, name=name)  # fmt: skip

    def on_done(rec: dict[str, Any]) -> None:
        rec["fingerprint"] = fp
        rec["wall_seconds_at_finish"] = round(prior_wall + (time.time() - started), 1)
        with lines.open("a", encoding="utf-8") as f:
            f.write(json.dumps(rec, sort_keys=True) + "\n")
        if rec["status"] == "ok":
            done[rec["key"]] = rec
        else:
            print(f"cell {rec['key']} failed: {rec.get('reason')}", flush=True)
        print(f"[{time.strftime('%H:%M:%S')}] {rec['key']}: {rec['status']} in {rec['seconds']} s "
              f"({len(done)} done)", flush=True)  # fmt: skip
        report(False)

    if not report_only:
        cells = [c for c in build_cells(budget) if c.key not in done]
        print(f"{len(done)} cell(s) already done; {len(cells)} to run with {jobs} job(s)", flush=True)
        _run(cells, jobs, budget, data_dir, on_done)
        aa = [c for c in autoattack_cells(budget, best_variant(list(done.values()), budget)) if c.key not in done]
        _run(aa, jobs, budget, data_dir, on_done)
    report(not report_only or len(done) >= len(build_cells(budget)) + len(autoattack_cells(budget, "x")))
    return list(done.values())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="the reduced budget (under 10 minutes on 2 CPU cores)")
    parser.add_argument("--tiny", action="store_true", help="the tests' budget (seconds; numbers mean nothing)")
    parser.add_argument("--jobs", type=int, default=1, help="cells run at once, one process of one thread each")
    parser.add_argument("--seeds", type=int, default=None, help="seeds (default: the budget's)")
    parser.add_argument("--models", default=None, help="comma-separated timm models (the first gets every variant)")
    parser.add_argument("--out-dir", default=None, help="results folder (default benchmarks/results)")
    parser.add_argument("--name", default=None, help="results file stem (default iwi; --quick: iwi_quick)")
    parser.add_argument("--data-dir", default=None, help="where torchvision datasets live")
    parser.add_argument("--restart", action="store_true", help="forget the finished cells and start over")
    parser.add_argument("--report-only", action="store_true", help="re-render the report from finished cells")


def main(args: argparse.Namespace) -> int:
    budget = TINY if args.tiny else QUICK if args.quick else FULL
    changes: dict[str, Any] = {}
    if args.seeds is not None:
        changes["seeds"] = args.seeds
    if args.models:
        changes["models"] = comma_list(args.models)
    budget = dataclasses.replace(budget, **changes)
    name = args.name or ("iwi_tiny" if args.tiny else "iwi_quick" if args.quick else "iwi")
    records = run_iwi(budget, jobs=args.jobs, out_dir=args.out_dir, name=name, data_dir=args.data_dir,
                      restart=args.restart, report_only=args.report_only)  # fmt: skip
    return 0 if records else 1
