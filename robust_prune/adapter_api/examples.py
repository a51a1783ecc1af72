"""``Example``: a small timm model an adapter is verified on (the tests and the zoo benchmark read them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Example"]


@dataclass(frozen=True)
class Example:
    """A small timm model an adapter is verified on (by the tests and ``python -m benchmarks zoo``).

    Attributes:
        model: timm's registered name.
        family: the family it stands for in the zoo table (``"resnet"``, ``"vision_transformer"``, ``"test_*"``).
        kwargs: extra ``timm.create_model`` arguments (small input size, fewer blocks).
        image_size: input height and width for tracing and tests.
        quick: part of the fast subset (unit tests, ``python -m benchmarks zoo --quick``).
        variant: the member of the family it stands for (``"res2net"``, ``"deit3"``); defaults to ``family``.
    """

    model: str
    family: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    image_size: int = 32
    quick: bool = True
    variant: str | None = None

    @property
    def label(self) -> str:
        return self.variant or self.family

    @property
    def id(self) -> str:
        """A unique, readable id: the model name, plus its arguments when it has any (test ids, zoo rows)."""
        if not self.kwargs:
            return self.model
        args = ",".join(f"{k}={_compact(v)}" for k, v in sorted(self.kwargs.items()))
        return f"{self.model}({args})"


def _compact(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "x".join(_compact(v) for v in value)
    return str(value)
