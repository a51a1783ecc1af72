"""Inverse weights inheritance (IWI): grow a pruned ticket back to its full-width timm architecture.

``grow(ticket)`` returns the original architecture (the same ``timm.create_model`` name and arguments, so
its state dict loads into a plain timm model) carrying the ticket's weights where the ticket kept them.

Channel tickets: every kept entry is scattered back to its original position. The positions are found
by replaying the pruning record on a *probe* model whose tensors hold their own flat indices, so the
survivors of the replay name where they came from. New entries are filled by ``init``:

- ``"zero-out"`` (default, function-preserving): weights that consume a new channel (any new index
  beyond a tensor's first dimension) are zero; weights that produce a new channel from kept ones are
  freshly initialised (timm's own initialisation, or normal with std ``scale``); per-channel tensors
  (biases, norm affine, BatchNorm running statistics) take timm's fresh values (BN: weight 1, bias 0,
  mean 0, var 1). New channels still flow through residual sums and pools, but nothing reads them,
  so BatchNorm families compute exactly the ticket's function. Where a layer pools channels over a grown
  width (LayerNorm, GroupNorm, a weight-standardised convolution) the adapter says growth is inexact
  (``Adapter.growth_is_exact``) and the deviation is reported.
- ``"zero"``: every new parameter is zero (the strictest sparse inheritance; channels whose weights are
  zero on both sides cannot learn).
- ``"random"``: timm's fresh initialisation at every new position (not function-preserving; a control).
- ``"small-out"``: ``zero-out`` with the weights that read new channels at a small non-zero std, so new
  channels train at first order (not function-preserving; ``GrowthInfo`` says so and measures by how much).
- ``"net2net"``: Net2Net widening: new channels copy kept ones and their consumers' weights are split
  (function-preserving for BatchNorm families).

Weight tickets: the masks are lifted; pruned weights start at zero (``"zero-out"``/``"zero"``, exactly
the ticket's function), small (``"small-out"``) or fresh (``"random"``), and every weight trains.
The fills live in :mod:`robust_prune.inheritance.growth_fills`.

The method ``robustify(method="iwi")`` (:mod:`robust_prune.methods.iwi`) chains: a ticket (``prune`` or
``lottery``) -> ``grow`` -> adversarial training of the full-width model.

Example:
    >>> import timm, robust_prune as rp
    >>> ticket = rp.prune(timm.create_model("resnet10t", num_classes=10), 0.5)
    >>> grown = grow(ticket)
    >>> grown.info.exact, type(grown.model).__name__
    (True, 'ResNet')
"""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from robust_prune.adapter_api import adapter_by_name, unwrap_model

from ..config import GROW_INITS, GROW_OUT_SCALE
from ..errors import ConfigError, PruningError
from ..models import NormalizedModel, eval_mode
from ..pruning.guard import Steps, guarded
from ..pruning.masks import folded_state
from ..pruning.record import PruningRecord, replay_history
from .growth_fills import FUNCTION_PRESERVING, fill_channels, fill_weights

__all__ = ["GrowResult", "GrowthInfo", "grow", "origin_indices"]

_BASE = 1 << 22  # float32 holds every integer below 2**24 exactly: one probe pass encodes 22 bits of an index


@dataclass
class GrowthInfo:
    """Where a grown model came from and how faithful it is to its ticket.

    Attributes:
        init: one of :data:`~robust_prune.config.GROW_INITS`.
        scale: std of the new incoming weights (``None``: timm's own initialisation).
        out_scale: ``"small-out"``'s relative std of the weights that read new channels (None otherwise).
        seed: the seed of the fresh weights.
        ticket_structure, ticket_sparsity: the ticket's pruning structure and requested sparsity.
        ticket_params, grown_params: parameter counts before and after growth.
        new_entries: parameter entries that did not come from the ticket.
        max_deviation: max |grown(x) - ticket(x)| over random inputs in eval mode.
        relative_deviation: ``max_deviation`` divided by max |ticket(x)|.
        adapter_exact: the adapter's claim (``grow_exact``) that growth preserves the function.
        exact: the measured deviation is within float tolerance (1e-5 relative).
        function_preserving: the init preserves the ticket's function by design (``zero-out``, ``zero``,
            ``net2net``), the adapter agrees and the measurement confirms it; ``small-out`` and ``random``
            never are.
    """

    init: str
    scale: float | None
    out_scale: float | None
    seed: int
    ticket_structure: str
    ticket_sparsity: float
    ticket_params: int
    grown_params: int
    new_entries: int
    max_deviation: float
    relative_deviation: float
    adapter_exact: bool
    exact: bool
    function_preserving: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GrowResult:
    """What :func:`grow` returns: the full-width model, its (dense) record and how faithful growth was.

    ``model, record = grow(ticket)`` unpacks like :func:`robust_prune.prune`'s result.
    """

    model: nn.Module
    record: PruningRecord
    info: GrowthInfo

    def __iter__(self):  # allows ``model, record = grow(...)``
        return iter((self.model, self.record))


