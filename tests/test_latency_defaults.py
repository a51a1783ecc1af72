"""Latency-aware channel pruning: kept widths rounded to multiples of 8, whole attention heads, fused attention
counted in the MACs, and round_to=1 as the exact fractions the paper prunes."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import robust_prune as rp
from benchmarks import paper
from robust_prune.adapter_api import get_adapter
from robust_prune.evaluation.measure import count_macs_params, output_width
from robust_prune.models import create_model
from robust_prune.pruning import PruningRecord, rebuild_model


def _conv_widths(model: nn.Module) -> dict[str, int]:
    return {n: m.out_channels for n, m in model.named_modules() if isinstance(m, nn.Conv2d)}


def _pruned_widths(name: str, round_to: int, sparsity: float = 0.5) -> tuple[dict[str, int], dict[str, int], dict]:
    torch.manual_seed(0)
    model = create_model(name, num_classes=10)
    dense = _conv_widths(model)
    record = rp.prune(model, sparsity, image_size=32, round_to=round_to).record
    return dense, _conv_widths(model), record.stats


@pytest.mark.parametrize("round_to", [8, 16])
def test_kept_channels_round_to_the_nearest_multiple_unless_that_empties_or_keeps_the_layer(round_to: int) -> None:
    # mobilenetv3_small_050's widths (8, 16, 24, 40, 48, 72, 144, ...) halve to counts that are mostly not multiples
    dense, exact, _ = _pruned_widths("mobilenetv3_small_050", 1)
    _, rounded, stats = _pruned_widths("mobilenetv3_small_050", round_to)
    changed = [n for n in dense if exact[n] != dense[n]]
    assert any(exact[n] % round_to for n in changed)  # the exact fractions would leave odd widths
    for name in changed:
        nearest = round_to * round(exact[name] / round_to + 1e-9)
        if 0 < nearest < dense[name]:
            assert rounded[name] == nearest, name
        else:  # too narrow to round: the exact count stays
            assert rounded[name] == exact[name], name
    assert stats["round_to"] == round_to


def test_the_record_reports_the_channel_share_that_rounding_achieved() -> None:
    torch.manual_seed(0)
    model = create_model("efficientnet_b0", num_classes=10)
    width = output_width(model)
    record = rp.prune(model, 0.5, image_size=32).record
    assert record.stats["channel_ratio"] == pytest.approx(output_width(model) / width)
    assert 0.45 < record.stats["channel_ratio"] < 0.6
    assert rp.evaluation.measure.channel_ratio(model, record) == record.stats["channel_ratio"]


def test_round_to_1_prunes_the_exact_fraction_of_every_layer() -> None:
    dense, exact, stats = _pruned_widths("resnet10t", 1, sparsity=0.3)
    assert stats["round_to"] == 1
    for name, width in exact.items():
        if width != dense[name]:
            assert width == int(dense[name] * 0.7), name  # torch-pruning's own count, unrounded


def test_an_adapter_can_opt_out_of_rounding(monkeypatch: pytest.MonkeyPatch) -> None:
    _, exact, _ = _pruned_widths("resnet10t", 1, sparsity=0.3)
    monkeypatch.setattr(type(get_adapter(create_model("resnet10t"))), "round_to", 1)
    _, opted_out, stats = _pruned_widths("resnet10t", 8, sparsity=0.3)
    assert opted_out == exact and stats["round_to"] == 1


def test_the_paper_benchmark_prunes_exact_fractions() -> None:
    runner = paper._Runner(paper.FULL, None, progress=False)
    configs = [runner.config("prune", 0, sparsity=0.3, structure="channel"), runner.config("iwi", 1)]
    assert {c.prune.round_to for c in configs} == {1}
    torch.manual_seed(0)
    model = create_model("resnet10t", num_classes=10)
    dense = _conv_widths(model)
    p = configs[0].prune
    rp.prune(model, p.sparsity, round_to=p.round_to, attention=p.attention, image_size=32)
    assert all(w in (dense[n], int(dense[n] * 0.7)) for n, w in _conv_widths(model).items())


def _vit(attention: str) -> tuple[nn.Module, PruningRecord]:
    torch.manual_seed(0)
    model = create_model("vit_small_patch16_224", num_classes=10, img_size=32, depth=2)
    return rp.prune(model, 0.5, image_size=32, attention=attention)


def test_vit_loses_whole_heads_by_default_and_head_dims_on_request() -> None:
    heads, _ = _vit("heads")
    dims, _ = _vit("head_dim")
    for block in heads.blocks:  # 3 of 6 heads of 64 dims, the fused kernel kept
        assert (block.attn.num_heads, block.attn.head_dim, block.attn.fused_attn) == (3, 64, True)
        assert block.attn.qkv.out_features == 3 * 3 * 64
    for block in dims.blocks:  # 6 heads of 32 dims
        assert (block.attn.num_heads, block.attn.head_dim) == (6, 32)


@pytest.mark.parametrize("attention", ["heads", "head_dim"])
def test_head_pruned_models_rebuild_exactly_from_their_json_record(attention: str) -> None:
    model, record = _vit(attention)
    fresh = rebuild_model(PruningRecord.from_dict(json.loads(json.dumps(record.to_dict()))))
    fresh.load_state_dict(model.state_dict(), strict=True)
    x = torch.rand(2, 3, 32, 32)
    assert torch.equal(fresh.eval()(x), model.eval()(x))


def test_swin_cuts_each_bias_table_to_the_heads_it_keeps() -> None:
    torch.manual_seed(0)
    model = create_model("swin_tiny_patch4_window7_224", num_classes=10, img_size=32, window_size=4,
                         depths=[1, 1, 1, 1])  # fmt: skip
    dense_heads = [layer.blocks[0].attn.num_heads for layer in model.layers]
    x = torch.rand(2, 3, 32, 32)
    record = rp.prune(model, 0.5, image_size=32).record
    attns = [layer.blocks[0].attn for layer in model.layers]
    assert [a.num_heads for a in attns] == [max(1, n - round(n / 2 + 1e-9)) for n in dense_heads] == [1, 3, 6, 12]
    assert all(a.relative_position_bias_table.shape[1] == a.num_heads for a in attns)
    fresh = rebuild_model(record)
    fresh.load_state_dict(model.state_dict(), strict=True)
    assert torch.equal(fresh.eval()(x), model.eval()(x))


def test_fused_attention_counts_as_much_as_the_explicit_path() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    model = create_model("vit_small_patch16_224", img_size=64, depth=2).eval()
    x = torch.rand(1, 3, 64, 64)
    fused, _ = count_macs_params(model, x)
    plain = FlopCounterMode(display=False)  # torch's own formulas: the CPU attention kernel counts nothing
    with plain, torch.no_grad():
        model(x)
    for block in model.blocks:
        block.attn.fused_attn = False
    explicit, _ = count_macs_params(model, x)
    tokens, dim, depth = 1 + (64 // 16) ** 2, 384, 2
    assert fused == explicit
    assert fused - plain.get_total_flops() // 2 == depth * 2 * tokens * tokens * dim  # q @ k^T and attn @ v
