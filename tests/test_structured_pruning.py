"""Channel pruning with torch-pruning: smaller models, exact rebuild from the record, JSON-able records."""

import json

import pytest
import timm
import torch

import robust_prune as rp
from robust_prune.errors import ConfigError
from robust_prune.pruning import PruningRecord, rebuild_model


@pytest.fixture
def resnet():
    model = rp.models.create_model("resnet10t", num_classes=10)
    return model.eval()


def test_half_the_channels_gives_at_most_half_the_macs(resnet):
    model, record = rp.prune(resnet, 0.5)
    assert record.structure == "channel" and record.architecture == "resnet10t"
    assert record.stats["macs_ratio"] <= 0.5
    assert record.stats["params_ratio"] < 0.5
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_the_record_rebuilds_identical_outputs_through_json(resnet):
    model, record = rp.prune(resnet, 0.5)
    restored = PruningRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    fresh = rebuild_model(restored)
    fresh.load_state_dict(model.state_dict(), strict=True)
    x = torch.rand(3, 3, 32, 32)
    assert torch.equal(fresh(x), model.eval()(x))


def test_classifier_keeps_its_outputs_and_prune_works_through_the_wrapper(resnet):
    wrapped = rp.models.NormalizedModel.from_timm(resnet)
    rp.prune(wrapped, 0.3)
    assert resnet.get_classifier().out_features == 10
    assert wrapped(torch.rand(1, 3, 32, 32)).shape == (1, 10)


def test_taylor_importance_uses_the_given_loss(resnet):
    x, y = torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,))
    _, record = rp.prune(resnet, 0.5, importance="taylor",
                         loss_fn=lambda m: torch.nn.functional.cross_entropy(m(x), y))
    assert record.stats["macs_ratio"] <= 0.5
    assert all(p.grad is None for p in resnet.parameters())


def test_without_a_size_a_model_is_traced_at_its_own_input_size():
    # inception_v3 cannot run at 32 px; rp.prune traced at 32 unless told, and refused it ("Calculated padded input
    # size ... is too small") before issue 25. Its timm config says 299.
    model, record = rp.prune(timm.create_model("inception_v3", pretrained=False, num_classes=10), 0.5)
    assert record.input_size == [3, 299, 299] and record.stats["macs_ratio"] < 0.5
    assert model.eval()(torch.rand(1, 3, 299, 299)).shape == (1, 10)
    # a model whose config names no size is traced at 32 px; the data's size, when given, wins over the model's
    assert rp.models.input_size(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3))) == [3, 32, 32]
    pruned = rp.prune(timm.create_model("test_resnet", num_classes=10), 0.5, image_size=48)
    assert pruned.record.input_size == [3, 48, 48]


def test_magnitude_pruning_is_deterministic():
    records = []
    for _ in range(2):
        torch.manual_seed(0)
        records.append(rp.prune(timm.create_model("test_resnet", num_classes=10), 0.5).record)
    assert records[0].history == records[1].history


@pytest.mark.parametrize("sparsity", [1.0, -0.1, 1.5])
def test_sparsity_outside_0_1_is_refused_before_touching_weights(resnet, sparsity):
    before = {k: v.clone() for k, v in resnet.state_dict().items()}
    with pytest.raises(ConfigError, match="sparsity"):
        rp.prune(resnet, sparsity)
    assert all(torch.equal(before[k], v) for k, v in resnet.state_dict().items())
