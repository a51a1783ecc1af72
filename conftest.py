"""Pytest set-up for the docstring examples of the whole repository (tests/conftest.py serves the tests).

- adapters/ ships as ``robust_prune.adapters`` (a PyPI package named ``adapters`` exists): its examples are
  imported under that name, as an installed or editable ``robust_prune`` provides it, never as a top-level
  ``adapters`` package (which pytest's own collection would import).
- Every library example runs in a fresh temporary working directory, so ``save_pretrained(result, "out/run1")``
  writes nowhere else; the Hub examples talk to the local Hub server of tests/hub_server.py, as user ``me``.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from _pytest.doctest import DoctestItem, DoctestModule

ROOT = Path(__file__).parent
# A developer's symlink robust_prune/adapters -> ../adapters would collect them a second time, as a package.
collect_ignore = ["robust_prune/adapters"]
# The modules whose examples push to or download from a Hub.
HUB_EXAMPLES = {
    "robust_prune",
    "robust_prune.publishing.hub",
    "robust_prune.publishing.hub_remote",
    "robust_prune.result",
}
# The module whose examples need the ``export`` extra (they skip where it is missing, and only there).
ONNX_EXAMPLES = {"robust_prune.publishing.export"}


class _AdapterExamples(DoctestModule):
    """The examples of one adapters/ file, imported as ``robust_prune.adapters[.NAME]``."""

    def _getobj(self) -> ModuleType:
        suffix = "" if self.path.stem == "__init__" else f".{self.path.stem}"
        return importlib.import_module(f"robust_prune.adapters{suffix}")


class _AdapterFolder(pytest.Directory):
    def collect(self) -> Iterable[_AdapterExamples]:
        if getattr(self.config.option, "doctestmodules", False):
            for path in sorted(self.path.glob("*.py")):
                yield _AdapterExamples.from_parent(self, path=path)


@pytest.hookimpl(tryfirst=True)
def pytest_collect_directory(path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    return _AdapterFolder.from_parent(parent, path=path) if path == ROOT / "adapters" else None


def _hub_server() -> ModuleType:
    """tests/hub_server.py, as the module tests/conftest.py imports (one copy)."""
    if "hub_server" not in sys.modules:
        spec = importlib.util.spec_from_file_location("hub_server", ROOT / "tests" / "hub_server.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["hub_server"] = module
        spec.loader.exec_module(module)
    return sys.modules["hub_server"]


@pytest.fixture(autouse=True)
def _example_sandbox(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    module = request.node.dtest.globs["__name__"] if isinstance(request.node, DoctestItem) else ""
    if not module.startswith("robust_prune"):
        yield
        return
    monkeypatch.chdir(tmp_path)
    if module in ONNX_EXAMPLES:
        for name in ("onnx", "onnxruntime"):
            pytest.importorskip(name, reason="the export extra: pip install robust-prune[export]")
    if module not in HUB_EXAMPLES:
        yield
        return
    hub = _hub_server()
    with hub.HubServer(username="me") as server, hub.point_hub_client_at(server.url, token=server.token,
                                                                         home=tmp_path / "hf_home"):  # fmt: skip
        yield
