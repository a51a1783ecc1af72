"""``robust-prune env`` / ``rp.show_versions()``: versions as the installed metadata has them, and the known problems
(an old requests, torchattacks' vendored robustbench, an old torch) flagged from the environment itself."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import robust_prune as rp
from robust_prune.cli import main as cli_main
from robust_prune.env_info import PACKAGES, environment_problems, robustbench_owners


def _site(tmp_path: Path, owners: dict[str, str]) -> Path:
    """A site dir holding a robustbench package and a ``.dist-info`` per owner whose RECORD lists its files."""
    site = tmp_path / "site"
    (site / "robustbench").mkdir(parents=True)
    (site / "robustbench" / "__init__.py").write_text("")
    for name, version in owners.items():
        info = site / f"{name}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (info / "RECORD").write_text(f"robustbench/__init__.py,,\n{info.name}/METADATA,,\n{info.name}/RECORD,,\n")
    return site


def test_env_prints_the_installed_versions_and_devices(capsys):
    assert cli_main(["env"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Copy-and-paste the text below into your bug report")
    shown = dict(line[2:].split(": ", 1) for line in lines if line.startswith("- ") and ": " in line)
    for name in PACKAGES:
        try:
            expected = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            expected = "not installed"
        assert shown[name].split(" (")[0] == expected, name
    assert shown["robust_prune"].startswith(rp.__version__ + " (")
    assert shown["Devices"].startswith("cpu") and "CUDA" in shown["torch"] and "cuDNN" in shown["torch"]
    assert "show_versions" in rp.__all__


def test_torchattacks_vendored_robustbench_is_flagged(tmp_path):
    vendored = _site(tmp_path / "a", {"torchattacks": "3.5.1"})
    origin, owners = robustbench_owners([str(vendored)])
    assert origin == (vendored / "robustbench" / "__init__.py").resolve() and owners == ["torchattacks"]
    (problem,) = environment_problems({}, path=[str(vendored)])
    assert "torchattacks' vendored 2022 copy" in problem and str(vendored / "robustbench") in problem
    overwritten = _site(tmp_path / "b", {"torchattacks": "3.5.1", "robustbench": "1.1"})
    (problem,) = environment_problems({}, path=[str(overwritten)])
    assert "It overwrote the files of robustbench." in problem
    real = _site(tmp_path / "c", {"robustbench": "1.1"})
    assert robustbench_owners([str(real)])[1] == ["robustbench"] and environment_problems({}, path=[str(real)]) == []
    assert robustbench_owners([str(tmp_path / "empty")]) == (None, [])


def test_old_requests_and_old_torch_are_flagged_with_the_fix():
    (requests,) = environment_problems({"requests": "2.25.1"}, path=[])
    assert "CVE-2024-47081" in requests and "pip install -U requests" in requests
    assert environment_problems({"requests": "2.32.4", "torch": "2.3.0+cpu"}, path=[]) == []
    (torch,) = environment_problems({"torch": "2.2.2+cu121"}, path=[])
    assert "GradScaler" in torch
