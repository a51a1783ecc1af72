"""The adapter registry and the machinery adapters share (matching, fallback, unsupported, fix-ups)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from _hard_coded import HardCodedWidth
from torch import nn

import robust_prune as rp
from robust_prune.adapter_api import Adapter, GenericAdapter, adapter_by_name, get_adapter, list_adapters, registry
from robust_prune.errors import ModelAdaptationError, PruningError, UnsupportedArchitectureError
from robust_prune.models import create_model
from robust_prune.pruning import PruningRecord, rebuild_model


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_registry_lists_one_adapter_per_timm_module() -> None:
    names = list_adapters()
    assert names == sorted(names) and len(names) == len(set(names))
    for expected in ("resnet", "vision_transformer", "convnext", "efficientnet", "swin_transformer", "maxxvit"):
        assert expected in names
    for name in names:
        adapter = adapter_by_name(name)
        assert adapter.name == name and adapter.timm_modules, name
        assert adapter.examples, f"{name} has no example model to be verified on"
    assert isinstance(adapter_by_name("generic"), GenericAdapter)
    with pytest.raises(ModelAdaptationError, match="No adapter named"):
        adapter_by_name("no_such_family")


def test_example_ids_are_unique_and_json_able() -> None:
    ids = [ex.id for name in list_adapters() for ex in adapter_by_name(name).examples]
    assert len(ids) == len(set(ids))
    for name in list_adapters():
        for ex in adapter_by_name(name).examples:
            json.dumps(ex.kwargs)


@pytest.mark.parametrize(
    ("model_name", "kwargs", "expected"),
    [
        ("resnet10t", {}, "resnet"),
        ("skresnet18", {}, "sknet"),  # a ResNet whose blocks come from timm.models.sknet
        ("resnest14d", {}, "resnest"),
        ("res2net50_14w_8s", {"layers": [1, 1, 1, 1]}, "res2net"),
        ("resnext26ts", {}, "byobnet"),
        ("mobilevit_xxs", {}, "mobilevit"),  # a ByobNet with MobileViT blocks
        ("test_vit", {}, "vision_transformer"),
        ("test_vit_relpos", {"img_size": 32}, "vision_transformer_relpos"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_matching_uses_timm_metadata(model_name: str, kwargs: dict, expected: str) -> None:
    model = create_model(model_name, num_classes=10, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a registered family never falls back
        assert get_adapter(model).name == expected


def test_the_families_load_on_the_first_lookup_and_a_users_adapter_replaces_a_built_in_one() -> None:
    """No side effects at import: ``import robust_prune`` leaves the family package alone; the registry loads it once,
    before a lookup or a user's registration, so a user's adapter of a family's name wins, as when the families
    loaded at import. The old import path ``robust_prune.adapters`` gives the same objects."""
    script = textwrap.dedent(
        """
        import sys
        import robust_prune as rp
        from robust_prune.adapter_api import Adapter, adapter_by_name, register_adapter
        assert "robust_prune.adapters" not in sys.modules, "the families loaded at import"

        @register_adapter
        class Mine(Adapter):
            name = "resnet"
            timm_modules = ("resnet",)

        assert "robust_prune.adapters" in sys.modules
        assert type(adapter_by_name("resnet")) is Mine and "vision_transformer" in rp.list_adapters()
        import robust_prune.adapter_api as api
        import robust_prune.adapters as old
        assert old.Adapter is api.Adapter and old.HiddenWidthAdapter is api.HiddenWidthAdapter
        assert old.register_adapter is api.register_adapter and old.get_adapter is api.get_adapter
        print("ok")
        """
    )
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


class _Blocked(Adapter):
    name = "test_blocked_family"
    timm_modules = ("resnet",)
    priority = 100
    unsupported = "its blocks cannot be pruned in this test"


@pytest.fixture
def blocked() -> Iterator[type[Adapter]]:
    registry.register_adapter(_Blocked)
    try:
        yield _Blocked
    finally:
        registry._REGISTRY.pop(_Blocked.name, None)


def test_unsupported_family_raises_before_any_weight_changes(blocked) -> None:
    model = create_model("test_resnet", num_classes=10)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(UnsupportedArchitectureError) as info:
        rp.prune(model, 0.5)
    err = info.value
    assert err.family == "test_blocked_family" and err.layer == "ResNet" and "in this test" in err.reason
    assert "test_blocked_family" in str(err) and "ResNet" in str(err)
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


class _Plain(nn.Module):
    """Not a timm model: no adapter matches it."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, 32, 3)
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))


