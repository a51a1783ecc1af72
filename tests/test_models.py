"""Pixel-space models: normalisation inside, classifier fitted to the data, typed errors."""

import pytest
import timm
import torch

from robust_prune.errors import ModelAdaptationError
from robust_prune.models import NormalizedModel, adapt_model, create_model


def test_normalized_model_applies_timm_mean_and_std():
    inner = timm.create_model("test_resnet", num_classes=4).eval()
    model = NormalizedModel.from_timm(inner).eval()
    x = torch.rand(2, 3, 32, 32)
    mean = torch.tensor(inner.pretrained_cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(inner.pretrained_cfg["std"]).view(1, 3, 1, 1)
    assert torch.allclose(model(x), inner((x - mean) / std))
    assert NormalizedModel.from_timm(model) is model


def test_adapt_model_resets_the_classifier_and_remembers_it():
    model = create_model("test_resnet", num_classes=1000)
    adapt_model(model, num_classes=10)
    assert model.eval()(torch.rand(1, 3, 32, 32)).shape == (1, 10)
    assert model.robust_prune_model_args["num_classes"] == 10


def test_bad_models_get_typed_errors():
    with pytest.raises(ModelAdaptationError, match="torch.nn.Module"):
        adapt_model("resnet18", num_classes=10)
    with pytest.raises(ModelAdaptationError, match="no model called"):
        create_model("resnet_does_not_exist")
    with pytest.raises(ModelAdaptationError, match="at least 2"):
        adapt_model(timm.create_model("test_resnet"), num_classes=1)
    with pytest.raises(ModelAdaptationError, match="reset_classifier"):
        adapt_model(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3, 5)), num_classes=10)
