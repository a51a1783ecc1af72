"""AutoAttack by its authors' own code (``pyautoattack``: Croce and Hein's reference implementation), as a cross-check
of the library's ``autoattack`` cascade on the same test points.

Installed only where used: ``pip install robust-prune[bench]`` (or ``[test]``) brings ``pyautoattack``.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from benchmarks._cells import CellUnavailable

__all__ = ["reference_autoattack"]


def reference_autoattack(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, seed: int
) -> dict[str, Any]:
    """Robust accuracy of ``model`` (pixel space in, eval mode) under the authors' standard AutoAttack (L-inf).

    Raises:
        CellUnavailable: ``pyautoattack`` is not installed.
    """
    try:
        from pyautoattack import AutoAttack
    except ModuleNotFoundError as exc:
        raise CellUnavailable("the reference AutoAttack needs pyautoattack: pip install 'robust-prune[bench]'") from exc
    from robust_prune.distributed import model_device

    model.eval()
    device = model_device(model)
    started = time.perf_counter()
    with torch.random.fork_rng(devices=[]):  # the reference seeds the global generator
        attack = AutoAttack(model, norm="Linf", eps=eps, version="standard", seed=seed, device=device)
        adv, _ = attack.run_standard_evaluation(x.to(device), y.to(device), batch_size=250)  # (x_adv, y_adv)
        with torch.no_grad():
            correct = (model(adv).argmax(1) == y.to(device)).float()
    return {
        "autoattack_reference": float(correct.mean()),
        "n_reference": len(y),
        "reference_seconds": round(time.perf_counter() - started, 2),
    }
