"""Zoo coverage: every adapter's quick example model, one test id per model.

Each model (timm's tiny test_* models and the smallest member of each family, at a small input size) is
pruned to 50% channel sparsity and must: run forward with the same output shape, lose MACs and parameters,
be rebuilt from a fresh timm model plus its JSON round-tripped record with identical outputs
(``torch.equal``), and take one PGD adversarial training step with a finite loss. The steps are the ones
``python -m benchmarks zoo`` runs (``benchmarks.zoo.check_example``), so the table and the tests agree.
"""

from __future__ import annotations

import json
from argparse import Namespace
from collections.abc import Iterator

import pytest
import torch

from benchmarks import zoo
from robust_prune.adapter_api import adapter_by_name, list_adapters

QUICK = [(name, ex) for name in list_adapters() for ex in adapter_by_name(name).examples if ex.quick]
STEPS = {"prune", "forward", "shape", "macs", "params", "rebuild", "adversarial_step"}


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(("adapter_name", "example"), QUICK, ids=[ex.id for _, ex in QUICK])
def test_zoo_model_prunes_rebuilds_and_trains(adapter_name: str, example) -> None:
    row = zoo.check_example(example, sparsity=0.5, latency=False)
    assert row["adapter"] == adapter_name
    assert row["status"] == "pass", f"{example.id}: {row['reason']} (steps {row['steps']})"
    assert set(row["steps"]) == STEPS and all(row["steps"].values())
    assert 0 < row["macs_ratio"] < 1 and 0 < row["params_ratio"] < 1


def test_quick_examples_cover_every_required_family() -> None:
    families = {ex.family for _, ex in QUICK}
    assert set(zoo.FAMILIES) <= families, sorted(set(zoo.FAMILIES) - families)


def test_zoo_command_writes_json_and_markdown(tmp_path) -> None:
    args = Namespace(
        quick=False, models="test_resnet", sparsity=0.5, latency_batch=2, latency_size=32, repeats=3,
        no_latency=False, timeout=300, out=str(tmp_path), name="zoo", isolate=False,
    )
    assert zoo.main(args) == 0
    data = json.loads((tmp_path / "zoo.json").read_text())
    assert data["suite"] == "zoo"
    assert {"command", "git_commit", "torch", "timm", "threads", "cpu"} <= set(data["environment"])
    (row,) = data["rows"]
    assert row["model"] == "test_resnet" and row["status"] == "pass", row["reason"]
    assert row["latency_ratio"] > 0 and row["prune_s"] >= 0
    md = (tmp_path / "zoo.md").read_text()
    assert "| test_* | test_* | test_resnet |" in md and "latency ratio" in md and "## Environment" in md


def test_all_families_command_classifies_each_module_and_resumes(tmp_path) -> None:
    # the representatives line is what a first run writes (computing it over all of timm takes minutes)
    progress = tmp_path / "progress.jsonl"
    reps = {"resnet": "test_resnet", "coat": "coat_tiny"}
    progress.write_text(json.dumps({"module": "__representatives__", "structure": "", "reps": reps}) + "\n")
    args = Namespace(
        all_families=True, resume=True, redo=None, progress=str(progress), models=None, sparsity=0.5,
        timeout=240, out=str(tmp_path), name="zoo",
    )  # fmt: skip
    assert zoo.main(args) == 0
    data = json.loads((tmp_path / "zoo_all.json").read_text())
    states = {(r["module"], r["structure"]): r["state"] for r in data["rows"]}
    # CoaT's parallel blocks do not trace: refused cleanly, the model untouched; weights work everywhere
    assert states == {
        ("resnet", "channel"): "works", ("resnet", "weight"): "works",
        ("coat", "channel"): "refused", ("coat", "weight"): "works",
    }  # fmt: skip
    refused = next(r for r in data["rows"] if r["state"] == "refused")
    assert refused["untouched"] and refused["error"] == "FamilyPruningError"
    assert data["summary"]["channel: works or refused"] == "2 / 2 (100.0%)"
    assert "| coat | coat_tiny |" in (tmp_path / "zoo_all.md").read_text()
    # resuming does no work twice: the same rows come back without running anything
    lines = len(progress.read_text().splitlines())
    assert zoo.main(args) == 0
    assert len(progress.read_text().splitlines()) == lines
    assert json.loads((tmp_path / "zoo_all.json").read_text())["rows"] == data["rows"]
