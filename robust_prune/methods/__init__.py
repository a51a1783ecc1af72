"""The methods ``robustify(method=...)`` runs, one module each, in a registry like timm's ``@register_model``.

A method module (``dense``, ``prune``, ``lottery``, ``iwi``) registers a :class:`Method`, everything about the method
in one place: its stages as data (:mod:`robust_prune.training.runner` carries them out, deriving every stage's seed
from its name), the number of training epochs it spends (for equal-budget comparisons), its help text, the text its
model card says about it and the defaults it gives the config. Everything that lists or validates methods
(``RobustifyConfig``, the CLI's choices and help, :func:`list_methods`, the model card) reads this registry. This
module holds only the registry; :mod:`robust_prune.api` imports the method modules, so importing ``robust_prune``
registers all four.

Example:
    >>> import robust_prune as rp
    >>> rp.methods.list_methods()
    ['dense', 'iwi', 'lottery', 'prune']
    >>> rp.methods.get_method("dense").epochs(rp.RobustifyConfig(method="dense"))
    6
    >>> [stage.name for stage in rp.methods.get_method("prune").stages(rp.RobustifyConfig())]
    ['pretrain', 'prune', 'finetune']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..config import RobustifyConfig
    from ..training.runner import Step, Train

__all__ = ["Method", "config_defaults", "get_method", "list_methods", "register_method", "ticket_methods"]


@dataclass(frozen=True)
class Method:
    """One registered method.

    Attributes:
        name: the ``method=`` value.
        run: ``run(model, bundle, config, *, runner, progress) -> RobustifyResult``: carries out ``stages`` with
            ``runner`` (the :class:`~robust_prune.training.runner.StageRunner` that checkpoints and resumes them) and
            measures the result.
        stages: ``stages(config)``: the method's :class:`~robust_prune.training.runner.Train` and
            :class:`~robust_prune.training.runner.Step` stages, in order.
        epochs: the training epochs a config of this method spends in all.
        help: one line for the CLI and the docs.
        card: what the model card says the method did.
        ticket: whether its stages make the pruned ticket that ``method="iwi"`` grows (the run then folds weight
            masks into the weights and measures the ticket).
        prune_defaults: the :class:`~robust_prune.PruneConfig` fields this method defaults differently.
        defaults: the defaults of the ``RobustifyConfig`` fields only this method reads (e.g. iwi's ``grow_init``).
    """

    name: str
    run: Callable[..., Any]
    stages: Callable[[RobustifyConfig], Sequence[Train | Step]]
    epochs: Callable[[RobustifyConfig], int]
    help: str
    card: str
    ticket: bool = False
    prune_defaults: Mapping[str, Any] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, Method] = {}


def register_method(
    name: str,
    *,
    run: Callable[..., Any],
    stages: Callable[[RobustifyConfig], Sequence[Train | Step]],
    epochs: Callable[[RobustifyConfig], int],
    help: str,
    card: str,
    ticket: bool = False,
    prune_defaults: Mapping[str, Any] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> Method:
    """Register ``robustify(method=name)`` (the arguments are :class:`Method`'s attributes).

    Example:
        Not run (``+SKIP``): registering changes the process-wide registry that the rest of the suite lists.

        >>> from robust_prune.methods._stages import run_stages  # doctest: +SKIP
        >>> register_method("noop", run=run_stages, stages=lambda config: [], epochs=lambda config: 0,
        ...                 help="does nothing", card="Nothing was done.")  # doctest: +SKIP
    """
    if name in _REGISTRY and _REGISTRY[name].stages is not stages:
        raise ValueError(f"A method called {name!r} is registered already.")
    method = Method(name=name, run=run, stages=stages, epochs=epochs, help=help, card=card, ticket=ticket,
                    prune_defaults=dict(prune_defaults or {}), defaults=dict(defaults or {}))  # fmt: skip
    _REGISTRY[name] = method
    return method


def list_methods() -> list[str]:
    """The registered method names, sorted."""
    return sorted(_REGISTRY)


def ticket_methods() -> list[str]:
    """The methods that can make the ticket ``method="iwi"`` grows (its ``ticket_method=`` choices)."""
    return sorted(name for name, method in _REGISTRY.items() if method.ticket)


def config_defaults() -> dict[str, Any]:
    """The ``RobustifyConfig`` fields that registered methods give defaults (:attr:`Method.defaults`)."""
    return {k: v for method in _REGISTRY.values() for k, v in method.defaults.items()}


def get_method(name: str) -> Method:
    """The registered :class:`Method` called ``name``.

    Raises:
        ConfigError: no method has that name.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"Unknown method {name!r}. Choose one of: {', '.join(list_methods())}.") from None
