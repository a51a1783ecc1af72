"""Pruning that succeeds or refuses cleanly: never a foreign exception, never a half-pruned model, never a hang.

torch-pruning fails on many timm families in ways that say nothing to a user (an ``IndexError`` deep in the
dependency graph, a graph that takes minutes to trace, a pruned model whose forward breaks). :func:`guarded`
runs one pruning (or growing) job so that:

- the work is done on a deep copy (``mode="copy"``) whose state is moved into the caller's modules only on
  success (:func:`adopt`), or on the model itself after a snapshot that is put back on failure
  (``mode="restore"``): either way a failure leaves the caller's model exactly as it was;
- it runs under a time bound (``robust_prune.config.PRUNE_TIME_LIMIT_S``; SIGALRM, so a hang in Python code
  such as graph tracing is interrupted);
- any exception that is not already a robust_prune error becomes a :class:`FamilyPruningError` naming the
  family, the step that failed, the layer types torch-pruning does not know, and what to do.

Example:
    >>> import timm, torch
    >>> model = timm.create_model("resnet10t", num_classes=10)
    >>> def work(m, steps):
    ...     steps.now = "break on purpose"
    ...     m.fc.weight.data.zero_()
    ...     raise IndexError("index 320 is out of bounds")
    >>> before = model.fc.weight.clone()
    >>> try:
    ...     guarded(model, work, family="resnet")
    ... except FamilyPruningError as err:
    ...     print(err.step, "|", err.detail)
    break on purpose | IndexError: index 320 is out of bounds
    >>> torch.equal(model.fc.weight, before)
    True
"""

from __future__ import annotations

import contextlib
import copy
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch
from torch import nn

from .. import config as _config
from ..errors import FamilyPruningError, RobustPruneError

__all__ = ["Broken", "OutOfTime", "Steps", "adopt", "clone_module", "guarded", "time_bound", "unknown_layer_types"]

T = TypeVar("T")


class Broken(Exception):
    """Raised by guarded work for a failure it detects itself (its message becomes the error's detail)."""


class OutOfTime(BaseException):
    """The time bound ran out (a BaseException, so ``except Exception`` inside torch-pruning cannot swallow it)."""


class Steps:
    """What the guarded work is doing now (``steps.now = "trace the dependency graph"``), for the error message."""

    def __init__(self, now: str) -> None:
        self.now = now


@contextlib.contextmanager
def time_bound(seconds: float | None) -> Iterator[None]:
    """Raise :class:`OutOfTime` in the main thread after ``seconds`` (no bound where SIGALRM is unavailable).

    Nests: an outer bound that expires first keeps its handler; otherwise it is re-armed with its remaining time.
    """
    usable = (
        seconds is not None
        and seconds > 0
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
    )
    outer_left = signal.getitimer(signal.ITIMER_REAL)[0] if usable else 0.0
    if not usable or (outer_left and outer_left <= seconds):
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise OutOfTime

    previous = signal.signal(signal.SIGALRM, expire)
    start = time.monotonic()
    # and again every second after that: torch-pruning traces inside a bare ``except:`` that retries the forward
    signal.setitimer(signal.ITIMER_REAL, float(seconds), min(1.0, float(seconds)))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_left:
            signal.setitimer(signal.ITIMER_REAL, max(outer_left - (time.monotonic() - start), 1e-3))


def adopt(target: nn.Module, source: nn.Module) -> None:
    """Give every module of ``target`` the state of the module at the same name in ``source`` (its deep copy),
    keeping ``target``'s module objects, so references the caller holds to submodules stay valid."""
    sources = dict(source.named_modules(remove_duplicate=False))
    targets = dict(target.named_modules(remove_duplicate=False))
    to_target = {id(m): targets[n] for n, m in sources.items() if n in targets}
    for name, t in targets.items():
        s = sources.get(name)
        if s is None:
            continue
        state = {k: to_target.get(id(v), v) if isinstance(v, nn.Module) else v for k, v in s.__dict__.items()}
        state["_modules"] = {k: (to_target.get(id(c), c) if c is not None else None) for k, c in s._modules.items()}
        t.__dict__.clear()
        t.__dict__.update(state)
        t.__class__ = type(s)


