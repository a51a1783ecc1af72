"""How :func:`robust_prune.grow` fills the entries a ticket did not keep, one function per ticket structure.

Channel tickets (``kept`` marks the entries of a full-width tensor that came from the ticket):

- ``"zero-out"``: entries that consume a new channel (a new index beyond the first dimension) are zero; the
  rest (new channels' incoming weights, per-channel tensors) keep timm's fresh values, or ``N(0, scale)``.
- ``"small-out"``: as ``zero-out``, but entries that consume a new channel are ``N(0, out_scale * s)``, ``s``
  the std of the tensor's kept entries: new channels get a first-order gradient, the function moves a little.
- ``"zero"``: every new parameter is zero. ``"random"``: timm's fresh values everywhere new.
- ``"net2net"`` (Chen et al. 2016, "Net2Net"): each new channel copies a kept channel of the same channel
  space (its incoming weights, biases, norm statistics), and every consumer's weights from a kept channel are
  split between it and its copies with random positive shares that sum to one, so BatchNorm families compute
  the ticket's function exactly and the copies still get different gradients. Which kept channel a new index
  copies depends only on the tensor dimension's size and kept set, so every tensor of one channel space (a
  conv's output, its BatchNorm, the next conv's input, a residual sum) agrees without a dependency graph.

Weight tickets (``removed`` marks pruned weights): zero for ``zero-out``/``zero``, fresh for ``random``,
``N(0, out_scale * s)`` for ``small-out``; ``net2net`` has no channel to copy and is refused.

Example:
    >>> import torch
    >>> kept = torch.tensor([[True, False], [False, False]])
    >>> fill_channels(torch.ones(2, 2), kept, is_param=True, init="zero-out", scale=None, out_scale=0.1,
    ...               gen=torch.Generator().manual_seed(0))
    tensor([[1., 0.],
            [1., 0.]])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..errors import ConfigError

__all__ = ["FUNCTION_PRESERVING", "fill_channels", "fill_weights", "kept_along", "net2net_sources"]

# inits that keep the ticket's function (BatchNorm families): what GrowthInfo.function_preserving claims
FUNCTION_PRESERVING = ("zero-out", "zero", "net2net")


def _drawn(
    draw: Any, shape: Sequence[int], gen: torch.Generator, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """``draw`` (torch.rand / torch.randn) from ``gen`` on the generator's device, then moved to ``device``: the
    same numbers whatever device the model is on."""
    return draw(tuple(shape), generator=gen, dtype=dtype, device=gen.device).to(device)


def kept_along(kept: torch.Tensor, dim: int) -> torch.Tensor:
    """Which indices of dimension ``dim`` hold at least one kept entry (a bool vector)."""
    return kept.any(dim=tuple(i for i in range(kept.dim()) if i != dim)) if kept.dim() > 1 else kept


def _consumes_new(kept: torch.Tensor) -> torch.Tensor:
    """Entries with a new index beyond the first dimension: they read a channel the ticket did not have."""
    out = torch.zeros_like(kept)
    for d in range(1, kept.dim()):
        shape = [1] * kept.dim()
        shape[d] = kept.shape[d]
        out |= ~kept_along(kept, d).view(shape).expand_as(kept)
    return out


def _std(values: torch.Tensor, mask: torch.Tensor) -> float:
    chosen = values[mask]
    return float(chosen.float().std()) if chosen.numel() > 1 else 0.0


def net2net_sources(kept_index: torch.Tensor) -> torch.Tensor:
    """For a dimension whose kept indices are ``kept_index`` (bool), the index each position copies.

    Kept positions copy themselves; the i-th new position copies the (i mod n_kept)-th kept one, so copies
    spread evenly. A function of the dimension alone: every tensor of one channel space gets the same map.

    Example:
        >>> net2net_sources(torch.tensor([True, False, True, False, False])).tolist()
        [0, 0, 2, 2, 0]
    """
    kept_idx = torch.nonzero(kept_index).flatten()
    src = torch.arange(kept_index.numel(), device=kept_index.device)
    new_idx = torch.nonzero(~kept_index).flatten()
    if kept_idx.numel() and new_idx.numel():
        src[new_idx] = kept_idx[torch.arange(new_idx.numel(), device=new_idx.device) % kept_idx.numel()]
    return src


def _net2net(values: torch.Tensor, kept: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Copy producers along dimension 0, split consumers along every further dimension (see the module doc)."""
    out = values.clone()
    k0 = kept_along(kept, 0)
    if (~k0).any() and k0.any():
        out = out.index_select(0, net2net_sources(k0))
    for d in range(1, out.dim()):
        kd = kept_along(kept, d)
        if kd.all() or not kd.any():
            continue
        src = net2net_sources(kd)
        shares = _drawn(torch.rand, (kd.numel(),), gen, torch.float64, src.device) + 0.5  # [0.5, 1.5): no share ~0
        totals = torch.zeros(kd.numel(), dtype=torch.float64, device=src.device).index_add_(0, src, shares)
        factor = (shares / totals[src]).to(out.dtype)
        shape = [1] * out.dim()
        shape[d] = -1
        out = out.index_select(d, src) * factor.view(shape)
    return out


