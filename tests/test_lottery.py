"""Lottery tickets: IMP rounds, rewinding, the re-initialised control, both structures, determinism."""

from __future__ import annotations

import pytest
import torch

from robust_prune import AttackConfig, PruneConfig, RobustifyConfig, TrainConfig
from robust_prune.api import prepare
from robust_prune.errors import ConfigError
from robust_prune.methods import get_method
from robust_prune.methods.lottery import find_ticket
from robust_prune.pruning import rebuild_model
from robust_prune.pruning.lottery import rewind, round_sparsities, rounds_for_rate
from robust_prune.pruning.masks import current_masks
from robust_prune.pruning.structured import channel_prune
from robust_prune.pruning.unstructured import weight_prune
from robust_prune.training.runner import StageRunner


def _config(structure: str = "weight", **prune: object) -> RobustifyConfig:
    cfg = TrainConfig(epochs=1, attack=AttackConfig(steps=1), lr=0.05)
    options = {"sparsity": 0.75, "rounds": 2, "rewind_epoch": 1, **prune}
    return RobustifyConfig(
        method="lottery",
        pretrain=cfg,
        finetune=cfg,
        prune=PruneConfig(structure=structure, **options),  # type: ignore[arg-type]
        eval_steps=2,
        eval_n=16,
    )


def _model(bundle, seed: int = 0):
    torch.manual_seed(seed)
    model, _ = prepare("test_resnet", bundle)
    return model


def _surviving(model) -> dict[str, torch.Tensor]:
    """Surviving weight values, by mask (weight structure)."""
    out = {}
    for name, mask in current_masks(model).items():
        module = model.model.get_submodule(name.rsplit(".", 1)[0])
        out[name] = module.weight_orig.detach()[mask].clone()
    return out


def test_round_schedule() -> None:
    assert [round(s, 4) for s in round_sparsities(PruneConfig(sparsity=0.75, rounds=2))] == [0.5, 0.75]
    assert round_sparsities(PruneConfig(sparsity=0.8, rounds=4))[-1] == 0.8
    assert rounds_for_rate(0.8, 0.2) == 8
    assert rounds_for_rate(0.5, 0.5) == 1
    with pytest.raises(ConfigError):
        rounds_for_rate(0.5, 1.0)


def test_rewinding_restores_checkpoint_values_weight(tiny_bundle) -> None:
    model = _model(tiny_bundle)
    state = {k: v.clone() for k, v in model.model.state_dict().items()}
    record = weight_prune(model, PruneConfig(sparsity=0.6, structure="weight"))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    rewind(model, state, record)
    for name, mask in record.masks.items():
        module = model.model.get_submodule(name.rsplit(".", 1)[0])
        torch.testing.assert_close(module.weight_orig[mask], state[name][mask], rtol=0, atol=0)
        assert float(module.weight[~mask].abs().sum()) == 0.0
    torch.testing.assert_close(model.model.fc.bias, state["fc.bias"], rtol=0, atol=0)


def test_rewinding_restores_checkpoint_values_channel(tiny_bundle) -> None:
    model = _model(tiny_bundle)
    state = {k: v.clone() for k, v in model.model.state_dict().items()}
    record = channel_prune(model, PruneConfig(sparsity=0.5), image_size=tiny_bundle.image_size)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    rewind(model, state, record)
    torch.testing.assert_close(model.model.fc.bias, state["fc.bias"], rtol=0, atol=0)
    dense_cols = {tuple(c.tolist()) for c in state["fc.weight"].t()}
    assert all(tuple(c.tolist()) in dense_cols for c in model.model.fc.weight.detach().t())
    assert model.model.fc.weight.shape[1] < state["fc.weight"].shape[1]


def test_weight_ticket_rewinds_and_reinit_shares_mask(tiny_bundle) -> None:
    rewound_model = _model(tiny_bundle)
    rewound = find_ticket(rewound_model, tiny_bundle, _config())
    reinit_model = _model(tiny_bundle)
    reinit = find_ticket(reinit_model, tiny_bundle, _config(reinit=True))
    assert rewound.record.extra["reinit"] is False and reinit.record.extra["reinit"] is True
    assert [r["round"] for r in rewound.record.extra["rounds"]] == [1, 2]
    assert abs(rewound.record.stats["sparsity"] - 0.75) <= 0.005
    masks, reinit_masks = current_masks(rewound_model), current_masks(reinit_model)
    assert masks.keys() == reinit_masks.keys()
    assert all(torch.equal(masks[k], reinit_masks[k]) for k in masks)  # same seed and budget: same final mask
    # the rewound ticket holds the rewind checkpoint's values; the re-initialised one does not
    for name, values in _surviving(rewound_model).items():
        torch.testing.assert_close(values, rewound.rewind_state[name][masks[name]], rtol=0, atol=0)
    surviving_reinit = _surviving(reinit_model)
    assert any(not torch.equal(v, surviving_reinit[k]) for k, v in _surviving(rewound_model).items())


def test_lottery_method_weight_end_to_end_is_deterministic(tiny_bundle) -> None:
    lottery = get_method("lottery").run
    results = [lottery(_model(tiny_bundle), tiny_bundle, _config(), runner=StageRunner(), progress=False)
               for _ in range(2)]  # fmt: skip
    first, second = results
    record = first.record
    assert record.structure == "weight" and record.extra["method"] == "lottery"
    assert abs(record.stats["sparsity"] - 0.75) <= 0.005
    assert not any(hasattr(m, "weight_mask") for m in first.model.modules())  # plain timm module
    for name, mask in record.masks.items():
        assert float(first.model.model.get_parameter(name).detach()[~mask].abs().sum()) == 0.0
    for k, v in first.model.state_dict().items():
        torch.testing.assert_close(v, second.model.state_dict()[k], rtol=0, atol=0)
    a, b = first.report.to_dict(), second.report.to_dict()
    assert a["clean_accuracy"] == b["clean_accuracy"]
    assert {k: v["accuracy"] for k, v in a["attacks"].items()} == {k: v["accuracy"] for k, v in b["attacks"].items()}
    assert len(first.history) == first.config.total_epochs()


def test_channel_lottery_replays_and_reinit(tiny_bundle) -> None:
    model = _model(tiny_bundle)
    ticket = find_ticket(model, tiny_bundle, _config("channel", sparsity=0.5))
    record = ticket.record
    assert record.structure == "channel" and len(record.extra["rounds"]) == 2
    rebuilt = rebuild_model(record)
    rebuilt.load_state_dict(model.model.state_dict())  # the accumulated history replays to the same shapes
    x = torch.rand(2, 3, 32, 32)
    model.eval()
    torch.testing.assert_close(rebuilt(x), model.model(x))
    reinit_model = _model(tiny_bundle)
    reinit = find_ticket(reinit_model, tiny_bundle, _config("channel", sparsity=0.5, reinit=True))
    assert reinit.record.history == record.history
    shapes = {k: v.shape for k, v in model.model.state_dict().items()}
    assert shapes == {k: v.shape for k, v in reinit_model.model.state_dict().items()}
    assert not torch.equal(model.model.fc.weight, reinit_model.model.fc.weight)


def test_clean_pruning_and_bad_rewind_epoch(tiny_bundle) -> None:
    ticket = find_ticket(_model(tiny_bundle), tiny_bundle, _config(adversarial=False, rounds=1, rewind_epoch=0))
    assert ticket.record.extra["adversarial"] is False
    assert all(h.stage.startswith("clean pruning") for h in ticket.history)
    with pytest.raises(ConfigError):
        find_ticket(_model(tiny_bundle), tiny_bundle, _config(rewind_epoch=2))
