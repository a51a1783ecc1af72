"""The importance protocol and its registry: one class per criterion, found by the name users pass.

A criterion scores what pruning may remove, for both structures: :meth:`Importance.channel_scorer` returns
torch-pruning's scorer of channel groups (``structure="channel"``), :meth:`Importance.weight_scores` scores each
weight of a layer (``structure="weight"``). A criterion that serves one structure only says so in ``structures``;
one that scores with gradients of the run's loss sets ``gradients`` (the pruner computes them first, from
``loss_fn``).

Example:
    >>> import torch
    >>> get_importance("magnitude").weight_scores(torch.tensor([[-2.0, 1.0]]), None)
    tensor([[2., 1.]])
    >>> list_importances("weight")
    ('magnitude', 'random', 'robust')
"""

from __future__ import annotations

from typing import ClassVar, TypeVar

import torch
import torch_pruning as tp

from ...errors import ConfigError

__all__ = ["Importance", "check_importance", "get_importance", "list_importances", "register_importance"]

_REGISTRY: dict[str, type[Importance]] = {}
C = TypeVar("C", bound="type[Importance]")


class Importance:
    """One pruning criterion. Subclass, set ``name`` (and ``structures``/``gradients`` where they differ), override
    the scorer of each structure it serves, and decorate with :func:`register_importance`.

    Attributes:
        name: what users pass as ``importance=`` (``--importance`` on the command line).
        structures: the structures it scores (``"channel"``, ``"weight"``).
        gradients: it scores with the gradients of ``loss_fn(model)``, which the pruner computes before scoring.
    """

    name: ClassVar[str] = ""
    structures: ClassVar[tuple[str, ...]] = ("channel", "weight")
    gradients: ClassVar[bool] = False

    def channel_scorer(self) -> tp.importance.Importance:
        """A fresh torch-pruning scorer: one score per channel of a dependency group (lowest goes first)."""
        raise NotImplementedError(f"importance {self.name!r} does not score channels")

    def weight_scores(self, weight: torch.Tensor, grad: torch.Tensor | None) -> torch.Tensor:
        """One score per entry of ``weight`` (the weight the layer computes with; lowest goes first); ``grad`` is
        its gradient when the criterion asks for ``gradients`` (None where the loss does not reach the layer)."""
        raise NotImplementedError(f"importance {self.name!r} does not score weights")


def register_importance(cls: C) -> C:
    """Class decorator: make ``cls`` available under ``cls.name`` (a later class of the same name replaces it)."""
    if not isinstance(cls, type) or not issubclass(cls, Importance):
        raise TypeError(f"register_importance expects an Importance subclass, got {cls!r}.")
    if not cls.name or not isinstance(cls.name, str):
        raise TypeError(f"{cls.__name__} needs a name: the string users pass as importance=.")
    _REGISTRY[cls.name] = cls
    return cls


def get_importance(name: str) -> Importance:
    """A new instance of the criterion registered as ``name``.

    Raises:
        ConfigError: no criterion has that name.
    """
    if name not in _REGISTRY:
        raise ConfigError(f"Unknown importance {name!r}. Choose one of: {', '.join(list_importances())}.")
    return _REGISTRY[name]()


def list_importances(structure: str | None = None) -> tuple[str, ...]:
    """The registered criteria's names, in registration order; with ``structure``, those that score it."""
    return tuple(name for name, cls in _REGISTRY.items() if structure is None or structure in cls.structures)


def check_importance(name: str, structure: str) -> None:
    """Refuse a ``name`` no criterion has, or whose criterion does not score ``structure`` (the gradient criteria
    score one structure each: ``taylor`` channels, ``robust`` weights); :class:`~robust_prune.PruneConfig` calls it.

    Raises:
        ConfigError: naming the criteria that score ``structure`` (a gradient criterion's counterpart first).
    """
    criterion = get_importance(name)
    if structure in criterion.structures:
        return
    names = list_importances(structure)
    if criterion.gradients:
        names = tuple(sorted(names, key=lambda n: not _REGISTRY[n].gradients))
    scored = " and ".join(f"{s}s" for s in criterion.structures)
    raise ConfigError(
        f"importance={name!r} scores {scored}, not {structure}s; with structure={structure!r} use "
        f"{', '.join(repr(n) for n in names)}."
    )