def fill_channels(
    full: torch.Tensor,
    kept: torch.Tensor,
    *,
    is_param: bool,
    init: str,
    scale: float | None,
    out_scale: float,
    gen: torch.Generator,
    ticket_values: torch.Tensor | None = None,
) -> torch.Tensor:
    """The full-width tensor's values everywhere (kept entries too, for ``net2net`` whose consumers are rescaled).

    Args:
        full: the fresh full-width tensor (timm's initialisation).
        kept: bool, same shape, True where the ticket's entry goes.
        is_param: a parameter (``zero`` leaves buffers such as running statistics at timm's values).
        init, scale, out_scale: see the module doc.
        gen: the generator of every random draw.
        ticket_values: ``full``'s shape with the ticket's entries at ``kept`` (needed by ``net2net``).
    """
    values = full.detach().clone()
    if init == "random":
        return values
    if init == "zero":
        return torch.zeros_like(values) if is_param else values
    if init == "net2net":
        if ticket_values is None:
            raise ConfigError("net2net growth needs the ticket's values.")
        return _net2net(torch.where(kept, ticket_values, values), kept, gen)
    if full.dim() < 2:  # per-channel: biases, norm affine, running statistics keep timm's fresh values
        return values
    if scale is not None:
        values = _drawn(torch.randn, values.shape, gen, values.dtype, values.device) * scale
    consumes_new = _consumes_new(kept)
    if init == "small-out":
        std = out_scale * _std(ticket_values if ticket_values is not None else full, kept)
        noise = _drawn(torch.randn, values.shape, gen, values.dtype, values.device) * std
        return torch.where(consumes_new, noise, values)
    return torch.where(consumes_new, torch.zeros_like(values), values)


def fill_weights(
    ticket: torch.Tensor,
    removed: torch.Tensor,
    fresh: torch.Tensor,
    *,
    init: str,
    out_scale: float,
    gen: torch.Generator,
) -> torch.Tensor:
    """A weight-ticket tensor with its pruned entries (``removed``) filled by ``init``.

    Raises:
        ConfigError: ``init="net2net"``, which widens channels (a weight ticket has every channel).
    """
    if init == "net2net":
        raise ConfigError(
            "grow(init='net2net') copies channels, but a weight ticket keeps every channel: use 'zero-out' "
            "(exact), 'small-out' or 'random' for weight tickets."
        )
    if init == "random":
        fill = fresh.to(ticket.dtype)
    elif init == "small-out":
        std = out_scale * _std(ticket, ~removed)
        fill = _drawn(torch.randn, ticket.shape, gen, ticket.dtype, ticket.device) * std
    else:
        fill = torch.zeros_like(ticket)
    return torch.where(removed, fill, ticket)
