"""The ``robust-prune`` command line: ``robustify``, ``evaluate``, ``push``, ``grow``, ``export`` and ``env``.

Examples:
    robust-prune robustify                       # resnet18 on the embedded digits, prune 50% of channels
    robust-prune robustify --method dense --epochs 4 --out runs/dense
    robust-prune evaluate runs/resnet18-digits-prune --attacks pgd,fgsm --n 200
    robust-prune push runs/resnet18-digits-prune --repo-id me/resnet18-digits-robust --private
    robust-prune evaluate hf://me/resnet18-digits-robust --n 200
    robust-prune grow runs/resnet18-digits-prune --out runs/resnet18-grown
    robust-prune env                             # versions, devices and known problems, for a bug report
"""

from __future__ import annotations

import argparse
import sys
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .data.catalog import DATASETS, named_datasets
from .errors import RobustPruneError
from .options import DATA_OPTIONS, OPTIONS, Option, build_config, field_type, option_default

__all__ = ["main", "build_parser"]


def _cli_type(option: Option) -> tuple[Any, dict[str, Any]]:
    """argparse settings for an option, from the type of the config field it sets."""
    base = field_type(option)
    if isinstance(base, types.UnionType):  # ``int | None``: the option's own type
        base = next(a for a in typing.get_args(base) if a is not type(None))
    if base is bool:
        return None, {"action": argparse.BooleanOptionalAction}
    if typing.get_origin(base) is tuple:
        return None, {"type": lambda text: tuple(a for a in text.split(",") if a), "metavar": "A,B"}
    return None, {"type": base}


def _robustify_args(sub: argparse._SubParsersAction) -> None:
    from .methods import get_method, list_methods

    methods = "; ".join(f"{name}: {get_method(name).help}" for name in list_methods())
    p = sub.add_parser("robustify", help="adversarially train, prune and evaluate a timm model",
                       description=f"Methods - {methods}.")  # fmt: skip
    p.add_argument("--model", default="resnet18", help="timm model name (default: resnet18)")
    p.add_argument("--dataset", default="digits", help=f"{_dataset_names()}, an image folder, or hf:REPO[:CONFIG] "
                   "(Hugging Face datasets) (default: digits)")
    p.add_argument("--data-dir", default=None, help=_DATA_DIR_HELP)
    p.add_argument("--download", action="store_true", help="download the dataset into --data-dir if missing")
    for option in OPTIONS:
        if option.name == "attack":  # an AttackConfig object: the CLI sets its fields one by one
            continue
        _, kwargs = _cli_type(option)
        p.add_argument(option.flag, *option.aliases, dest=option.name, default=None,
                       help=f"{option.help} (default: {option_default(option)})", **kwargs)  # fmt: skip
    _data_flags(p, evaluate=False)
    p.add_argument("--batch-size", type=int, default=64, help="the global training batch: torchrun with N processes "
                   "gives each process 1/N of it, so N processes train like one")  # fmt: skip
    p.add_argument("--out", default=None, help="output folder (default: runs/MODEL-DATASET-METHOD)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--run-dir", default=None, help="checkpoint every stage into this folder (resumable)")
    p.add_argument("--resume", default=None, metavar="DIR", help="continue the run in DIR from its last checkpoint")
    p.add_argument("--overwrite", action="store_true",
                   help="start afresh in a --run-dir that holds checkpoints, discarding them")  # fmt: skip
    p.add_argument("--print-config", action="store_true", help="print the run's full configuration as JSON and exit")


_DATA_DIR_HELP = ("where the dataset's files are: MNIST/Fashion-MNIST's four IDX files (.gz or not) in it or under "
                  "NAME/raw (default: the system copy, e.g. apt-get install dataset-fashion-mnist); CIFAR/SVHN: "
                  "torchvision's files")


def _dataset_names() -> str:
    """The named datasets with their native size and default eps, from their declarations."""
    infos = [DATASETS[name] for name in named_datasets()]
    return ", ".join(f"{i.name} ({i.native_size} px, eps {i.default_eps:.3g})" for i in infos)


def _data_flags(p: argparse.ArgumentParser, *, evaluate: bool) -> None:
    """The flags of :data:`~robust_prune.options.DATA_OPTIONS` (``evaluate``: only those evaluation takes)."""
    for option in DATA_OPTIONS:
        if evaluate and not option.evaluate:
            continue
        kwargs: dict[str, Any] = (
            {"action": argparse.BooleanOptionalAction} if option.type is bool else {"type": option.type}
        )
        p.add_argument(option.flag, dest=option.name, default=option.default, help=option.help, **kwargs)


