"""Evaluation: attacks, the attack loop, gradient-masking checks, size and speed, the report and the diagnostics."""

from .robustness import evaluate, evaluation_loader

__all__ = ["evaluate", "evaluation_loader"]
