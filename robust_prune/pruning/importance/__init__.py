"""Pruning criteria: the :class:`Importance` protocol, its registry, and one module per built-in criterion
(registered on import).

A new criterion is one class: subclass :class:`Importance`, decorate it with :func:`register_importance`, and its
name works as ``importance=`` for channel and weight pruning, in ``rp.prune``, ``robustify`` and ``PruneConfig``.
"""

from . import magnitude, random, robust, taylor  # noqa: F401 - each module registers its criterion
from .registry import Importance, check_importance, get_importance, list_importances, register_importance

__all__ = ["Importance", "check_importance", "get_importance", "list_importances", "register_importance"]