def _evaluate_args(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="evaluate a saved model folder or a Hub repository")
    p.add_argument("path", help="a folder written by robustify / save_pretrained, a Hub repo id or hf://REPO_ID")
    p.add_argument("--revision", default=None, help="Hub branch, tag or commit (default: main); the token comes "
                   "from HF_TOKEN or `hf auth login`")  # fmt: skip
    p.add_argument("--dataset", default=None, help="dataset (default: the one the model was trained on)")
    p.add_argument("--data-dir", default=None, help=f"{_DATA_DIR_HELP} (default: the one the model was trained from)")
    _data_flags(p, evaluate=True)
    p.add_argument(
        "--attacks",
        default="pgd",
        help="comma-separated: fgsm, pgd, apgd-ce, apgd-dlr, cw, square, autoattack (reference budget), "
        "autoattack-fast (default: pgd)",
    )
    p.add_argument("--eps", type=float, default=None,
                   help="budget in pixel units (default: the one the model was reported at, else the dataset's)")
    p.add_argument("--norm", default="Linf", help="Linf or L2 (default: Linf)")
    p.add_argument("--steps", type=int, default=20, help="PGD/APGD steps (default: 20)")
    p.add_argument("--restarts", type=int, default=1, help="PGD/APGD restarts (default: 1)")
    p.add_argument("--n", type=int, default=None, help="evaluate on the first N test points (default: all)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-sanity", action="store_true", help="skip the gradient-masking sanity checks")
    p.add_argument("--diagnostics", action="store_true", help="also print the sparsity diagnostics")
    p.add_argument("--no-progress", action="store_true")


