"""Pruning criteria (robust_prune/pruning/importance): one class per criterion, found by name, used by the channel
and the weight pruner alike, and the built-in names users pass keep their meaning."""

from __future__ import annotations

import pytest
import timm
import torch
import torch_pruning as tp

import robust_prune as rp
from robust_prune import PruneConfig
from robust_prune.errors import ConfigError, PruningError
from robust_prune.pruning import importance as importances
from robust_prune.pruning.importance import Importance, get_importance, list_importances, register_importance


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Criteria registered by a test are gone after it."""
    monkeypatch.setattr(importances.registry, "_REGISTRY", dict(importances.registry._REGISTRY))


class _FirstChannelsFirst(tp.importance.Importance):
    """Scores a group's channels by their position: the lowest indices go first."""

    def __call__(self, group: tp.Group) -> torch.Tensor:
        _, idxs = group[0]
        return torch.arange(len(idxs), dtype=torch.float32)


def test_a_new_criterion_is_one_class_and_prunes_channels_and_weights(registry: None) -> None:
    @register_importance
    class Position(Importance):
        """What comes first goes first: a criterion whose choices the test can predict."""

        name = "position"

        def channel_scorer(self) -> tp.importance.Importance:
            return _FirstChannelsFirst()

        def weight_scores(self, weight: torch.Tensor, grad: torch.Tensor | None) -> torch.Tensor:
            return torch.arange(weight.numel(), dtype=torch.float32).view(weight.shape)

    assert "position" in list_importances("channel") and "position" in list_importances("weight")
    assert PruneConfig(importance="position").importance == "position"  # the one validation accepts it

    _, channels = rp.prune(timm.create_model("test_resnet", num_classes=10), 0.5, importance="position", image_size=32)
    _, magnitude = rp.prune(timm.create_model("test_resnet", num_classes=10), 0.5, image_size=32)
    assert channels.history and all(idxs == list(range(len(idxs))) for _, _, idxs in channels.history)
    assert channels.history != magnitude.history  # the criterion chose, not magnitude

    _, weights = rp.prune(timm.create_model("test_resnet", num_classes=10), 0.5, structure="weight",
                          importance="position", scope="layerwise")  # fmt: skip
    assert weights.extra["importance"] == "position" and weights.masks
    for name, keep in weights.masks.items():
        flat = keep.flatten()
        pruned = round(0.5 * flat.numel())
        assert not flat[:pruned].any() and flat[pruned:].all(), name  # exactly the first half of every layer


def test_a_criterion_for_one_structure_is_refused_for_the_other(registry: None) -> None:
    @register_importance
    class WeightsOnly(Importance):
        name = "weights-only"
        structures = ("weight",)

        def weight_scores(self, weight: torch.Tensor, grad: torch.Tensor | None) -> torch.Tensor:
            return weight.abs()

    with pytest.raises(ConfigError, match="scores weights, not channels.*'magnitude', 'random', 'taylor'"):
        rp.prune(timm.create_model("test_resnet", num_classes=10), 0.5, importance="weights-only")
    with pytest.raises(ConfigError, match="Unknown importance 'nothing'.*weights-only"):
        PruneConfig(importance="nothing")


def test_the_built_in_names_keep_their_criteria() -> None:
    w, g = torch.tensor([[-2.0, 0.5], [1.0, -3.0]]), torch.tensor([[1.0, -4.0], [0.0, 2.0]])
    assert torch.equal(get_importance("magnitude").weight_scores(w, None), w.abs())
    assert torch.equal(get_importance("robust").weight_scores(w, g), (w * g).abs())
    assert torch.equal(get_importance("robust").weight_scores(w, None), torch.zeros_like(w))  # the loss missed it
    torch.manual_seed(0)
    drawn = get_importance("random").weight_scores(w, None)
    torch.manual_seed(0)
    assert torch.equal(drawn, torch.rand(w.shape))  # the global CPU RNG, as before
    scorers = {name: type(get_importance(name).channel_scorer()) for name in list_importances("channel")}
    assert scorers == {
        "magnitude": tp.importance.GroupMagnitudeImportance,
        "random": tp.importance.RandomImportance,
        "taylor": tp.importance.GroupTaylorImportance,
    }
    assert get_importance("magnitude").channel_scorer().p == 2
    assert {n for n in list_importances() if get_importance(n).gradients} == {"taylor", "robust"}


def test_a_gradient_criterion_without_a_loss_says_what_to_pass() -> None:
    for structure, name in (("channel", "taylor"), ("weight", "robust")):
        model = timm.create_model("test_resnet", num_classes=10)
        with pytest.raises(PruningError, match=f"importance='{name}' scores with gradients: pass loss_fn"):
            rp.prune(model, 0.5, structure=structure, importance=name, image_size=32)


def test_a_pruner_refuses_a_config_for_the_other_structure() -> None:
    from robust_prune.pruning.structured import channel_prune
    from robust_prune.pruning.unstructured import weight_prune

    model = timm.create_model("test_resnet", num_classes=10)
    with pytest.raises(ConfigError, match="structure='weight'"):
        channel_prune(model, PruneConfig(structure="weight"))
    with pytest.raises(ConfigError, match="structure='channel'"):
        weight_prune(model, PruneConfig())
    with pytest.raises(ConfigError, match="either a PruneConfig or options"):
        rp.prune(model, PruneConfig(), scope="global")
