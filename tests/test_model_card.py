"""The model card: metadata and model-index built with huggingface_hub, parsed back by it to the same numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from huggingface_hub import ModelCard

from robust_prune.evaluation.report import AttackResult, RobustnessReport
from robust_prune.publishing.model_card import build_model_card, card_metrics, report_metrics, timm_loadable

torch.set_num_threads(1)


def _attack(name: str, accuracy: float, steps: int) -> AttackResult:
    return AttackResult(name, accuracy, round(accuracy * 200), 200, accuracy - 0.05, accuracy + 0.05, "Linf",
                        8 / 255, steps, 1, 1.5)


def _report(sanity_ok: bool = True) -> RobustnessReport:
    attacks = {"pgd": _attack("pgd", 0.515, 20), "autoattack": _attack("autoattack", 0.47, 100)}
    return RobustnessReport(
        clean_accuracy=0.8125,
        n=200,
        robust_accuracy={"pgd": 0.515, "autoattack": 0.47, "worst-case": 0.465},
        attacks=attacks,
        params=123_456,
        macs=7_890_000,
        sparsity=0.4321,
        sanity=[
            {"name": "robust <= clean", "passed": True, "detail": "ok"},
            {"name": "autoattack <= pgd", "passed": sanity_ok, "detail": "0.47 <= 0.515"},
        ],
        meta={"data": "cifar10"},
    )


def _config(structure: str = "channel", **section: Any) -> dict[str, Any]:
    history = [["layer1.0.conv1", True, [0, 3]]] if structure == "channel" else []
    return {
        "architecture": "resnet10t",
        "num_classes": 10,
        "model_args": {},
        "pretrained_cfg": {"input_size": [3, 32, 32], "license": "apache-2.0"},
        "robust_prune": {
            "method": "prune" if structure != "none" else "dense",
            "structure": structure,
            "sparsity": 0.5,
            "record": {"history": history, "module_attrs": {}, "stats": {"params": 123_456}},
            "data": {"name": "cifar10"},
            **section,
        },
    }


def test_model_index_parses_back_to_the_report() -> None:
    report = _report()
    card = ModelCard(str(build_model_card(_config(), report, repo_id="me/resnet10t-cifar10")))
    assert card_metrics(card) == report_metrics(report) == {
        "clean": 0.8125,
        "pgd Linf eps=0.0313725 steps=20 restarts=1": 0.515,
        "autoattack Linf eps=0.0313725 steps=100 restarts=1": 0.47,
    }
    results = card.data.eval_results
    assert len(results) == 3  # clean + one per attack
    for r in results:
        assert r.task_type == "image-classification"
        assert (r.dataset_type, r.dataset_name, r.dataset_split) == ("uoft-cs/cifar10", "CIFAR-10", "test")
    robust = [r for r in results if r.metric_type == "robust_accuracy"]
    assert {r.metric_name for r in robust} == {
        "pgd robust accuracy (Linf eps=8/255, 20 steps)",
        "autoattack robust accuracy (Linf eps=8/255, 100 steps)",
    }
    assert [r.metric_type for r in results if r.metric_config == "clean"] == ["accuracy"]


def test_metadata() -> None:
    card = build_model_card(_config(base_model="timm/resnet10t.c3_in1k"), _report(), repo_id="me/m")
    data = card.data
    assert data.library_name == "robust_prune"
    assert {"robust_prune", "adversarial-robustness", "pruning"} <= set(data.tags)
    assert "timm" not in data.tags  # channel-pruned: timm cannot load it
    assert data.datasets == ["uoft-cs/cifar10"]
    assert data.license == "apache-2.0"
    assert data.base_model == "timm/resnet10t.c3_in1k"
    assert data.model_name == "me/m"


def test_body_says_how_to_load_and_what_was_measured() -> None:
    channel = str(build_model_card(_config(), _report(), repo_id="me/pruned"))
    assert 'rp.from_pretrained("me/pruned")' in channel
    assert 'timm.create_model("hf-hub:me/pruned"' not in channel and "strict=True" in channel
    for text in ("| clean accuracy | 81.25%", "| pgd accuracy | 51.50%", "MACs per image: 7,890,000",
                 "weight sparsity (zero weights in conv/linear layers): 43.21%", "robust <= clean: passed",
                 "arXiv:2009.05423", "Achieving Adversarial Robustness via Sparsity", "Liao, Ningyi"):
        assert text in channel, text
    dense = build_model_card(_config("none"), _report(), repo_id="me/dense")
    assert 'timm.create_model("hf-hub:me/dense", pretrained=True)' in str(dense)
    assert "timm" in dense.data.tags and timm_loadable(_config("weight"))


def test_failed_sanity_checks_are_flagged_and_withhold_the_model_index() -> None:
    card = build_model_card(_config(), _report(sanity_ok=False), repo_id="me/m")
    text = str(card)
    assert "autoattack <= pgd: **FAILED**" in text and "suspicion" in text
    assert card.data.eval_results is None and card_metrics(text) == {}  # nothing unverified is published
    assert "## Robustness report (unverified)" in text and "sanity checks failed" in text
    assert "| pgd accuracy | 51.50%" in text  # the numbers stay readable, in prose


def test_unrun_sanity_checks_withhold_the_model_index() -> None:
    report = _report()
    report.sanity = []
    card = build_model_card(_config(), report, repo_id="me/m")
    assert card.data.eval_results is None and "sanity checks were not run" in str(card)


def test_licence_and_base_model_come_from_what_is_known() -> None:
    known = build_model_card(_config(), _report(), repo_id="me/m")
    assert known.data.license == "apache-2.0" and known.data.base_model is None
    assert "Base weights: not recorded" in str(known)
    config = _config(base_model="timm/resnet10t.c3_in1k")
    config["pretrained_cfg"]["license"] = "cc-by-nc-4.0"
    noncommercial = build_model_card(config, _report(), repo_id="me/m")
    assert noncommercial.data.license == "cc-by-nc-4.0" and noncommercial.data.base_model == "timm/resnet10t.c3_in1k"
    assert "Started from the weights `timm/resnet10t.c3_in1k`" in str(noncommercial)
    del config["pretrained_cfg"]["license"]
    unknown = build_model_card(config, _report(), repo_id="me/m")
    assert unknown.data.license == "other" and "Licence: unknown" in str(unknown)


def test_the_base_model_travels_through_load_and_save(tmp_path: Path) -> None:
    import robust_prune as rp
    from robust_prune.api import prepare

    model, _ = prepare("test_resnet", "digits")
    first = rp.save_pretrained(model.eval(), tmp_path / "a", report=_report(), base_model="timm/test_resnet.r160_in1k")
    second = rp.save_pretrained(rp.from_pretrained(first), tmp_path / "b")
    for folder in (first, second):
        card = ModelCard.load(folder / "README.md")
        assert card.data.base_model == "timm/test_resnet.r160_in1k" and card.data.license == "apache-2.0"


def test_card_without_report_has_no_model_index(tmp_path: Path) -> None:
    card = build_model_card(_config(), None)
    path = tmp_path / "README.md"
    card.save(path)
    again = ModelCard.load(path)
    assert again.data.eval_results is None and card_metrics(again) == {}
    assert 'rp.from_pretrained("REPO_ID")' in again.text


def test_local_save_writes_a_parseable_card(tmp_path: Path) -> None:
    import robust_prune as rp
    from robust_prune.api import prepare

    model, _ = prepare("test_resnet", "digits")
    report = _report()
    folder = rp.save_pretrained(model.eval(), tmp_path / "m", report=report, repo_id="me/local")
    assert card_metrics(ModelCard.load(folder / "README.md")) == report_metrics(report)
    assert {p.name for p in folder.iterdir()} == {"config.json", "model.safetensors", "report.json", "report.md",
                                                  "README.md"}
    loaded = rp.from_pretrained(folder)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_timm_weights_from_the_hub_are_named_as_base_model(hub_server, tmp_path: Path) -> None:
    """rp.models.create_model(pretrained=True) downloads timm's weights (here from the test Hub) and the card of a
    model made from them names them; a local weights file is not named."""
    import timm
    from safetensors.torch import save_file

    import robust_prune as rp

    published = timm.create_model("test_resnet")
    weights = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in published.state_dict().items()}, str(weights))
    hub_server.add_repo("timm/test_resnet.r160_in1k", {"model.safetensors": weights.read_bytes()})
    model = rp.models.create_model("test_resnet", pretrained=True, num_classes=10)
    assert torch.equal(model.conv1[0].weight, published.conv1[0].weight)  # timm really loaded them
    folder = rp.save_pretrained(model.eval(), tmp_path / "m", report=_report())
    assert ModelCard.load(folder / "README.md").data.base_model == "timm/test_resnet.r160_in1k"
    local = rp.models.create_model("test_resnet", pretrained=True, num_classes=10,
                                   pretrained_cfg_overlay={"file": str(weights)})  # fmt: skip
    assert rp.models.base_model_of(local) is None
