"""What a bug report needs: versions, devices and known-bad combinations (``robust-prune env``, ``rp.show_versions()``).

Like ``accelerate env`` and ``huggingface-cli env``: the versions of Python and of every library robust_prune stands
on (read from the installed distributions' metadata, so nothing heavy is imported but torch), the devices torch sees,
and the known problems of this environment:

- ``requests`` older than 2.32.4, which torchattacks' pin (``requests~=2.25.1``) brings: three advisories
  (CVE-2023-32681, CVE-2024-35195, CVE-2024-47081). ``pip install -U requests`` keeps torchattacks working.
- A ``robustbench`` whose files belong to torchattacks' wheel (a 2022 copy of RobustBench's helpers), not to
  RobustBench: told by which distribution's RECORD lists the ``robustbench/__init__.py`` that Python imports.
- torch older than 2.3 (fp16 training uses ``torch.amp.GradScaler(device)``, new in 2.3).

Example:
    >>> text = env_report()
    >>> text.splitlines()[0].startswith("Copy-and-paste")
    True
    >>> "- torchattacks: " in text and "- datasets: " in text
    True
"""

from __future__ import annotations

import importlib.machinery
import importlib.metadata
import platform
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["PACKAGES", "env_report", "environment_problems", "package_versions", "robustbench_owners", "show_versions"]

# Distribution names, in the order a report lists them.
PACKAGES = ("torch", "torchvision", "timm", "torch-pruning", "torchattacks", "huggingface_hub",
            "accelerate", "safetensors", "datasets", "onnxruntime", "requests", "numpy")  # fmt: skip
NOT_INSTALLED = "not installed"
SAFE_REQUESTS = "2.32.4"  # the first release without CVE-2023-32681, CVE-2024-35195 and CVE-2024-47081
GRADSCALER_TORCH = "2.3"  # torch.amp.GradScaler(device) is new in torch 2.3


def package_versions(names: Sequence[str] = PACKAGES) -> dict[str, str]:
    """``{distribution: version}`` from the installed metadata; ``"not installed"`` for a missing one.

    Example:
        >>> package_versions(["torch", "no-such-package-here"])["no-such-package-here"]
        'not installed'
    """
    out = {}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = NOT_INSTALLED
    return out


def robustbench_owners(path: Sequence[str] | None = None) -> tuple[Path | None, list[str]]:
    """The ``robustbench/__init__.py`` Python would import (from ``path``, default ``sys.path``) and the
    distributions whose RECORD lists that very file (``["torchattacks"]`` for the vendored copy).

    Example:
        >>> robustbench_owners([])
        (None, [])
    """
    search = list(sys.path if path is None else path)
    spec = importlib.machinery.PathFinder.find_spec("robustbench", search)
    if spec is None or spec.origin is None:
        return None, []
    origin = Path(spec.origin).resolve()
    owners = []
    for dist in importlib.metadata.distributions(path=search):
        for file in dist.files or ():
            if file.name == "__init__.py" and file.parts[:1] == ("robustbench",):
                if Path(str(dist.locate_file(file))).resolve() == origin:
                    owners.append(str(dist.metadata["Name"]))
    return origin, sorted(set(owners))


def _older(version: str, than: str) -> bool:
    from packaging.version import InvalidVersion, Version

    try:
        return Version(version) < Version(than)
    except InvalidVersion:
        return False


def environment_problems(
    versions: dict[str, str] | None = None, *, path: Sequence[str] | None = None
) -> list[str]:
    """The known-bad combinations found, each with what to do (empty when none).

    Args:
        versions: :func:`package_versions`' answer (read afresh when None).
        path: where to look for ``robustbench`` (default ``sys.path``).

    Example:
        >>> environment_problems({"requests": "2.25.1", "torch": "2.4.0"}, path=[])[0].split(":")[0]
        'requests 2.25.1 is older than 2.32.4'
    """
    versions = package_versions() if versions is None else versions
    problems = []
    requests = versions.get("requests", NOT_INSTALLED)
    if requests != NOT_INSTALLED and _older(requests, SAFE_REQUESTS):
        problems.append(
            f"requests {requests} is older than {SAFE_REQUESTS}: it carries CVE-2023-32681, CVE-2024-35195 and "
            "CVE-2024-47081 (torchattacks pins requests~=2.25.1). Run `pip install -U requests`: torchattacks and "
            "robust_prune keep working; pip's resolver warning about the pin is expected (README: Installing into "
            "an existing environment)."
        )
    origin, owners = robustbench_owners(path)
    if "torchattacks" in owners:
        others = [o for o in owners if o != "torchattacks"]
        overwritten = f" It overwrote the files of {', '.join(others)}." if others else ""
        problems.append(
            f"`import robustbench` loads {origin.parent if origin else '?'}, torchattacks' vendored 2022 copy of "
            f"RobustBench's helpers, not RobustBench.{overwritten} To use RobustBench, install it in another "
            "environment, or reinstall it after torchattacks (pip install --force-reinstall robustbench)."
        )
    torch = versions.get("torch", NOT_INSTALLED)
    if torch != NOT_INSTALLED and _older(torch.split("+")[0], GRADSCALER_TORCH):
        problems.append(
            f"torch {torch} is older than {GRADSCALER_TORCH}: fp16 training (mixed_precision='fp16') uses "
            "torch.amp.GradScaler(device), new in torch 2.3. Upgrade torch, or train with bf16 or no mixed precision."
        )
    return problems


def _devices() -> list[str]:
    import torch

    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        found.append("mps")
    return found


def _torch_build() -> str:
    import torch

    cuda = torch.version.cuda or "none"
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    return f"CUDA {cuda}, cuDNN {cudnn or 'none'}"


def env_report(*, path: Sequence[str] | None = None) -> str:
    """The text ``robust-prune env`` prints: what a bug report should paste.

    Args:
        path: where to look for ``robustbench`` (default ``sys.path``).

    Example:
        >>> "- Devices: cpu" in env_report()
        True
    """
    from ._version import __version__

    versions = package_versions()
    lines = [
        "Copy-and-paste the text below into your bug report, together with the command you ran and its full output.",
        "",
        f"- robust_prune: {__version__} ({Path(__file__).parent})",
        f"- Platform: {platform.platform()}",
        f"- Python: {platform.python_version()} ({sys.executable})",
    ]
    for name, version in versions.items():
        build = f" ({_torch_build()})" if name == "torch" and version != NOT_INSTALLED else ""
        lines.append(f"- {name}: {version}{build}")
    lines.append(f"- Devices: {', '.join(_devices())}")
    problems = environment_problems(versions, path=path)
    lines += ["", "Known problems found:" if problems else "Known problems found: none"]
    lines += [f"- {problem}" for problem in problems]
    return "\n".join(lines)


def show_versions() -> None:
    """Print :func:`env_report`: versions, devices and known problems, for a bug report.

    Example:
        >>> import robust_prune as rp
        >>> rp.show_versions()  # doctest: +ELLIPSIS
        Copy-and-paste the text below into your bug report...
    """
    print(env_report())
