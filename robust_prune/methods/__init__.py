"""The methods ``robustify(method=...)`` runs, one module each, in a registry like timm's ``@register_model``.

A method module (``dense``, ``prune``, ``lottery``, ``iwi``) registers a :class:`Method`: its run function, the
number of training epochs it spends (for equal-budget comparisons) and its help text. Everything that lists or
validates methods (``RobustifyConfig``, the CLI's choices and help, :func:`list_methods`) reads this registry.
This module holds only the registry; :mod:`robust_prune.api` imports the method modules, so importing
``robust_prune`` registers all four.

Example:
    >>> import robust_prune as rp
    >>> rp.methods.list_methods()
    ['dense', 'iwi', 'lottery', 'prune']
    >>> rp.methods.get_method("dense").epochs(rp.RobustifyConfig(method="dense"))
    6
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..config import RobustifyConfig

__all__ = ["Method", "get_method", "list_methods", "register_method", "ticket_methods"]


@dataclass(frozen=True)
class Method:
    """One registered method.

    Attributes:
        name: the ``method=`` value.
        run: ``run(model, bundle, config, *, runner, progress) -> RobustifyResult``; ``runner`` is the
            :class:`~robust_prune.runner.StageRunner` that checkpoints and resumes every stage.
        epochs: the training epochs a config of this method spends in all.
        help: one line for the CLI and the docs.
        ticket: ``ticket(model, bundle, config, *, runner, progress) -> Ticket`` when the method can make the
            pruned ticket that ``method="iwi"`` grows (None otherwise).
    """

    name: str
    run: Callable[..., Any]
    epochs: Callable[[RobustifyConfig], int]
    help: str
    ticket: Callable[..., Any] | None = None


_REGISTRY: dict[str, Method] = {}


def register_method(
    name: str, *, epochs: Callable[[RobustifyConfig], int], help: str, ticket: Callable[..., Any] | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated ``run`` function as ``robustify(method=name)``.

    Example:
        Not run (``+SKIP``): registering changes the process-wide registry that the rest of the suite lists.

        >>> @register_method("noop", epochs=lambda config: 0, help="does nothing")  # doctest: +SKIP
        ... def run(model, bundle, config, *, runner, progress): ...
    """

    def decorate(run: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY and _REGISTRY[name].run is not run:
            raise ValueError(f"A method called {name!r} is registered already.")
        _REGISTRY[name] = Method(name=name, run=run, epochs=epochs, help=help, ticket=ticket)
        return run

    return decorate


def list_methods() -> list[str]:
    """The registered method names, sorted."""
    return sorted(_REGISTRY)


def ticket_methods() -> list[str]:
    """The methods that can make the ticket ``method="iwi"`` grows (its ``ticket_method=`` choices)."""
    return sorted(name for name, method in _REGISTRY.items() if method.ticket is not None)


def get_method(name: str) -> Method:
    """The registered :class:`Method` called ``name``.

    Raises:
        ConfigError: no method has that name.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"Unknown method {name!r}. Choose one of: {', '.join(list_methods())}.") from None
