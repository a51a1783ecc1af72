"""The benchmark suites that time real child processes: ``quickstart`` and ``sync_bn``, at tiny budgets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import timm

from benchmarks import quickstart, sync_bn

TINY_CLI = ["--model", "test_resnet", "--epochs", "1", "--finetune-epochs", "1", "--train-subset", "64",
            "--eval-n", "20", "--eval-steps", "2", "--no-progress"]  # fmt: skip
TINY_BUDGET = {"epochs": 2, "n_train": 64, "n_test": 20, "train_steps": 1, "eval_steps": 2}


@pytest.mark.slow
def test_quickstart_reports_what_the_child_run_saved(tmp_path: Path) -> None:
    row = quickstart.run_quickstart(TINY_CLI, workdir=tmp_path)
    saved = json.loads((tmp_path / "runs" / "test_resnet-digits-prune" / "report.json").read_text())
    assert row["clean"] == saved["clean_accuracy"] and row["pgd"] == saved["attacks"]["pgd"]["accuracy"]
    assert row["n"] == 20 and row["pgd_steps"] == 2
    dense = sum(p.numel() for p in timm.create_model("test_resnet", num_classes=10).parameters())
    assert row["params"] < dense and row["channel_ratio"] < 0.75  # the child really pruned
    assert 0 < row["cpu_s"] and 0 < row["wall_s"]
    assert 200 < row["peak_rss_mib"] < 16_000  # a Python that imported torch, in MiB (ru_maxrss is KiB on Linux)

    json_path, md_path = quickstart.write_quickstart(row, tmp_path / "results")
    written = json.loads(json_path.read_text())
    assert written["rows"] == [row]
    assert written["summary"]["wall seconds"] == row["wall_s"]
    shared = written["settings"]["machine_shared"]
    assert shared == (row["load_before"][0] >= 0.5)
    assert f"machine shared**: {'yes' if shared else 'no'}" in md_path.read_text()


def test_quickstart_names_the_child_that_failed(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="no-such-model"):
        quickstart.run_quickstart(["--model", "no-such-model"], workdir=tmp_path)


@pytest.mark.slow
def test_sync_bn_puts_two_processes_beside_one(tmp_path: Path) -> None:
    rows = sync_bn.comparison_rows(sync_bn.run_all([16], TINY_BUDGET, tmp_path))
    one, synced, unsynced = rows
    assert [(r["processes"], r["sync_bn"]) for r in rows] == [(1, "auto"), (2, "auto"), (2, "off")]
    # the default synchronises 2 x 8; one process has nothing to synchronise
    assert [r["synchronised"] for r in rows] == [False, True, False]
    for r in (synced, unsynced):  # one schedule, counted in global steps, on 1 and 2 processes
        assert r["lr"] == pytest.approx(one["lr"]) and len(r["lr"]) == 2 and r["lr"][0] > r["lr"][1]
    for r in rows:
        assert r["n"] == 20 and r["ci_low"] <= r["pgd"] <= r["ci_high"]
    assert one["in_one_process_interval"] is None
    for r in (synced, unsynced):
        assert r["in_one_process_interval"] == (one["ci_low"] <= r["pgd"] <= one["ci_high"])
    table = sync_bn._pivot(rows)
    assert f"| 16 (2 x 8) | {one['pgd']:.3f} ({one['ci_low']:.3f}-{one['ci_high']:.3f}) | {synced['pgd']:.3f}" in table