def clone_module(model: nn.Module) -> nn.Module:
    """``copy.deepcopy(model)``, also for models holding computed tensors (a masked layer's ``weight`` is
    ``weight_orig * weight_mask``, which deepcopy refuses): those are copied detached."""
    memo: dict[int, Any] = {}
    for m in model.modules():
        for value in m.__dict__.values():
            if isinstance(value, torch.Tensor) and not value.is_leaf:
                memo[id(value)] = value.detach().clone()
    return copy.deepcopy(model, memo)


# Layer types whose parameters torch-pruning prunes itself.
_KNOWN = (
    nn.modules.conv._ConvNd,
    nn.Linear,
    nn.modules.batchnorm._BatchNorm,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.PReLU,
    nn.Embedding,
    nn.MultiheadAttention,
    nn.LSTM,
)


def unknown_layer_types(model: nn.Module, known: tuple[type, ...] = ()) -> list[str]:
    """Names of the layer classes in ``model`` that own parameters torch-pruning does not know how to prune
    (neither a standard layer nor one of ``known``, the adapter's customised pruners): what an adapter must handle.

    Example:
        >>> import timm
        >>> unknown_layer_types(timm.create_model("resnet10t"))
        []
    """
    found = set()
    for m in model.modules():
        if isinstance(m, _KNOWN + tuple(known)):
            continue
        if any(True for _ in m.parameters(recurse=False)):
            found.add(type(m).__name__)
    return sorted(found)


def guarded(
    model: nn.Module,
    work: Callable[[nn.Module, Steps], T],
    *,
    family: str,
    structure: str = "channel",
    mode: str = "copy",
    known: tuple[type, ...] = (),
    time_limit: float | None = None,
) -> T:
    """Run ``work(m, steps)`` on ``model`` so that it succeeds or raises a robust_prune error, in bounded time,
    leaving ``model`` unchanged on failure.

    Args:
        model: the caller's model.
        work: the job; it sets ``steps.now`` as it goes and returns its result.
        family: the timm family named in errors.
        structure: ``"channel"`` or ``"weight"`` (the advice in the error differs).
        mode: ``"copy"`` (work on a deep copy, adopt its state on success), ``"restore"`` (work on ``model``,
            put a snapshot back on failure) or ``"read"`` (``work`` does not change ``model``).
        known: layer types the adapter has pruners for (left out of the error's list of unknown layers).
        time_limit: seconds (default ``robust_prune.config.PRUNE_TIME_LIMIT_S``); 0: unbounded.

    Raises:
        FamilyPruningError: for any failure that is not already a robust_prune error.
    """
    if mode not in ("copy", "restore", "read"):
        raise ValueError(f"mode must be 'copy', 'restore' or 'read', got {mode!r}")
    limit = _config.PRUNE_TIME_LIMIT_S if time_limit is None else time_limit
    steps = Steps("copy the model")
    snapshot: nn.Module | None = None
    try:
        with time_bound(limit):
            if mode == "copy":
                working = clone_module(model)
            else:
                working = model
                if mode == "restore":
                    snapshot = clone_module(model)
            steps.now = "prune"
            result = work(working, steps)
        if mode == "copy":
            adopt(model, working)
        return result
    except BaseException as exc:
        if snapshot is not None:
            adopt(model, snapshot)
        if isinstance(exc, RobustPruneError) or not isinstance(exc, (Exception, OutOfTime)):
            raise
        raise _translate(exc, model, family, steps.now, structure, known, limit) from exc


def _translate(
    exc: BaseException, model: nn.Module, family: str, step: str, structure: str, known: tuple[type, ...], limit: float
) -> FamilyPruningError:
    if isinstance(exc, OutOfTime):
        detail = f"it did not finish within {limit:g} s (robust_prune.config.PRUNE_TIME_LIMIT_S)"
    elif isinstance(exc, Broken):
        detail = str(exc)
    else:
        detail = f"{type(exc).__name__}: {str(exc)[:300]}"
    unknown = unknown_layer_types(model, known) if structure == "channel" else []
    hints = f"Layers with parameters torch-pruning does not know: {', '.join(unknown)}." if unknown else ""
    return FamilyPruningError(family, step, detail, structure=structure, hints=hints)
