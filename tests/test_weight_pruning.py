"""Weight-level sparsity (torch.nn.utils.prune): exact sparsity, layer choice, masks through training."""

from __future__ import annotations

import copy
import warnings

import pytest
import timm
import torch

import robust_prune as rp
from robust_prune import AttackConfig, PruneConfig, TrainConfig
from robust_prune.errors import ConfigError, PruningError
from robust_prune.models import NormalizedModel
from robust_prune.pruning import prune
from robust_prune.pruning.masks import current_masks, make_permanent
from robust_prune.pruning.unstructured import prunable_layers, weight_prune
from robust_prune.training.adversarial import adversarial_loss, train


def _model(name: str = "test_resnet", seed: int = 0) -> NormalizedModel:
    torch.manual_seed(seed)
    return NormalizedModel.from_timm(timm.create_model(name, num_classes=10))


@pytest.mark.parametrize(
    ("name", "scope", "importance", "sparsity"),
    [
        ("test_resnet", "global", "magnitude", 0.8),
        ("test_resnet", "layerwise", "magnitude", 0.8),
        ("test_resnet", "global", "random", 0.3),
        ("test_resnet", "layerwise", "random", 0.3),
        ("resnet10t", "global", "magnitude", 0.8),
    ],
)
def test_exact_sparsity(name: str, scope: str, importance: str, sparsity: float) -> None:
    model = _model(name)
    record = weight_prune(model, PruneConfig(sparsity=sparsity, structure="weight", scope=scope, importance=importance))
    assert record.structure == "weight"
    assert abs(record.stats["sparsity"] - sparsity) <= 0.005
    masks = current_masks(model)
    assert set(masks) == set(record.masks) == set(record.stats["per_layer"])
    removed = sum(int((~m).sum()) for m in masks.values())
    assert removed == record.stats["pruned_weights"]
    if scope == "global":
        assert removed == round(sparsity * record.stats["prunable_weights"])
    else:
        for name, mask in masks.items():
            assert abs(record.stats["per_layer"][name] - sparsity) <= 1.0 / mask.numel() + 1e-9


def test_default_scope_depends_on_structure() -> None:
    weight = PruneConfig(structure="weight")
    assert weight.scope == "global"
    assert PruneConfig(structure="channel").scope == "layerwise"
    assert PruneConfig.from_json(weight.to_json()) == weight
    assert PruneConfig(structure="weight", scope="layerwise").scope == "layerwise"


def test_global_magnitude_is_the_default_for_weights() -> None:
    model = _model()
    _, record = prune(model, 0.6, structure="weight")
    assert record.extra["scope"] == "global"
    layers = prunable_layers(model, PruneConfig(structure="weight"))
    flat = torch.cat([m.weight_orig.detach().abs().flatten() for m in layers.values()])
    kept = torch.cat([m.weight_mask.bool().flatten() for m in layers.values()])
    assert float(flat[~kept].max()) <= float(flat[kept].min())  # one threshold over all layers


def test_stem_and_classifier_are_optional() -> None:
    default = prunable_layers(_model(), PruneConfig(structure="weight"))
    both = prunable_layers(_model(), PruneConfig(structure="weight", prune_first_layer=True, prune_classifier=True))
    assert "fc" not in default and "fc" in both
    assert len(both) == len(default) + 2


def test_robust_importance_uses_adversarial_gradients() -> None:
    model = _model()
    x, y = torch.rand(8, 3, 32, 32), torch.arange(8) % 10
    attack = AttackConfig(eps=0.1, steps=1, step_size=0.1)

    def loss_fn(m: torch.nn.Module) -> torch.Tensor:
        return adversarial_loss(m, x, y, objective="pgd-at", attack=attack)[0]

    with pytest.raises(PruningError):
        weight_prune(copy.deepcopy(model), PruneConfig(sparsity=0.5, structure="weight", importance="robust"))
    robust = weight_prune(
        model, PruneConfig(sparsity=0.5, structure="weight", importance="robust"), loss_fn=loss_fn
    ).masks
    assert all(p.grad is None for p in model.parameters())
    magnitude = weight_prune(_model(), PruneConfig(sparsity=0.5, structure="weight")).masks
    assert any(not torch.equal(robust[k], magnitude[k]) for k in robust)


def test_iterative_pruning_keeps_what_was_pruned() -> None:
    model = _model()
    first = weight_prune(model, PruneConfig(sparsity=0.5, structure="weight")).masks
    second = weight_prune(model, PruneConfig(sparsity=0.75, structure="weight", importance="random")).masks
    for name in first:
        assert not bool((second[name] & ~first[name]).any())


def test_masked_weights_stay_zero_through_training_and_permanent(tiny_bundle) -> None:
    model = _model()
    keys = set(model.model.state_dict())
    record = weight_prune(model, PruneConfig(sparsity=0.7, structure="weight"))
    cfg = TrainConfig(epochs=1, attack=AttackConfig(steps=1), lr=0.1)
    train(model, tiny_bundle.train, config=cfg, eps=tiny_bundle.default_eps, progress=False)
    with torch.no_grad():
        model(torch.rand(1, 3, 32, 32))
    for name, mask in record.masks.items():
        assert float(model.model.get_submodule(name.rsplit(".", 1)[0]).weight[~mask].abs().sum()) == 0.0
    masks = make_permanent(model)
    assert set(model.model.state_dict()) == keys  # a plain timm module again
    assert not any(hasattr(m, "weight_mask") or m._forward_pre_hooks for m in model.modules())
    for name, mask in masks.items():
        torch.testing.assert_close(mask, record.masks[name])
        assert float(model.model.get_parameter(name).detach()[~mask].abs().sum()) == 0.0


def test_gradient_importances_fit_one_structure_each() -> None:
    with pytest.raises(ConfigError, match="use 'robust'"):
        PruneConfig(sparsity=0.5, structure="weight", importance="taylor")
    with pytest.raises(ConfigError, match="use 'taylor'"):
        PruneConfig(sparsity=0.5, structure="channel", importance="robust")
    with pytest.raises(ConfigError, match="use 'taylor'"):
        prune(_model(), 0.5, importance="robust")


def test_layers_pruned_to_nothing_are_listed_and_warned_about() -> None:
    model = NormalizedModel.from_timm(timm.create_model("resnet10t", num_classes=10))
    with pytest.warns(UserWarning, match=r"removed every weight of \d+ layer"):
        record = prune(model, 0.999, structure="weight", scope="global").record
    emptied = record.stats["emptied_layers"]
    assert emptied and all(not record.masks[name].any() for name in emptied)  # not one weight kept
    make_permanent(model)
    report = rp.evaluate(model, "digits", attacks=(), n=16, latency=False, sanity=False, progress=False)
    assert [f"{name}.weight" for name in report.emptied_layers] == emptied
    assert f"layers pruned to 100% | {len(emptied)}:" in report.to_markdown()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the same sparsity per layer empties nothing: no warning
        layerwise = prune(timm.create_model("resnet10t", num_classes=10), 0.999, structure="weight", scope="layerwise")
    assert layerwise.record.stats["emptied_layers"] == []
