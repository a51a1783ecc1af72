"""Inheritance: grow a pruned ticket back to its full-width architecture (inverse weights inheritance)."""

from .growth import GrowResult, GrowthInfo, grow, origin_indices

__all__ = ["GrowResult", "GrowthInfo", "grow", "origin_indices"]
