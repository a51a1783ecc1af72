"""``python -m benchmarks speed --throughput`` (benchmarks/_throughput.py) at a tiny budget: every ratio is measured
from real runs, including the 2-process one, and both result files are written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import _throughput, speed
from benchmarks.__main__ import main as benchmarks_main
from benchmarks._throughput import ThroughputBudget, run_throughput


@pytest.mark.slow
def test_throughput_rows_come_from_real_runs(tmp_path: Path) -> None:
    budget = ThroughputBudget(model="test_resnet", images=64, batch_size=32, repeats=1, attack_steps=1)
    rows = run_throughput(budget=budget, out_dir=tmp_path)
    by_measure = {(r["measure"], r["variant"].split(" ")[0]): r for r in rows}
    assert set(by_measure) == {("train", "plain-torch"), ("train", "robust_prune"), ("precision", "bf16"),
                               ("processes", "1"), ("processes", "2")}  # fmt: skip
    for row in rows:
        assert row["value"] > 0 and row["ratio"] > 0
    library, plain = by_measure["train", "robust_prune"], by_measure["train", "plain-torch"]
    assert library["ratio"] == pytest.approx(library["value"] / plain["value"])
    saved = json.loads((tmp_path / "throughput.json").read_text())
    assert len(saved["rows"]) == 5 and "| measure |" in (tmp_path / "throughput.md").read_text()


def test_the_throughput_flag_runs_the_throughput_suite_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list = []
    monkeypatch.setattr(_throughput, "run_throughput", lambda **kw: calls.append(("throughput", kw)) or [])
    monkeypatch.setattr(speed, "run_speed", lambda budget, **kw: calls.append(("speed", kw)))
    assert benchmarks_main(["speed", "--throughput", "--quick", "--out-dir", str(tmp_path), "--threads", "1"]) == 0
    assert calls == [("throughput", {"quick": True, "out_dir": str(tmp_path), "threads": 1})]
    calls.clear()
    assert benchmarks_main(["speed", "--quick", "--out-dir", str(tmp_path)]) == 0
    assert [name for name, _ in calls] == ["speed"]  # without the flag, the speed suite itself
