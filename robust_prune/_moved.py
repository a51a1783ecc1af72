"""The module paths the 0.1.0 README named that moved into the stage packages, kept importable as the moved module."""

from __future__ import annotations

import importlib
import sys

# old module -> its home; a package named like its old module (data, training, evaluation, inheritance) re-exports
# that module's names instead
MOVED = {
    "catalog": "data.catalog",
    "diagnostics": "evaluation.diagnostics",
    "runner": "training.runner",
    "sync_bn": "training.sync_bn",
    "trust": "publishing.trust",
}


def alias_moved_modules(package: str) -> None:
    """``robust_prune.<old>`` is the moved module itself, as an import and as an attribute (one object, not a copy)."""
    for old, new in MOVED.items():
        module = importlib.import_module(f"{package}.{new}")
        sys.modules.setdefault(f"{package}.{old}", module)
        setattr(sys.modules[package], old, module)
