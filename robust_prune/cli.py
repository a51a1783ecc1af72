"""The ``robust-prune`` command line: ``robustify`` and ``evaluate``.

Examples:
    robust-prune robustify                       # resnet18 on the embedded digits, prune 50% of channels
    robust-prune robustify --method dense --epochs 4 --out runs/dense
    robust-prune evaluate runs/resnet18-digits-prune --attacks pgd,fgsm --n 200
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import RobustPruneError

__all__ = ["main", "build_parser"]


def _robustify_args(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("robustify", help="adversarially train, prune and evaluate a timm model")
    p.add_argument("--model", default="resnet18", help="timm model name (default: resnet18)")
    p.add_argument("--dataset", default="digits", help="digits (embedded), mnist, fashion-mnist, cifar10, cifar100, "
                   "svhn, or an image folder (default: digits)")
    p.add_argument("--data-dir", default=None, help="local folder holding torchvision datasets")
    p.add_argument("--download", action="store_true", help="download torchvision datasets if missing")
    p.add_argument("--method", default="prune", help="dense, prune, lottery or iwi (default: prune)")
    p.add_argument("--structure", default="channel", help="channel or weight (default: channel)")
    p.add_argument("--sparsity", type=float, default=0.5, help="fraction removed, in [0, 1) (default: 0.5)")
    p.add_argument("--importance", default="magnitude", help="magnitude, taylor, random or robust")
    p.add_argument("--epochs", type=int, default=None, help="adversarial training epochs before pruning (default 6)")
    p.add_argument("--finetune-epochs", type=int, default=None, help="fine-tuning epochs after pruning (default 3)")
    p.add_argument("--objective", default="pgd-at", help="pgd-at, trades, fgsm-rs or clean (default: pgd-at)")
    p.add_argument("--eps", type=float, default=None, help="L-inf budget in pixel units (default: the dataset's)")
    p.add_argument("--train-steps", type=int, default=5, help="PGD steps during training (default: 5)")
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--attacks", default="pgd", help="comma-separated evaluation attacks (default: pgd)")
    p.add_argument("--n", type=int, default=None, help="evaluate on the first N test points (default: all)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="output folder (default: runs/MODEL-DATASET-METHOD)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _evaluate_args(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="evaluate a saved model folder")
    p.add_argument("path", help="a folder written by robustify / save_pretrained")
    p.add_argument("--dataset", default=None, help="dataset (default: the one the model was trained on)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--attacks", default="pgd", help="comma-separated attacks (default: pgd)")
    p.add_argument("--eps", type=float, default=None)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--n", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")


def build_parser() -> argparse.ArgumentParser:
    from ._version import __version__

    parser = argparse.ArgumentParser(prog="robust-prune", description="Adversarially robust pruning for timm models.")
    parser.add_argument("--version", action="version", version=f"robust-prune {__version__}")
    sub = parser.add_subparsers(dest="command")
    _robustify_args(sub)
    _evaluate_args(sub)
    return parser


def _cmd_robustify(args: argparse.Namespace) -> int:
    import torch

    from .api import robustify
    from .config import AttackConfig

    attack = AttackConfig(eps=args.eps, steps=args.train_steps)
    result = robustify(
        args.model,
        None if args.dataset == "digits" else args.dataset,
        method=args.method,
        sparsity=args.sparsity,
        structure=args.structure,
        importance=args.importance,
        attack=attack,
        epochs=args.epochs,
        finetune_epochs=args.finetune_epochs,
        objective=args.objective,
        lr=args.lr,
        eval_attacks=tuple(a for a in args.attacks.split(",") if a),
        eval_n=args.n,
        data_dir=args.data_dir,
        download=args.download,
        batch_size=args.batch_size,
        seed=args.seed,
        progress=not args.no_progress,
    )
    del torch
    out = Path(args.out or f"runs/{args.model}-{Path(str(args.dataset)).name}-{args.method}")
    result.save_pretrained(out)
    print(result.report)
    print(f"\nSaved to {out}/ (config.json, model.safetensors, report.json, report.md, README.md)")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluation import evaluate
    from .hub import from_pretrained

    model = from_pretrained(args.path)
    data = args.dataset or model.robust_prune_config.get("data", {}).get("name") or "digits"
    report = evaluate(
        model,
        data if data != "loaders" else "digits",
        attacks=tuple(a for a in args.attacks.split(",") if a),
        eps=args.eps,
        steps=args.steps,
        n=args.n,
        batch_size=args.batch_size,
        seed=args.seed,
        progress=not args.no_progress,
    )
    print(report)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``robust-prune`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    commands = {"robustify": _cmd_robustify, "evaluate": _cmd_evaluate}
    try:
        return commands[args.command](args)
    except RobustPruneError as exc:
        print(f"robust-prune: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
