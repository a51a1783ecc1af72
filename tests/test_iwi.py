"""method="iwi": ticket -> grow -> adversarial training of the full-width model; its CLI and saved folders."""

from __future__ import annotations

import pytest
import timm
import torch

import robust_prune as rp
from robust_prune.cli import main


@pytest.fixture
def loaders(tiny_bundle):
    return tiny_bundle.train, tiny_bundle.test


def test_iwi_returns_a_full_width_timm_model_that_remembers_its_ticket(loaders, tmp_path):
    result = rp.robustify(
        "test_resnet",
        loaders,
        method="iwi",
        ticket_method="prune",  # pinned: this test checks a channel ticket, whatever IWI_DEFAULT says
        structure="channel",
        sparsity=0.5,
        epochs=1,
        finetune_epochs=0,
        grow_epochs=1,
        attack=rp.AttackConfig(eps=0.1, steps=1),
        eval_n=16,
        progress=False,
    )
    assert result.config.total_epochs() == 2
    assert [h.stage for h in result.history] == ["adversarial training", "adversarial training (grown)"]
    assert result.record.structure == "none"
    assert result.ticket_report is not None and result.ticket_report.macs < result.report.macs
    extra = result.record.extra
    assert extra["method"] == "iwi" and extra["ticket"]["structure"] == "channel"
    assert extra["growth"]["exact"] is True and "clean_accuracy" in extra["ticket_report"]
    fresh = timm.create_model("test_resnet", num_classes=10)
    fresh.load_state_dict(result.model.model.state_dict(), strict=True)

    folder = result.save_pretrained(tmp_path / "iwi")
    again = rp.from_pretrained(folder)
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(again(x), result.model(x), atol=1e-6)
    assert again.saved_config["ticket_report"]["n"] == 16


def test_iwi_flags_reach_the_configuration(capsys):
    with pytest.raises(rp.errors.ConfigError, match="grow init"):
        rp.RobustifyConfig(method="iwi", grow_init="ones")
    argv = ["robustify", "--method", "iwi", "--print-config", "--grow-epochs", "2", "--ticket-method", "lottery",
            "--grow-init", "zero"]  # fmt: skip
    assert main(argv) == 0
    cfg = rp.RobustifyConfig.from_json(capsys.readouterr().out)
    assert (cfg.method, cfg.grow_train.epochs, cfg.ticket_method, cfg.grow_init) == ("iwi", 2, "lottery", "zero")

def test_cli_grow_writes_a_full_width_folder(tmp_path, capsys):
    ticket = rp.prune(NormalizedModel_from("test_resnet"), 0.5)
    run = rp.save_pretrained(ticket.model, tmp_path / "ticket", record=ticket.record)
    assert main(["grow", str(run), "--out", str(tmp_path / "grown")]) == 0
    assert "exact" in capsys.readouterr().out
    grown = rp.from_pretrained(tmp_path / "grown")
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(grown(x), ticket.model.eval()(x), atol=1e-5)
    timm.create_model("test_resnet", num_classes=10).load_state_dict(grown.model.state_dict(), strict=True)
    assert main(["grow", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")]) == 2


def NormalizedModel_from(name: str) -> rp.models.NormalizedModel:  # noqa: N802
    return rp.models.NormalizedModel.from_timm(rp.models.create_model(name, num_classes=10))


def test_iwi_from_a_lottery_weight_ticket_grows_back_to_plain_timm_with_the_tickets_function(loaders):
    model = timm.create_model("test_resnet", num_classes=10)
    result = rp.robustify(
        model,
        loaders,
        method="iwi",
        structure="weight",
        ticket_method="lottery",
        sparsity=0.8,
        epochs=1,
        finetune_epochs=1,
        grow_epochs=0,  # the grown model as it is before its own training
        attack=rp.AttackConfig(eps=0.1, steps=1),
        eval_n=48,
        progress=False,
    )
    growth = result.record.extra["growth"]
    assert result.record.extra["ticket"]["structure"] == "weight" and result.config.ticket_method == "lottery"
    assert growth["function_preserving"] is True and growth["new_entries"] > 0
    assert type(result.model.model) is type(timm.create_model("test_resnet"))
    fresh = timm.create_model("test_resnet", num_classes=10)
    fresh.load_state_dict(result.model.model.state_dict(), strict=True)
    # the ticket's function: the same predictions on every test point, clean and under the same PGD
    assert result.report.clean_accuracy == result.ticket_report.clean_accuracy
    assert result.report.robust_accuracy["pgd"] == result.ticket_report.robust_accuracy["pgd"]
    # the ticket's pruned weights are exact zeros in the grown model (nothing trained them yet)
    zeros = sum(int((p == 0).sum()) for p in fresh.parameters() if p.dim() > 1)
    assert zeros >= growth["new_entries"]


def test_iwi_defaults_follow_its_registration_and_the_new_options_reach_the_config(monkeypatch, capsys):
    import dataclasses

    from robust_prune import methods
    from robust_prune.methods.iwi import IWI_DEFAULT
    from robust_prune.options import build_config

    # when the measured best ticket is a weight ticket, every way of asking for iwi gets it; other methods do not
    iwi = dataclasses.replace(methods.get_method("iwi"), prune_defaults={"structure": "weight", "sparsity": 0.8})
    monkeypatch.setitem(methods._REGISTRY, "iwi", iwi)
    assert rp.RobustifyConfig(method="iwi") == build_config(method="iwi")
    assert build_config(method="iwi", sparsity=0.9).prune.structure == "weight"
    assert (rp.RobustifyConfig(method="iwi").prune.structure, rp.RobustifyConfig(method="iwi").prune.sparsity) == (
        "weight", 0.8)  # fmt: skip
    assert rp.RobustifyConfig(method="prune").prune.structure == "channel"
    assert rp.RobustifyConfig(method="prune").prune.sparsity == 0.5
    given = build_config(method="iwi", structure="channel", sparsity=0.3).prune
    assert (given.structure, given.sparsity) == ("channel", 0.3)
    monkeypatch.undo()

    cfg = build_config(method="iwi")
    got = {"ticket_method": cfg.ticket_method, "structure": cfg.prune.structure, "sparsity": cfg.prune.sparsity,
           "grow_init": cfg.grow_init}  # fmt: skip
    assert got == IWI_DEFAULT
    cfg = build_config(method="iwi", structure="weight", grow_init="small-out", grow_out_scale=0.2, grow_scale=0.01)
    got = (cfg.prune.structure, cfg.grow_init, cfg.grow_out_scale, cfg.grow_scale)
    assert got == ("weight", "small-out", 0.2, 0.01)
    with pytest.raises(rp.errors.ConfigError, match="grow_out_scale"):
        rp.RobustifyConfig(method="iwi", grow_out_scale=-0.1)
    argv = ["robustify", "--method", "iwi", "--print-config", "--grow-init", "net2net", "--grow-out-scale", "0.3"]
    assert main(argv) == 0
    cfg = rp.RobustifyConfig.from_json(capsys.readouterr().out)
    assert (cfg.grow_init, cfg.grow_out_scale) == ("net2net", 0.3)
