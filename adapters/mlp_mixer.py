"""timm.models.mlp_mixer: MLP-Mixer, ResMLP, gMLP.

- Fixed-size token mixers are left alone: they mix token positions, not channels (Mixer's ``mlp_tokens``,
  ResMLP's ``linear_tokens``, gMLP's ``SpatialGatingUnit.proj``). Their transposes would tie the token axis
  to the channel axis in torch-pruning's graph (and freeze the embedding width), so while it traces, Mixer
  and ResMLP blocks run a forward that returns the same values with the token mixing shown as a
  channel-wise pass-through (``robust_prune.adapter_api.tracing.link``).
- gMLP's gated MLP splits ``fc1``'s output in two halves (``chunk``), so ``fc1`` keeps its outputs there.
- ResMLP's ``Affine`` (``alpha``, ``beta`` of shape (1, 1, dim)) and layer scales are cut with the
  embedding width.
- Fixed input size: the patch embedding's ``img_size`` (recorded in the model arguments).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from timm.models.mlp_mixer import Affine, MixerBlock, ResBlock, SpatialGatingBlock, SpatialGatingUnit
from torch import nn

from robust_prune.adapter_api import Adapter, Example, register_adapter, unwrap_model
from robust_prune.adapter_api.pruners import ChannelParamPruner
from robust_prune.adapter_api.timm_meta import fixed_img_size
from robust_prune.adapter_api.tracing import link, patched_forwards


def _tracing_forward(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    y = block.norm1(x)
    with torch.no_grad():
        mixer = block.mlp_tokens if isinstance(block, MixerBlock) else block.linear_tokens
        tokens = mixer(y.transpose(1, 2)).transpose(1, 2)
    tokens = link(tokens, y)  # a channel-wise pass-through as far as the graph can tell
    if isinstance(block, ResBlock):
        x = x + block.drop_path(block.ls1 * tokens)
        return x + block.drop_path(block.ls2 * block.mlp_channels(block.norm2(x)))
    x = x + block.drop_path(tokens)
    return x + block.drop_path(block.mlp_channels(block.norm2(x)))


@register_adapter
class MlpMixerAdapter(Adapter):
    name = "mlp_mixer"
    timm_modules = ("mlp_mixer",)
    grow_exact = False
    examples = (
        Example("mixer_s32_224", "mlp_mixer", {"img_size": 32}, variant="mixer"),
        Example("resmlp_12_224", "mlp_mixer", {"img_size": 32}, variant="resmlp"),
        Example("gmlp_ti16_224", "mlp_mixer", {"img_size": 32}, quick=False, variant="gmlp"),
        Example("mixer_s16_224", "mlp_mixer", {"img_size": 32}, quick=False, variant="mixer"),
        Example("mixer_b16_224", "mlp_mixer", {"img_size": 32}, quick=False, variant="mixer"),
        Example("resmlp_24_224", "mlp_mixer", {"img_size": 32}, quick=False, variant="resmlp"),
    )

    def customized_pruners(self, model: nn.Module) -> dict[Any, Any]:
        pruners = super().customized_pruners(model)
        pruners[Affine] = ChannelParamPruner({"alpha": 2, "beta": 2})
        return pruners

    def ignored_layers(self, model: nn.Module) -> list[nn.Module]:
        layers = super().ignored_layers(model)
        for m in unwrap_model(model).modules():
            if isinstance(m, SpatialGatingUnit):
                layers.append(m.proj)
            elif isinstance(m, SpatialGatingBlock):
                layers.append(m.mlp_channels.fc1)
        return layers

    def fixed_input_size(self, model: nn.Module) -> tuple[int, int] | None:
        return fixed_img_size(unwrap_model(model), "stem")


    @contextlib.contextmanager
    def graph_context(self, model: nn.Module) -> Iterator[None]:
        blocks = [m for m in unwrap_model(model).modules() if isinstance(m, (MixerBlock, ResBlock))]
        with patched_forwards({b: _tracing_forward for b in blocks}), super().graph_context(model):
            yield
