"""grow(): a pruned ticket back to its full-width timm architecture (inverse weights inheritance)."""

from __future__ import annotations

import warnings

import pytest
import timm
import torch
from torch import nn

import robust_prune as rp
from robust_prune.adapter_api import adapter_by_name, list_adapters
from robust_prune.errors import ConfigError
from robust_prune.inheritance.growth import grow, origin_indices
from robust_prune.models import NormalizedModel, create_model

# BatchNorm families: growth must be exact. One test id per model.
BN_MODELS = ["test_resnet", "resnet10t", "test_efficientnet"]
LN_MODELS = ["test_vit", "test_convnext"]


def _registry_examples() -> list:
    """Quick examples of every adapter that supports channel pruning (beyond the core lists above)."""
    found, seen = [], set(BN_MODELS) | set(LN_MODELS)
    for name in list_adapters():
        adapter = adapter_by_name(name)
        if adapter.unsupported:
            continue
        for ex in adapter.examples:
            if ex.quick and ex.model not in seen:
                seen.add(ex.model)
                found.append(pytest.param(ex.model, dict(ex.kwargs), ex.image_size, id=ex.model))
    return found


def _perturbed(name: str, **kwargs) -> nn.Module:
    """A timm model with non-trivial BatchNorm statistics and affine parameters (fresh ones hide bugs)."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=10, **kwargs)  # remembers kwargs, so the record rebuilds this shape
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                m.running_mean.normal_(0, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                if m.weight is not None:
                    m.weight.uniform_(0.5, 1.5)
                    m.bias.normal_(0, 0.2)
    return model.eval()


def _check_exact(name: str, kwargs: dict, size: int) -> None:
    ticket = rp.prune(_perturbed(name, **kwargs), 0.5, image_size=size)
    result = grow(ticket)
    grown, info = result.model, result.info
    x = torch.rand(4, 3, size, size)
    with torch.no_grad():
        ref, out = ticket.model.eval()(x), grown(x)
    if info.adapter_exact:  # BatchNorm families: the grown model computes the ticket's function
        assert (out - ref).abs().max() <= 1e-5 * max(1.0, float(ref.abs().max()))
        assert info.exact
    else:  # channel-mixing norms: the deviation is measured and reported (zero where no norm saw a new channel)
        assert 0.0 <= info.max_deviation < float("inf")
        assert info.exact == (info.relative_deviation <= 1e-5)
    assert info.new_entries > 0
    fresh = timm.create_model(name, num_classes=10, **kwargs)
    fresh.load_state_dict(grown.state_dict(), strict=True)
    assert type(fresh) is type(grown)
    assert all(p.requires_grad for p in grown.parameters())


@pytest.mark.parametrize("name", BN_MODELS)
def test_grow_is_exact_for_batchnorm_families(name):
    _check_exact(name, {}, 32)


@pytest.mark.slow
@pytest.mark.parametrize("name,kwargs,size", _registry_examples())
def test_grow_is_exact_or_reports_deviation_for_every_registered_family(name, kwargs, size):
    _check_exact(name, kwargs, size)


@pytest.mark.parametrize("name", LN_MODELS)
def test_grow_reports_deviation_for_layernorm_families(name):
    ticket = rp.prune(timm.create_model(name, num_classes=10), 0.5)
    grown = grow(ticket)
    info = grown.info
    assert not info.adapter_exact and not info.exact
    x = torch.rand(3, *ticket.record.input_size[-3:], generator=torch.Generator().manual_seed(7))  # other inputs
    with torch.no_grad():
        seen = float((grown.model.eval()(x) - ticket.model.eval()(x)).abs().max())
    assert seen > 1e-3  # LayerNorm over a grown width really changes the output...
    assert seen / 10 < info.max_deviation < seen * 10  # ...and the report measured it, not a placeholder
    assert info.relative_deviation > 1e-5
    assert grown.record.extra["growth"]["max_deviation"] == info.max_deviation
    timm.create_model(name, num_classes=10).load_state_dict(grown.model.state_dict(), strict=True)


def test_grow_keeps_the_ticket_entries_and_zeroes_consumers_of_new_channels():
    ticket = rp.prune(_perturbed("test_resnet"), 0.5)
    origins = origin_indices(ticket.record)
    grown = grow(ticket).model
    state, small = grown.state_dict(), ticket.model.state_dict()
    for name, idx in origins.items():
        assert torch.equal(state[name].flatten()[idx.flatten()], small[name].flatten().to(state[name].dtype))
    fc = grown.get_classifier().weight
    kept_cols = torch.zeros(fc.shape[1], dtype=torch.bool)
    kept_cols[origins["fc.weight"].remainder(fc.shape[1]).flatten()] = True
    assert not kept_cols.all() and fc[:, ~kept_cols].abs().max() == 0


def test_new_channels_learn_after_zero_out_growth():
    grown = grow(rp.prune(_perturbed("test_resnet"), 0.5)).model
    grown.train()
    loss = nn.functional.cross_entropy(grown(torch.rand(8, 3, 32, 32)), torch.arange(8) % 10)
    loss.backward()
    fc = grown.get_classifier().weight
    dead = fc.abs().sum(0) == 0  # the new feature columns start at zero ...
    assert dead.any() and fc.grad[:, dead].abs().sum() > 0  # ... and still get a gradient


def test_zero_init_warns_and_random_init_is_not_function_preserving():
    ticket = rp.prune(_perturbed("test_resnet"), 0.5)
    with pytest.warns(UserWarning, match="cannot learn"):
        zero = grow(ticket, init="zero")
    assert zero.info.exact
    random = grow(ticket, init="random")
    assert random.info.max_deviation > 1e-3 and not random.info.exact
    with pytest.raises(ConfigError, match="init"):
        grow(ticket, init="ones")


def test_scale_sets_the_new_incoming_weights_and_seed_makes_it_deterministic():
    ticket = rp.prune(_perturbed("test_resnet"), 0.5)
    state = torch.get_rng_state()
    a, b = grow(ticket, scale=1e-3, seed=1), grow(ticket, scale=1e-3, seed=1)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is left alone
    assert all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()))
    assert a.info.exact
    key = next(k for k, v in a.model.state_dict().items() if v.dim() == 4)  # the stem convolution
    stem = a.model.state_dict()[key].flatten()
    kept = torch.zeros_like(stem, dtype=torch.bool)
    kept[origin_indices(ticket.record)[key].flatten()] = True
    assert 0 < stem[~kept].abs().max() < 0.01  # new incoming weights: small, random, trainable


def test_weight_ticket_lifts_the_mask_and_starts_pruned_weights_at_zero():
    model = NormalizedModel.from_timm(_perturbed("test_resnet"))
    ticket = rp.prune(model, 0.7, structure="weight")
    result = grow(ticket)
    grown = result.model
    assert isinstance(grown, NormalizedModel) and grown.record is result.record
    assert not any(n.endswith("_mask") for n in grown.model.state_dict())
    assert result.info.exact and result.info.max_deviation == 0.0
    for name, mask in ticket.record.masks.items():
        assert grown.model.get_parameter(name)[~mask].abs().max() == 0
    timm.create_model("test_resnet", num_classes=10).load_state_dict(grown.model.state_dict(), strict=True)


def test_grown_normalized_model_saves_and_loads(tmp_path):
    ticket = rp.prune(NormalizedModel.from_timm(_perturbed("test_resnet")), 0.5)
    grown = grow(ticket).model
    folder = rp.save_pretrained(grown, tmp_path / "grown")  # the grown model carries its record
    again = rp.from_pretrained(folder)
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(again(x), grown(x), atol=1e-6)
    assert again.record.extra["growth"]["exact"] is True
    assert again.record.extra["ticket"]["structure"] == "channel"


def test_grow_needs_a_record():
    with pytest.raises(ConfigError, match="record"):
        grow(timm.create_model("test_resnet", num_classes=10))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a dense record grows to itself without complaint
        dense = rp.PruningRecord.for_dense_model(timm.create_model("test_resnet"))
        grown = grow(timm.create_model("test_resnet"), record=dense)
    assert grown.info.new_entries == 0


@pytest.mark.parametrize("name", ["test_resnet", "resnet10t"])
def test_net2net_copies_channels_and_keeps_the_function(name):
    ticket = rp.prune(_perturbed(name), 0.5)
    result = grow(ticket, init="net2net", seed=3)
    assert result.info.function_preserving and result.info.exact
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(result.model(x), ticket.model.eval()(x), atol=1e-5, rtol=1e-4)
    origins = origin_indices(ticket.record)
    state = result.model.state_dict()
    key = next(k for k, v in state.items() if v.dim() == 4)  # the stem: new output channels copy kept ones
    stem = state[key]
    kept_rows = torch.zeros(stem.shape[0], dtype=torch.bool)
    kept_rows[origins[key].flatten() // stem[0].numel()] = True
    kept_set = [stem[i] for i in torch.nonzero(kept_rows).flatten()]
    for i in torch.nonzero(~kept_rows).flatten():
        assert any(torch.equal(stem[i], k) for k in kept_set)
    fc = result.model.get_classifier().weight  # consumers are split, never zero, so every copy trains
    assert (fc.abs().sum(0) > 0).all()


def test_small_out_is_reported_as_not_function_preserving_and_feeds_new_channels():
    ticket = rp.prune(_perturbed("test_resnet"), 0.5)
    result = grow(ticket, init="small-out", out_scale=0.1)
    info = result.info
    assert not info.function_preserving and info.out_scale == 0.1
    assert 0 < info.relative_deviation < 0.5  # a small move away from the ticket, measured
    fc = result.model.get_classifier().weight
    assert (fc.abs().sum(0) > 0).all()  # the weights reading new features start non-zero
    with pytest.raises(ConfigError, match="out_scale"):
        grow(ticket, init="small-out", out_scale=-1.0)


def test_weight_ticket_fills_follow_the_init_and_net2net_is_refused():
    model = NormalizedModel.from_timm(_perturbed("test_resnet"))
    ticket = rp.prune(model, 0.8, structure="weight")
    small = grow(ticket, init="small-out", out_scale=0.1)
    assert not small.info.function_preserving
    for name, mask in ticket.record.masks.items():
        w = small.model.model.get_parameter(name).detach()
        kept_std = float(w[mask].std())
        assert 0 < float(w[~mask].std()) < 0.3 * kept_std
    with pytest.raises(ConfigError, match="net2net"):
        grow(ticket, init="net2net")
