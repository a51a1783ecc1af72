"""The tree reads as the pipeline: one package per stage, each saying its job in one line, every package in the wheel,
and the module paths of the previous layout that the README named still importable, as the moved module itself."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from robust_prune._moved import MOVED

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("data", "training", "pruning", "inheritance", "evaluation", "publishing")


def _packages() -> list[str]:
    core = ROOT / "robust_prune"
    found = [
        ".".join(("robust_prune", *init.parent.relative_to(core).parts))
        for init in core.rglob("__init__.py")
        if (core / "adapters") not in init.parents  # a developer's symlink to ../adapters
    ]
    return sorted([*found, "robust_prune.adapters"])


@pytest.mark.parametrize("stage", STAGES)
def test_each_stage_package_says_its_job_in_one_line(stage: str) -> None:
    doc = ast.get_docstring(ast.parse((ROOT / "robust_prune" / stage / "__init__.py").read_text(encoding="utf-8")))
    assert doc and len(doc.splitlines()[0]) > 20


def test_pyproject_ships_every_package() -> None:
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert sorted(config["tool"]["setuptools"]["packages"]) == _packages()


@pytest.mark.parametrize("old", sorted(MOVED))
def test_a_moved_module_keeps_its_old_path(old: str) -> None:
    import robust_prune as rp

    moved = importlib.import_module(f"robust_prune.{MOVED[old]}")
    assert importlib.import_module(f"robust_prune.{old}") is moved and getattr(rp, old) is moved
    assert moved.__name__ == moved.__spec__.name == f"robust_prune.{MOVED[old]}"


def test_a_package_named_like_its_old_module_exports_that_modules_names() -> None:
    for package, module in (
        ("data", "loading"),
        ("training", "adversarial"),
        ("evaluation", "robustness"),
        ("inheritance", "growth"),
    ):
        old = importlib.import_module(f"robust_prune.{package}.{module}")
        new = importlib.import_module(f"robust_prune.{package}")
        assert new.__all__ == old.__all__ and all(getattr(new, name) is getattr(old, name) for name in old.__all__)
