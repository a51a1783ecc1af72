"""A model that channel pruning always breaks, shared by the adapter and guard tests."""

from __future__ import annotations

import torch
from torch import nn


class HardCodedWidth(nn.Module):
    """Flattens to a hard-coded width: pruning its conv succeeds, the pruned model's forward breaks."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.fc = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.conv(x)).reshape(x.shape[0], 64))