def test_unknown_family_falls_back_to_generic_with_a_warning_and_is_checked() -> None:
    model = _Plain().eval()
    x = torch.rand(2, 3, 32, 32)
    with pytest.warns(UserWarning, match="No robust_prune adapter"):
        _, record = rp.prune(model, 0.5)
    assert record.adapter == "generic" and record.stats["macs_ratio"] < 1
    assert model(x).shape == (2, 10)


def test_generic_fallback_refuses_a_broken_result() -> None:
    with pytest.warns(UserWarning, match="No robust_prune adapter"):
        with pytest.raises(PruningError, match="no longer runs"):
            rp.prune(HardCodedWidth().eval(), 0.5)


def test_attention_fixups_are_recorded_and_replayed() -> None:
    model = create_model("test_vit", num_classes=10).eval()
    scale = float(model.blocks[0].attn.scale)
    _, record = rp.prune(model, 0.5, attention="head_dim")
    attrs = record.module_attrs["blocks.0.attn"]
    attn = model.blocks[0].attn
    assert attrs["num_heads"] == attn.num_heads and attrs["head_dim"] * attn.num_heads == attn.qkv.out_features // 3
    assert attrs["scale"] == scale and attrs["fused_attn"] is False  # original temperature, explicit path
    again = rebuild_model(PruningRecord.from_dict(json.loads(json.dumps(record.to_dict()))))
    assert again.blocks[0].attn.head_dim == attn.head_dim and again.blocks[0].attn.fused_attn is False


def test_tracing_helpers_leave_no_trace() -> None:
    """Class swaps, opaque and tracing forwards only exist while torch-pruning works."""
    model = create_model("mixnet_s", num_classes=10).eval()
    classes = {name: type(m) for name, m in model.named_modules()}
    rp.prune(model, 0.5)
    for name, m in model.named_modules():
        assert type(m) is classes[name], name
        assert "forward" not in m.__dict__, name


def test_scaled_std_conv_gain_follows_the_kept_channels() -> None:
    model = create_model("test_nfnet", num_classes=10).eval()
    _, record = rp.prune(model, 0.5)
    for name, m in model.named_modules():
        if hasattr(m, "gain") and isinstance(m, nn.Conv2d):
            assert m.gain.shape[0] == m.out_channels, name
            assert m.bias is None or m.bias.grad is None, name  # the bookkeeping gradient is gone
    assert record.stats["macs_ratio"] < 0.5


def test_inexact_growth_layers_name_pruned_layernorms_only() -> None:
    vit, full_vit = create_model("test_vit", num_classes=10), create_model("test_vit", num_classes=10)
    rp.prune(vit, 0.5)
    assert "blocks.0.norm1" in get_adapter(vit).inexact_growth_layers(vit, full_vit)
    cnn, full_cnn = create_model("test_resnet", num_classes=10), create_model("test_resnet", num_classes=10)
    rp.prune(cnn, 0.5)
    assert get_adapter(cnn).inexact_growth_layers(cnn, full_cnn) == []
    assert get_adapter(cnn).growth_is_exact(cnn, full_cnn)


def test_weight_standardised_convs_whose_fan_in_was_pruned_make_growth_inexact() -> None:
    nf, full_nf = create_model("test_nfnet", num_classes=10), create_model("test_nfnet", num_classes=10)
    _, record = rp.prune(nf, 0.5)
    inexact = get_adapter(nf).inexact_growth_layers(nf, full_nf)
    convs = dict(nf.named_modules())
    assert inexact and all(isinstance(convs[name], nn.Conv2d) for name in inexact)
    assert not get_adapter(nf).growth_is_exact(nf, full_nf)
    grown = rp.grow(nf, record=record).info
    assert not grown.adapter_exact and not grown.exact  # the measured deviation agrees with the claim


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("vit_tiny_patch16_224", {"img_size": 48, "depth": 1}),
        ("swin_tiny_patch4_window7_224", {"img_size": 32, "window_size": 4, "depths": [1, 1, 1, 1], "embed_dim": 24}),
        ("mixer_s32_224", {"img_size": 64}),
        ("levit_128s", {"img_size": 64}),
    ],
)
def test_the_base_adapter_records_the_fixed_input_size_of_a_model_built_outside_the_library(
    name: str, kwargs: dict
) -> None:
    import timm

    model = timm.create_model(name, num_classes=10, **kwargs)  # no creation arguments recorded
    args = get_adapter(model).model_args(model)
    assert args["img_size"] == kwargs["img_size"]
    rebuilt = timm.create_model(name, **{**kwargs, **args})
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == shapes