def _push_args(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("push", help="publish a saved model folder to the Hugging Face Hub in one commit")
    p.add_argument("path", help="a folder written by robustify / save_pretrained (RUN_DIR)")
    p.add_argument("--repo-id", required=True, help="Hub repository, namespace/name (created if missing)")
    p.add_argument("--private", action="store_true", help="create the repository private")
    p.add_argument("--revision", default=None, help="branch to commit to (default: main)")
    p.add_argument("--commit-message", default=None)


def _grow_args(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("grow", help="grow a saved pruned model back to its full-width timm architecture")
    p.add_argument("path", help="a folder written by robustify / save_pretrained (the ticket), or a Hub repo id")
    p.add_argument("--revision", default=None, help="Hub branch, tag or commit of the ticket (default: main)")
    p.add_argument("--out", required=True, help="output folder for the grown model")
    p.add_argument("--init", default="zero-out", help="zero-out (function-preserving), zero or random")
    p.add_argument("--scale", type=float, default=None, help="std of new incoming weights (default: timm's init)")
    p.add_argument("--seed", type=int, default=0)


def _export_args(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a saved model folder (dense, pruned or grown) for deployment")
    p.add_argument("path", help="a folder written by robustify / save_pretrained, or a Hub repo id")
    p.add_argument("--revision", default=None, help="Hub branch, tag or commit (default: main)")
    p.add_argument("--onnx", required=True, metavar="FILE", help="the ONNX file to write (needs robust-prune[export])")
    p.add_argument("--image-size", type=int, default=None,
                   help="input height and width (default: the model's fixed size, else the size it was pruned "
                   "at)")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    from ._version import __version__

    parser = argparse.ArgumentParser(prog="robust-prune", description="Adversarially robust pruning for timm models.")
    parser.add_argument("--version", action="version", version=f"robust-prune {__version__}")
    sub = parser.add_subparsers(dest="command")
    _robustify_args(sub)
    _evaluate_args(sub)
    _push_args(sub)
    _grow_args(sub)
    _export_args(sub)
    sub.add_parser("env", help="print versions, devices and known problems of this environment (for a bug report)")
    return parser


def _cmd_robustify(args: argparse.Namespace) -> int:
    from .api import robustify
    from .distributed import is_main_process

    options = {option.name: getattr(args, option.name) for option in OPTIONS if option.name != "attack"}
    data = None if args.dataset == "digits" else args.dataset
    if args.print_config:
        print(build_config(data=args.dataset, **options).to_json())
        return 0
    data_options = {option.name: getattr(args, option.name) for option in DATA_OPTIONS}
    result = robustify(args.model, data, data_dir=args.data_dir, download=args.download, batch_size=args.batch_size,
                       progress=not args.no_progress, run_dir=args.run_dir, resume=args.resume,
                       overwrite=args.overwrite, **data_options, **options)  # fmt: skip
    if not is_main_process():  # under torchrun / accelerate launch the main process writes and prints
        return 0
    out = Path(args.out or f"runs/{args.model}-{Path(str(args.dataset)).name}-{result.config.method}")
    result.save_pretrained(out)
    print(result.report)
    print(f"\nSaved to {out}/ (config.json, model.safetensors, report.json, report.md, README.md)")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluation.robustness import evaluate
    from .publishing.hub import from_pretrained

    model = from_pretrained(args.path, revision=args.revision)
    spec = (model.saved_config or {}).get("data", {})
    data, data_dir, image_size = _evaluation_data(args, spec)
    reported = model.report.meta.get("eps") if model.report is not None else None
    eps = args.eps if args.eps is not None else reported  # by default, the budget the model was reported at
    report = evaluate(
        model,
        data,
        attacks=tuple(a for a in args.attacks.split(",") if a),
        eps=eps,
        norm=args.norm,
        steps=args.steps,
        restarts=args.restarts,
        n=args.n,
        batch_size=args.batch_size,
        seed=args.seed,
        progress=not args.no_progress,
        sanity=not args.no_sanity,
        data_dir=data_dir,
        image_size=image_size,
        image_column=args.image_column or (spec.get("hf") or {}).get("image_column"),
        label_column=args.label_column or (spec.get("hf") or {}).get("label_column"),
    )
    print(report)
    if args.diagnostics:
        from .evaluation.diagnostics import diagnose

        print()
        print(diagnose(model, data, eps=eps, norm=args.norm, n=min(args.n or 256, 256), seed=args.seed,
                       data_dir=data_dir, image_size=image_size))  # fmt: skip
    return 0


def _evaluation_data(args: argparse.Namespace, spec: dict[str, Any]) -> tuple[str, str | None, int | None]:
    """The data ``evaluate DIR`` reads: the flags, else the saved model's data spec (its dataset, folder and size).

    An image folder is recorded as its path (``source``); a model trained on a user's loaders has no dataset to
    read back (nor has one built in memory from Hugging Face ``datasets``) and is evaluated on the embedded digits
    unless ``--dataset`` names one; ``hf:REPO`` data is loaded again from the Hub.
    """
    name = spec.get("name")
    saved = spec.get("source") if name == "imagefolder" else name
    data = args.dataset or (saved if saved not in (None, "loaders", "datasets") else "digits")
    same = args.dataset is None or args.dataset == saved
    data_dir = args.data_dir or (spec.get("source") if same and name != "imagefolder" else None)
    readable = name not in (None, "loaders", "datasets")  # "datasets": a DatasetDict built in memory
    image_size = args.image_size or (spec.get("image_size") if same and readable else None)
    return data, data_dir, image_size


def _cmd_push(args: argparse.Namespace) -> int:
    from .publishing.hub import push_folder

    url = push_folder(
        args.path, args.repo_id, private=args.private, revision=args.revision, commit_message=args.commit_message
    )
    print(f"Pushed {args.path} to {args.repo_id}: {url}")
    return 0


def _cmd_grow(args: argparse.Namespace) -> int:
    from .inheritance.growth import grow
    from .publishing.hub import from_pretrained, save_pretrained

    grown = grow(from_pretrained(args.path, revision=args.revision), init=args.init, scale=args.scale, seed=args.seed)
    save_pretrained(grown.model, args.out)
    info = grown.info
    print(f"Grew {grown.record.architecture}: {info.ticket_params} -> {info.grown_params} parameters, "
          f"max output deviation {info.max_deviation:.3g} ({'exact' if info.exact else 'not exact'}).")
    print(f"Saved to {args.out}/")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .publishing.export import export_onnx, require_export_dependencies
    from .publishing.hub import from_pretrained

    require_export_dependencies()  # before a download
    path = export_onnx(from_pretrained(args.path, revision=args.revision), args.onnx, image_size=args.image_size)
    print(f"Wrote {path} (input 'pixels' in [0, 1], output 'logits').")
    return 0


def _cmd_env(args: argparse.Namespace) -> int:
    from .env_info import show_versions

    show_versions()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``robust-prune`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    commands = {"robustify": _cmd_robustify, "evaluate": _cmd_evaluate, "push": _cmd_push, "grow": _cmd_grow,
                "export": _cmd_export, "env": _cmd_env}
    try:
        return commands[args.command](args)
    except RobustPruneError as exc:
        print(f"robust-prune: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