def _split_ticket(ticket: Any, record: PruningRecord | None) -> tuple[nn.Module, PruningRecord]:
    """Accept a NormalizedModel carrying its ``record``, a ``PruneResult``, a ``RobustifyResult`` or
    ``(model, record)``."""
    model = ticket
    if isinstance(ticket, tuple) and len(ticket) == 2:
        model, record = ticket[0], record or ticket[1]
    elif not isinstance(ticket, nn.Module) and hasattr(ticket, "model") and hasattr(ticket, "record"):
        model, record = ticket.model, record or ticket.record
    if not isinstance(model, nn.Module):
        raise ConfigError(f"grow() needs a pruned model (or prune()'s result), got {type(ticket).__name__}.")
    if record is None and isinstance(model, NormalizedModel):
        record = model.record
    if not isinstance(record, PruningRecord):
        raise ConfigError(
            "grow() needs the ticket's pruning record: pass record=, prune()'s result, or a model loaded "
            "with robust_prune.from_pretrained()."
        )
    if not record.architecture:
        raise PruningError("The ticket's record has no timm architecture name, so its full width is unknown.")
    return model, record


def _named_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    return dict(model.state_dict(keep_vars=True))


def origin_indices(record: PruningRecord) -> dict[str, torch.Tensor]:
    """For every floating-point tensor of the pruned model, the flat index of each entry in the full model.

    The record is replayed on probe models whose tensors hold their own flat indices (22 bits per pass),
    so each entry that survives the replay carries its original position.

    Example:
        >>> import timm, robust_prune as rp
        >>> _, record = rp.prune(timm.create_model("resnet10t", num_classes=10), 0.5)
        >>> origin_indices(record)["conv1.0.weight"].shape[0]   # half of the stem's 24, rounded to a multiple of 8
        16
    """
    shapes = {n: t.numel() for n, t in _named_tensors(record.build_dense(seed=0)).items() if t.is_floating_point()}
    passes = max(1, math.ceil(math.log(max(max(shapes.values(), default=1), 2), _BASE)))
    found: dict[str, torch.Tensor] = {}
    for k in range(passes):
        probe = record.build_dense(seed=0)
        tensors = _named_tensors(probe)
        with torch.no_grad():
            for name in shapes:
                t = tensors[name]
                digits = (torch.arange(t.numel(), dtype=torch.int64, device=t.device) // (_BASE**k)) % _BASE
                t.copy_(digits.to(t.dtype).view(t.shape))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the probe's huge activations are meaningless, only shapes matter
            replay_history(probe, record)
        for name, t in _named_tensors(probe).items():
            if name not in shapes:
                continue
            values = t.detach().to(torch.float64)
            if not torch.equal(values, values.round()) or (values < 0).any() or (values >= _BASE).any():
                raise PruningError(
                    f"Growing {record.architecture}: the replay changed values of {name!r} instead of selecting "
                    "them, so its entries cannot be put back. The family's adapter needs a grow rule."
                )
            found[name] = found.get(name, 0) + values.to(torch.int64) * (_BASE**k)
    for name, idx in found.items():
        flat = idx.flatten()
        if flat.numel() and (flat.max() >= shapes[name] or flat.unique().numel() != flat.numel()):
            raise PruningError(f"Growing {record.architecture}: the positions of {name!r} could not be recovered.")
    return found


def _constant(t: torch.Tensor) -> bool:
    return t.numel() > 0 and bool((t == t.flatten()[0]).all())


def _grow_channels(
    ticket: nn.Module,
    record: PruningRecord,
    full: nn.Module,
    *,
    init: str,
    scale: float | None,
    out_scale: float,
    seed: int,
) -> int:
    origins = origin_indices(record)
    ticket_state = ticket.state_dict()
    full_tensors = _named_tensors(full)
    params = {n for n, _ in full.named_parameters()}
    gen = torch.Generator().manual_seed(seed)
    new_entries = 0
    with torch.no_grad():
        for name, target in full_tensors.items():
            if name not in ticket_state:
                raise PruningError(f"The ticket has no tensor {name!r}; it is not a pruned {record.architecture}.")
            source = ticket_state[name].detach().to("cpu", target.dtype)
            if name not in origins:  # integer buffers (num_batches_tracked, index tables) never change width
                if source.shape == target.shape:
                    target.copy_(source)
                continue
            if origins[name].shape != source.shape and name not in params and _constant(source):
                target.fill_(source.flatten()[0])  # a constant buffer resized outside the history (e.g. a zero bias)
                continue
            if origins[name].shape != source.shape:
                raise PruningError(
                    f"Growing {record.architecture}: replaying the record gives {name!r} the shape "
                    f"{tuple(origins[name].shape)}, but the ticket's is {tuple(source.shape)}; the family's adapter "
                    "changes it outside the recorded history, so it cannot be grown back."
                )
            idx = origins[name].flatten()
            kept = torch.zeros(target.numel(), dtype=torch.bool, device=target.device)
            kept[idx] = True
            kept = kept.view(target.shape)
            ticket_values = target.detach().clone().flatten()
            ticket_values[idx] = source.flatten()
            ticket_values = ticket_values.view(target.shape)
            values = fill_channels(target, kept, is_param=name in params, init=init, scale=scale,
                                   out_scale=out_scale, gen=gen, ticket_values=ticket_values)  # fmt: skip
            if init != "net2net":  # net2net rescales kept consumer entries itself
                values = torch.where(kept, ticket_values, values)
            target.copy_(values)
            if name in params:
                new_entries += int((~kept).sum())
    return new_entries


def _grow_weights(
    ticket: nn.Module, record: PruningRecord, full: nn.Module, *, init: str, out_scale: float, seed: int
) -> int:
    state, attached = folded_state({k: v.detach().cpu() for k, v in ticket.state_dict().items()})
    masks = {**attached, **{k: v.bool() for k, v in record.masks.items()}}
    full_state = full.state_dict()
    gen = torch.Generator().manual_seed(seed)
    new_entries = 0
    for name, mask in sorted(masks.items()):
        if name not in state:
            raise PruningError(f"The ticket's mask names {name!r}, which the model does not have.")
        removed = ~mask.to(state[name].device)
        new_entries += int(removed.sum())
        state[name] = fill_weights(state[name], removed, full_state[name], init=init, out_scale=out_scale, gen=gen)
    try:
        full.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise PruningError(f"The ticket's weights do not fit a fresh {record.architecture}: {exc}") from exc
    return new_entries


def _deviation(ticket: nn.Module, grown: nn.Module, input_size: list[int], seed: int) -> tuple[float, float]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(4, *input_size, generator=gen, device=gen.device).to(next(ticket.parameters()).device)
    with eval_mode(ticket, grown), torch.no_grad():
        ref = ticket(x).float().cpu()
        out = grown(x).float().cpu()
    dev = float((out - ref).abs().max())
    return dev, dev / max(float(ref.abs().max()), 1e-12)


def grow(
    ticket: Any,
    *,
    record: PruningRecord | None = None,
    init: str = "zero-out",
    scale: float | None = None,
    out_scale: float = GROW_OUT_SCALE,
    seed: int = 0,
) -> GrowResult:
    """Grow a pruned ticket back to its full-width timm architecture, inheriting the ticket's weights.

    Args:
        ticket: the pruned model (a NormalizedModel carries its ``record``; a timm model needs ``record=``),
            ``prune()``'s result, a ``RobustifyResult`` or ``(model, record)``. It is not changed.
        record: the ticket's pruning record, when ``ticket`` does not carry it.
        init: ``"zero-out"`` (function-preserving: new channels read kept ones, nothing reads them),
            ``"zero"`` (every new weight zero) or ``"random"`` (timm's fresh weights everywhere new).
        scale: std of the new incoming weights for ``"zero-out"``/``"small-out"``; ``None`` keeps timm's
            initialisation.
        out_scale: ``"small-out"``: the std of the weights that read new channels (channel tickets) or of the
            pruned weights (weight tickets), as a fraction of the std of the tensor's inherited weights.
        seed: seeds the fresh weights (the global RNG is left alone).

    Returns:
        A :class:`GrowResult`: ``model``, a fresh ``timm.create_model(record.architecture, **record.model_args)``
        (wrapped in NormalizedModel, carrying its record, when the ticket was) in eval mode; ``record``, a dense
        record whose ``extra`` says where it came from; ``info``, the :class:`GrowthInfo` (init, sizes and the
        measured output deviation).

    Raises:
        ConfigError: for an unknown ``init`` or a ticket without a record.
        PruningError: when the ticket does not fit its recorded architecture.

    Example:
        >>> import timm, torch, robust_prune as rp
        >>> ticket = rp.prune(timm.create_model("resnet10t", num_classes=10), 0.5)
        >>> grown = grow(ticket)
        >>> x = torch.rand(2, 3, 32, 32)
        >>> bool((grown.model(x) - ticket.model.eval()(x)).abs().max() < 1e-5)
        True
    """
    if init not in GROW_INITS:
        raise ConfigError(f"init must be one of {', '.join(GROW_INITS)}, got {init!r}.")
    if scale is not None and (not math.isfinite(scale) or scale < 0):
        raise ConfigError(f"scale must be a finite std >= 0 or None, got {scale!r}.")
    if not math.isfinite(out_scale) or out_scale < 0:
        raise ConfigError(f"out_scale must be a finite fraction >= 0, got {out_scale!r}.")
    model, record = _split_ticket(ticket, record)

    def work(m: nn.Module, steps: Steps) -> GrowResult:
        steps.now = "grow the ticket back to full width"
        with torch.random.fork_rng(devices=[]):  # replaying a record draws example inputs: leave the global RNG alone
            return _grow(m, record, init=init, scale=scale, out_scale=out_scale, seed=seed)

    family = str(record.architecture or record.adapter)
    return guarded(model, work, family=family, structure=record.structure, mode="read")


def _grow(
    model: nn.Module, record: PruningRecord, *, init: str, scale: float | None, out_scale: float, seed: int
) -> GrowResult:
    inner = unwrap_model(model)
    full = record.build_dense(seed=seed)
    if record.structure == "channel":
        new_entries = _grow_channels(inner, record, full, init=init, scale=scale, out_scale=out_scale, seed=seed)
    elif record.structure == "weight":
        new_entries = _grow_weights(inner, record, full, init=init, out_scale=out_scale, seed=seed)
    else:
        full.load_state_dict(inner.state_dict(), strict=True)
        new_entries = 0
    if init == "zero" and new_entries:
        warnings.warn(
            "grow(init='zero'): new channels have zero weights on both sides and get no gradient, so they "
            "cannot learn; use init='zero-out' to let them train while keeping the ticket's function.",
            stacklevel=3,
        )
    try:
        param = next(inner.parameters())
        full = full.to(device=param.device, dtype=param.dtype)
    except StopIteration:
        pass
    grown: nn.Module = full
    if isinstance(model, NormalizedModel):
        grown = NormalizedModel(full, model.mean.flatten().tolist(), model.std.flatten().tolist()).to(model.mean.device)
    dev, rel = _deviation(model, grown, record.input_size, seed)
    adapter_exact = adapter_by_name(record.adapter).growth_is_exact(inner, full)
    info = GrowthInfo(
        init=init,
        scale=scale,
        out_scale=out_scale if init == "small-out" else None,
        seed=seed,
        ticket_structure=record.structure,
        ticket_sparsity=record.sparsity,
        ticket_params=sum(p.numel() for p in inner.parameters()),
        grown_params=sum(p.numel() for p in full.parameters()),
        new_entries=new_entries,
        max_deviation=dev,
        relative_deviation=rel,
        adapter_exact=adapter_exact,
        exact=rel <= 1e-5,
        function_preserving=init in FUNCTION_PRESERVING and adapter_exact and rel <= 1e-5,
    )
    if init in FUNCTION_PRESERVING and adapter_exact and not info.exact:
        warnings.warn(
            f"grow(): the '{record.adapter}' adapter claims exact growth but the grown model deviates from the "
            f"ticket by {dev:.3g} (relative {rel:.3g}).",
            stacklevel=3,
        )
    grown_record = PruningRecord(
        structure="none",
        sparsity=0.0,
        adapter=record.adapter,
        architecture=record.architecture,
        model_args=copy.deepcopy(record.model_args),
        input_size=list(record.input_size),
        extra={"method": "grow", "growth": info.to_dict(), "ticket": record.to_dict()},
    )
    if isinstance(grown, NormalizedModel):
        grown.record = grown_record
    return GrowResult(grown.eval(), grown_record, info)
