"""Size and speed of a model: MACs, parameters, weight sparsity, channel width and latency.

Example:
    >>> import timm, torch
    >>> from robust_prune.evaluation.measure import count_macs_params, weight_sparsity
    >>> model = timm.create_model("test_resnet", num_classes=10)
    >>> macs, params = count_macs_params(model, torch.rand(1, 3, 32, 32))
    >>> macs > 0 and params == sum(p.numel() for p in model.parameters())
    True
    >>> weight_sparsity(model)[0]
    0.0
"""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from robust_prune.adapter_api import unwrap_model

from ..models import eval_mode

if TYPE_CHECKING:
    from ..pruning.record import PruningRecord

__all__ = [
    "channel_ratio",
    "count_macs_params",
    "emptied_layers",
    "measure_latency",
    "output_width",
    "size_stats",
    "weight_sparsity",
]


def _fused_attention_flops() -> dict[Any, Any]:
    """FlopCounterMode formulas for the CPU kernels of ``F.scaled_dot_product_attention``, which torch does not
    count (its formulas cover the CUDA kernels): without them a fused ViT or Swin block's attention counts zero
    and pruning it looks free. Counted like the explicit path's two matmuls (q @ k^T and attn @ v)."""
    from torch.utils.flop_counter import sdpa_flop_count

    def sdpa(query_shape: Any, key_shape: Any, value_shape: Any, *args: Any, **kwargs: Any) -> int:
        return sdpa_flop_count(query_shape, key_shape, value_shape)

    ops = [getattr(torch.ops.aten, name, None) for name in ("_scaled_dot_product_flash_attention_for_cpu",)]
    return {op: sdpa for op in ops if op is not None}


def count_macs_params(model: nn.Module, example_inputs: torch.Tensor) -> tuple[int, int]:
    """MACs of one forward pass (torch's FlopCounterMode: counts what really runs, fused attention included)
    and parameters."""
    from torch.utils.flop_counter import FlopCounterMode

    model = unwrap_model(model)
    counter = FlopCounterMode(display=False, custom_mapping=_fused_attention_flops())
    with eval_mode(model):
        try:
            with torch.no_grad(), counter:
                model(example_inputs)
        except AssertionError:
            # FlopCounterMode's module tracker wants a grad_fn on module inputs, which a parameter used
            # directly as an input (e.g. a learned latent query) lacks under no_grad: count with autograd on.
            counter = FlopCounterMode(display=False, custom_mapping=_fused_attention_flops())
            with counter:
                model(example_inputs)
    return int(counter.get_total_flops() // 2), sum(p.numel() for p in model.parameters())


def size_stats(macs_before: int, params_before: int, macs_after: int, params_after: int) -> dict[str, float]:
    """MACs and parameters before and after pruning, and their ratios (what a channel record's ``stats`` hold).

    Example:
        >>> size_stats(100, 10, 25, 5)["macs_ratio"]
        0.25
    """
    return {
        "macs_before": macs_before,
        "macs_after": macs_after,
        "macs_ratio": macs_after / max(macs_before, 1),
        "params_before": params_before,
        "params_after": params_after,
        "params_ratio": params_after / max(params_before, 1),
    }


def weight_sparsity(model: nn.Module) -> tuple[float, dict[str, float]]:
    """Global and per-layer fraction of exactly-zero weights over convolution and linear layers."""
    zeros = total = 0
    per_layer: dict[str, float] = {}
    for name, module in unwrap_model(model).named_modules():
        weight = getattr(module, "weight", None)
        if not isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Linear)) or not isinstance(weight, torch.Tensor):
            continue
        z = int((weight == 0).sum())
        per_layer[name] = z / max(weight.numel(), 1)
        zeros, total = zeros + z, total + weight.numel()
    return zeros / max(total, 1), per_layer


def emptied_layers(layer_sparsity: dict[str, float]) -> list[str]:
    """The layers whose weights are all zero (they no longer compute anything), from a per-layer sparsity map.

    Example:
        >>> emptied_layers({"conv1": 0.5, "layer1.0.conv2": 1.0})
        ['layer1.0.conv2']
    """
    return sorted(name for name, fraction in layer_sparsity.items() if fraction >= 1.0)


def channel_ratio(model: nn.Module, record: PruningRecord | None = None) -> float | None:
    """Kept fraction of output channels (conv + linear) relative to the unpruned architecture of ``record``.

    ``record`` defaults to the model's own (a :class:`~robust_prune.models.NormalizedModel` carries it);
    None when there is no record.
    """
    record = record if record is not None else getattr(model, "record", None)
    if record is None:
        return None
    for key in ("channel_ratio", "width_ratio"):
        if isinstance(record.stats.get(key), (int, float)):
            return float(record.stats[key])
    if record.structure != "channel":
        return 1.0
    try:
        fresh = record.build_dense()
    except Exception:  # noqa: BLE001 - a record we cannot rebuild has no known original width
        return None
    return output_width(model) / max(output_width(fresh), 1)


def output_width(model: nn.Module) -> int:
    """The output channels of all 2-d convolutions and linear layers together (how wide a model is).

    Example:
        >>> output_width(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Linear(8, 2)))
        10
    """
    return sum(
        m.out_channels if isinstance(m, nn.Conv2d) else m.out_features
        for m in unwrap_model(model).modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    )


def measure_latency(model: nn.Module, example: torch.Tensor, *, repeats: int = 20) -> float:
    """Median wall time in ms of one forward pass on ``example`` (after warm-up), in eval mode.

    On CUDA every pass is timed between two ``torch.cuda.synchronize()`` calls, so the time is the
    kernels' and not only their launch.
    """
    cuda = example.device.type == "cuda"
    times = []
    with eval_mode(model), torch.no_grad():
        for i in range(repeats + 3):
            if cuda:
                torch.cuda.synchronize(example.device)
            start = time.perf_counter()
            model(example)
            if cuda:
                torch.cuda.synchronize(example.device)
            if i >= 3:
                times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)
