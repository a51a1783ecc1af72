"""robustify() end to end on real digits with a real timm model, its saved folder, and the CLI."""

import json

import pytest
import timm
import torch

import robust_prune as rp
from robust_prune.cli import main


@pytest.fixture
def loaders(tiny_bundle):
    return tiny_bundle.train, tiny_bundle.test


def test_prune_method_returns_a_smaller_measured_model(loaders, tmp_path):
    result = rp.robustify("test_resnet", loaders, method="prune", sparsity=0.5, epochs=1, finetune_epochs=1,
                          attack=rp.AttackConfig(eps=0.1, steps=2), progress=False)
    report = result.report
    assert result.record.structure == "channel" and result.record.stats["macs_ratio"] <= 0.5
    assert report.n == 48 and 0.0 <= report.robust_accuracy["pgd"] <= report.clean_accuracy
    assert report.macs == result.record.stats["macs_after"]
    assert not result.model.training
    assert [h.stage for h in result.history] == ["adversarial training", "adversarial fine-tuning"]
    text = str(report)
    assert "pgd accuracy" in text and "MACs" in text
    assert rp.RobustnessReport.from_json(report.to_json()).robust_accuracy == report.robust_accuracy

    folder = result.save_pretrained(tmp_path / "run")
    assert {p.name for p in folder.iterdir()} >= {"config.json", "model.safetensors", "report.json", "README.md"}
    again = rp.from_pretrained(folder)
    x = torch.rand(4, 3, 32, 32)
    assert torch.equal(again(x), result.model(x))
    assert again.record.history == result.record.history


def test_dense_method_keeps_the_architecture(loaders):
    result = rp.robustify("test_resnet", loaders, method="dense", epochs=1, progress=False,
                          attack=rp.AttackConfig(eps=0.1, steps=1))
    assert result.record.structure == "none" and result.report.sparsity == 0.0
    assert [h.stage for h in result.history] == ["adversarial training"]  # one stage, one epoch: no pruning
    fresh = timm.create_model("test_resnet", num_classes=result.model.model.num_classes)
    trained = dict(result.model.model.named_modules())
    assert trained.keys() == dict(fresh.named_modules()).keys()
    for name, module in fresh.named_modules():  # module by module: the same types and shapes as timm's own
        assert type(trained[name]) is type(module), name
        assert {k: v.shape for k, v in trained[name].state_dict().items()} == {
            k: v.shape for k, v in module.state_dict().items()
        }, name


def test_the_report_uses_the_training_eps_unless_told_otherwise(loaders):
    def robustify(**kw):
        return rp.robustify("test_resnet", loaders, method="dense", epochs=0, progress=False, **kw)

    trained = robustify(attack=rp.AttackConfig(eps=0.05, steps=1))
    assert trained.report.meta["eps"] == 0.05
    told = robustify(attack=rp.AttackConfig(eps=0.05, steps=1), eval_eps=0.2)
    assert told.report.meta["eps"] == 0.2
    only_eval = robustify(eval_eps=0.2)  # the one budget given is the run's: training falls back to it
    assert only_eval.report.meta["eps"] == 0.2 and only_eval.config.budgets(None) == (0.2, 0.2)


def test_user_loaders_without_an_eps_are_refused_before_training(loaders, tmp_path):
    for options in ({}, {"attack": rp.AttackConfig(norm="L2", eps=0.5, steps=1)}):  # an L2 budget is not L-inf
        with pytest.raises(rp.errors.ConfigError, match="attack=.*eval_eps="):
            rp.robustify("test_resnet", loaders, method="dense", run_dir=tmp_path / "run", progress=False, **options)
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_robustify_rejects_bad_input_before_training(loaders):
    with pytest.raises(rp.errors.ConfigError, match="sparsity"):
        rp.robustify("test_resnet", loaders, sparsity=1.0)
    with pytest.raises(rp.errors.ModelAdaptationError, match="timm model"):
        rp.robustify(42, loaders)
    with pytest.raises(rp.errors.DatasetError, match="Unknown dataset"):
        rp.robustify("test_resnet", "not-a-dataset")


def test_cli_robustify_writes_the_run_folder(tmp_path, capsys):
    out = tmp_path / "cli-run"
    code = main(["robustify", "--model", "test_resnet", "--epochs", "0", "--finetune-epochs", "0",
                 "--n", "16", "--out", str(out), "--no-progress"])
    assert code == 0
    assert "pgd accuracy" in capsys.readouterr().out
    config = json.loads((out / "config.json").read_text())
    assert config["architecture"] == "test_resnet" and config["robust_prune"]["structure"] == "channel"
    assert json.loads((out / "report.json").read_text())["n"] == 16
    assert main(["evaluate", str(out), "--n", "8", "--steps", "2", "--no-progress"]) == 0


def test_cli_reports_bad_input_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "never"
    assert main(["robustify", "--model", "test_resnet", "--sparsity", "1.0", "--out", str(out)]) == 2
    assert "sparsity must be in [0, 1)" in capsys.readouterr().err
    assert not out.exists()


def test_cli_evaluate_reports_at_the_budget_the_model_was_trained_for(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["robustify", "--model", "test_resnet", "--epochs", "0", "--finetune-epochs", "0", "--eps", "0.05",
                 "--n", "16", "--out", str(out), "--no-progress"]) == 0
    assert "Linf eps=0.05," in capsys.readouterr().out
    assert main(["evaluate", str(out), "--n", "16", "--no-progress", "--no-sanity"]) == 0
    assert "Linf eps=0.05," in capsys.readouterr().out
    assert main(["evaluate", str(out), "--n", "16", "--eps", "0.3", "--no-progress", "--no-sanity"]) == 0
    assert "Linf eps=0.3," in capsys.readouterr().out
