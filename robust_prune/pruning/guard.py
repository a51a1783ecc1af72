"""Pruning that succeeds or refuses cleanly: never a foreign exception, never a half-pruned model, never a hang.

torch-pruning fails on many timm families in ways that say nothing to a user (an ``IndexError`` deep in the
dependency graph, a graph that takes minutes to trace, a pruned model whose forward breaks). :func:`guarded`
runs one pruning (or growing) job so that:

- the work is done on a deep copy (``mode="copy"``) whose state is moved into the caller's modules only on
  success (:func:`adopt`), or on the model itself after a snapshot that is put back on failure
  (``mode="restore"``): either way a failure leaves the caller's model exactly as it was;
- it runs under a time bound (``robust_prune.config.PRUNE_TIME_LIMIT_S``, :func:`time_bound`), so a hang in Python
  code such as graph tracing is interrupted, in the main thread or any other;
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
import ctypes
import signal
import threading
import time
import warnings
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
    """Raise :class:`OutOfTime` in the calling thread after ``seconds`` (None or 0: no bound), and again every
    second after that (torch-pruning traces inside a bare ``except:`` that retries the forward).

    In the main thread where the platform has SIGALRM, a timer signal raises it: that also interrupts a blocking
    call (a ``time.sleep``, a read). Elsewhere (another thread, Windows) a watchdog thread raises it in the calling
    thread with ``PyThreadState_SetAsyncExc``: that interrupts Python code (such as torch-pruning's graph tracing)
    but waits for a blocking call or a single long C operation to return. On an interpreter without that function
    (not CPython) the bound is absent, with a :class:`RuntimeWarning` saying so. Either way, the exception can land
    anywhere in the bounded Python code: bound only work whose state can be thrown away (:func:`guarded` works on
    a copy or restores a snapshot).

    Nests: the bound that expires first raises.

    Example:
        >>> import threading
        >>> outcome = []
        >>> def spin():
        ...     try:
        ...         with time_bound(0.2):
        ...             while True:
        ...                 pass
        ...     except OutOfTime:
        ...         outcome.append("interrupted")
        >>> worker = threading.Thread(target=spin)
        >>> worker.start(); worker.join(10)
        >>> outcome
        ['interrupted']
    """
    if seconds is None or seconds <= 0:
        yield
    elif hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread():
        with _alarm(float(seconds)):
            yield
    elif _raise_in_thread is None:
        warnings.warn(
            f"The time bound of {seconds:g} s is not applied: this interpreter cannot interrupt a thread other than "
            "the main one (needs CPython's PyThreadState_SetAsyncExc); run the work in the main thread to bound it.",
            RuntimeWarning,
            stacklevel=3,
        )
        yield
    else:
        with _watchdog(float(seconds)):
            yield


@contextlib.contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    """The main thread's bound: SIGALRM. An outer bound that expires first keeps its handler; otherwise it is
    re-armed with its remaining time."""
    outer_left = signal.getitimer(signal.ITIMER_REAL)[0]
    if outer_left and outer_left <= seconds:
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise OutOfTime

    previous = signal.signal(signal.SIGALRM, expire)
    start = time.monotonic()
    signal.setitimer(signal.ITIMER_REAL, seconds, min(1.0, seconds))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer_left:
            signal.setitimer(signal.ITIMER_REAL, max(outer_left - (time.monotonic() - start), 1e-3))


def _async_raiser() -> Callable[[int, type[BaseException] | None], None] | None:
    """CPython's ``PyThreadState_SetAsyncExc`` (None elsewhere): schedules an exception in another thread (None
    clears a scheduled one that has not been raised yet)."""
    set_async = getattr(getattr(ctypes, "pythonapi", None), "PyThreadState_SetAsyncExc", None)
    if set_async is None:
        return None

    def raise_in(thread_id: int, exc: type[BaseException] | None) -> None:
        set_async(ctypes.c_ulong(thread_id), None if exc is None else ctypes.py_object(exc))  # None: NULL, clears

    return raise_in


_raise_in_thread = _async_raiser()


@contextlib.contextmanager
def _watchdog(seconds: float) -> Iterator[None]:
    """Any other thread's bound: a daemon thread raises :class:`OutOfTime` in this one until the block ends."""
    target = threading.get_ident()
    lock = threading.Lock()
    done = threading.Event()

    def watch() -> None:
        delay = seconds
        while not done.wait(delay):
            with lock:  # never raise after the block has ended
                if not done.is_set():
                    _raise_in_thread(target, OutOfTime)
            delay = 1.0

    watcher = threading.Thread(target=watch, name="robust_prune time bound", daemon=True)
    try:  # started inside: an expiry that lands before the block still ends the watcher
        watcher.start()
        yield
    finally:
        try:
            with lock:
                done.set()
                _raise_in_thread(target, None)  # one raised just now and not yet delivered is dropped
        finally:
            done.set()  # (also when an expiring bound's exception landed before the lock was taken)


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
