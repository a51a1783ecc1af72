"""Sparsity diagnostics: norms, the product bound, output change and activation flips."""

from __future__ import annotations

import json

import pytest
import torch
from _adv_model import EPS, adversarially_trained, digits_points
from torch import nn

from robust_prune.evaluation.diagnostics import (
    activation_flips,
    layer_norms,
    lipschitz_product,
    output_change,
    sparsity_diagnostics,
)

torch.set_num_threads(1)


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 3))


def test_layer_norms_match_torch() -> None:
    model = _mlp()
    norms = layer_norms(model)
    assert [n.kind for n in norms] == ["linear", "linear"]
    w = model[0].weight.detach()
    assert norms[0].frobenius == pytest.approx(float(w.norm()), rel=1e-5)
    assert norms[0].spectral == pytest.approx(float(torch.linalg.matrix_norm(w, ord=2)), rel=1e-5)


def test_product_bound_bounds_the_empirical_lipschitz_ratio() -> None:
    model = _mlp()
    bound = lipschitz_product(layer_norms(model))
    g = torch.Generator().manual_seed(0)
    x, d = torch.randn(256, 12, generator=g), torch.randn(256, 12, generator=g) * 1e-2
    with torch.no_grad():
        ratio = (model(x + d) - model(x)).norm(dim=1) / d.norm(dim=1)
    assert float(ratio.max()) <= bound


def test_conv_operator_bound_holds() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 5, 3, padding=1, bias=False)
    (norm,) = layer_norms(conv)
    x = torch.randn(16, 3, 8, 8)
    with torch.no_grad():
        gains = conv(x).flatten(1).norm(dim=1) / x.flatten(1).norm(dim=1)
    assert float(gains.max()) <= norm.operator


def test_activation_flips_zero_for_the_same_input_and_state_untouched() -> None:
    model = _mlp().train()
    x = torch.randn(4, 12)
    flips = activation_flips(model, x, x)
    assert flips == {"1": 0.0, "global": 0.0}
    assert model.training
    assert activation_flips(model, x, -x)["global"] > 0.5


def test_sparsity_diagnostics_on_a_trained_model() -> None:
    model, _ = adversarially_trained()
    x, y = digits_points(32)
    rng = torch.get_rng_state()
    grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    diag = sparsity_diagnostics(model, x, y, eps=EPS, steps=5)
    assert torch.equal(torch.get_rng_state(), rng) and not model.training
    assert all((a is None and p.grad is None) or torch.equal(a, p.grad) for a, p in zip(grads, model.parameters()))
    assert diag.output_change["adversarial"] > diag.output_change["random"] > 0
    assert 0 < diag.activation_flips["global"] < 1
    assert 0 <= diag.sparsity < 1 and diag.layer_sparsity and diag.lipschitz_bound > 0
    assert json.loads(diag.to_json())["n"] == 32
    assert "product-of-norms bound" in str(diag)


def test_weight_sparsity_is_measured_after_masking() -> None:
    model = _mlp()
    with torch.no_grad():
        for layer in (model[0], model[2]):
            layer.weight[:, ::2] = 0
    x, y = torch.rand(8, 12), torch.randint(0, 3, (8,))
    diag = sparsity_diagnostics(model, x, y, eps=0.1, steps=2)
    assert diag.sparsity == pytest.approx(0.5)
    assert all(n.sparsity == pytest.approx(0.5) for n in diag.layers)
    change = output_change(model, x, y, eps=0.0, steps=1)
    assert change["random"] == 0.0 and change["adversarial"] == 0.0
