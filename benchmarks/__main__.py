"""``python -m benchmarks SUITE [options]``: run one benchmark suite, or check a rerun.

Each suite is a module in this package exposing ``add_arguments(parser)`` and ``main(args) -> int``;
results go to ``benchmarks/results/<suite>.json`` and ``.md`` (see ``benchmarks/_common.py``).
"""

from __future__ import annotations

import argparse
import importlib
import sys

# suite name -> (module, one-line help). A suite whose module is not there yet is listed but refuses to run.
SUITES: dict[str, tuple[str, str]] = {
    "zoo": ("benchmarks.zoo", "prune one small model per timm family and check every step (coverage table)"),
    "paper": ("benchmarks.paper", "reproduce the paper's three findings at small scale"),
    "iwi": ("benchmarks.iwi", "inverse weights inheritance variants against dense PGD-AT, in two framings"),
    "speed": ("benchmarks.speed", "training, inference and evaluation throughput; robustify() overhead"),
    "check": ("benchmarks.check", "does a fresh paper run reproduce a committed table within its stated spread?"),
    "gpu": ("benchmarks.gpu", "the CUDA path end to end in at most 8 minutes on one GPU (refuses without CUDA)"),
    "quickstart": ("benchmarks.quickstart", "the README's first command (robust-prune robustify), timed in a child"),
    "sync_bn": ("benchmarks.sync_bn", "2 processes with and without sync_bn against one process, at two batches"),
}


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, object]]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="suite", required=True, metavar="{" + ",".join(SUITES) + "}")
    modules: dict[str, object] = {}
    for name, (module_name, help_text) in SUITES.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        module.add_arguments(p)  # type: ignore[attr-defined]
        modules[name] = module
    return parser, modules


def main(argv: list[str] | None = None) -> int:
    parser, modules = build_parser()
    args = parser.parse_args(argv)
    module = modules.get(args.suite)
    if module is None:
        parser.error(f"the '{args.suite}' suite is not implemented yet (no {SUITES[args.suite][0]} module).")
    return int(module.main(args) or 0)  # type: ignore[attr-defined]


if __name__ == "__main__":
    sys.exit(main())
