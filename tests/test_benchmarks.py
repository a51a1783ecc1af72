"""The benchmark suites' machinery: the cell runner, resume, aggregation, the results files and a tiny real run."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import timm
import torch

from benchmarks import _deploy as speed_deploy
from benchmarks import paper, speed
from benchmarks.__main__ import build_parser
from benchmarks._cells import Cell, CellUnavailable, aggregate, previous_cells, run_cells
from benchmarks._common import set_threads
from benchmarks._paper_report import compare, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _cell(method: str, sparsity: float, seed: int, fn) -> Cell:
    return Cell("f1", method, "weight", sparsity, seed, fn)


def test_run_cells_records_every_outcome_and_writes_after_each() -> None:
    def unavailable():
        raise CellUnavailable("method 'lottery' is not installed")

    def broken():
        raise ValueError("boom")

    cells = [
        _cell("prune", 0.5, 0, lambda: {"clean": 0.9, "pgd": 0.5}),
        _cell("lottery-rewind", 0.5, 0, unavailable),
        _cell("prune", 0.7, 0, broken),
    ]
    updates: list[int] = []
    records = run_cells(cells, previous={}, progress=False, on_update=lambda rs: updates.append(len(rs)))
    assert [r["status"] for r in records] == ["ok", "unavailable", "error"]
    assert "not installed" in records[1]["reason"] and "boom" in records[2]["reason"]
    assert updates == [1, 2, 3]
    assert records[0]["key"] == "f1/prune/weight/0.5/seed0"


def test_resume_skips_finished_cells_of_the_same_budget_only() -> None:
    calls: list[str] = []
    cells = [_cell("prune", s, 0, lambda s=s: calls.append(str(s)) or {"pgd": s}) for s in (0.3, 0.5)]
    first = run_cells(cells, previous={}, progress=False)
    payload = {"settings": {"fingerprint": {"model": "m"}}, "cells": first}
    assert previous_cells(payload, {"model": "other"}) == {}  # a different budget is not reused
    previous = previous_cells(payload, {"model": "m"})
    assert set(previous) == {c.key for c in cells}
    calls.clear()
    again = run_cells(cells, previous=previous, progress=False)
    assert calls == [] and all(r["resumed"] for r in again)
    # an error is not "finished": it runs again
    payload["cells"][1]["status"] = "error"
    run_cells(cells, previous=previous_cells(payload, {"model": "m"}), progress=False)
    assert calls == ["0.5"]


def test_aggregate_spread_is_sd_over_seeds_or_the_ci_of_one_seed() -> None:
    recs = [
        {
            "finding": "f1",
            "method": "prune",
            "structure": "weight",
            "sparsity": 0.5,
            "seed": i,
            "status": "ok",
            "pgd": v,
            "pgd_ci": [v - 0.1, v + 0.1],
        }
        for i, v in enumerate((0.4, 0.6))
    ]
    recs.append(
        {
            "finding": "f1",
            "method": "dense",
            "structure": "none",
            "sparsity": 0.0,
            "seed": 0,
            "status": "ok",
            "pgd": 0.3,
            "pgd_ci": [0.2, 0.4],
        }
    )
    recs.append(
        {
            "finding": "f3",
            "method": "iwi",
            "structure": "channel",
            "sparsity": 0.5,
            "seed": 0,
            "status": "unavailable",
            "reason": "not installed",
        }
    )
    rows = {(r["method"]): r for r in aggregate(recs, ("pgd",))}
    assert rows["prune"]["pgd"] == pytest.approx(0.5) and rows["prune"]["pgd_spread"] == pytest.approx(0.1414, abs=1e-3)
    assert rows["prune"]["spread_kind"] == "sd over 2 seeds"
    assert rows["dense"]["pgd_spread"] == pytest.approx(0.1) and "1 seed" in rows["dense"]["spread_kind"]
    assert rows["iwi"]["status"] == "unavailable" and rows["iwi"]["seeds"] == 0
    assert compare(rows["prune"], rows["dense"])[0] == "higher"  # 0.2 > hypot(0.141, 0.1)
    assert compare(rows["dense"], rows["iwi"])[0] == "missing"


def test_report_files_are_written_and_parse(tmp_path: Path) -> None:
    recs = [
        {
            "key": f"f1/prune/weight/{s:g}/seed0",
            "finding": "f1",
            "method": m,
            "structure": st,
            "sparsity": s,
            "seed": 0,
            "status": "ok",
            "clean": 0.9,
            "pgd": 0.5 + s / 10,
            "pgd_ci": [0.4, 0.7],
            "macs": 10,
            "params": 5,
        }
        for m, st, s in (("dense", "none", 0.0), ("prune", "weight", 0.5), ("prune", "channel", 0.5))
    ]
    settings = {**paper.QUICK.fingerprint(), "fingerprint": paper.QUICK.fingerprint(), "seeds": 1}
    write_report(recs, aggregate(recs, paper.METRICS), settings=settings, out_dir=tmp_path, name="paper")
    payload = json.loads((tmp_path / "paper.json").read_text())
    assert {"environment", "settings", "rows", "cells"} <= set(payload)
    assert {"command", "git_commit", "torch", "timm", "threads", "cpu"} <= set(payload["environment"])
    md = (tmp_path / "paper.md").read_text()
    assert "## Findings" in md and "weight sparsity 0.5 vs dense" in md and "paper_sparsity.png" in md
    assert (tmp_path / "paper_sparsity.png").read_bytes()[:8] == PNG_MAGIC


def test_full_grid_has_every_cell_of_the_three_findings() -> None:
    runner = paper._Runner(paper.FULL, None, progress=False)
    cells = paper.build_cells(paper.FULL, 3, runner)
    keys = [c.key for c in cells]
    assert len(keys) == len(set(keys)) == 3 * (1 + 2 * 4 + 2 * 3 + 2)
    assert "f2/lottery-reinit/weight/0.9/seed2" in keys and "f3/iwi/channel/0.5/seed0" in keys


def test_cli_dispatches_the_suites() -> None:
    parser, modules = build_parser()
    assert {"paper", "speed"} <= set(modules)
    args = parser.parse_args(["paper", "--quick", "--resume", "--findings", "f1"])
    assert args.quick and args.resume and args.findings == "f1"


def test_threads_come_from_the_option_then_the_environment_then_one(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert set_threads(None) == 2 and torch.get_num_threads() == 2
        assert set_threads(1) == 1 and torch.get_num_threads() == 1
        monkeypatch.delenv("OMP_NUM_THREADS")
        assert set_threads(None) == 1
        with pytest.raises(ValueError, match="at least 1"):
            set_threads(0)
        args = build_parser()[0].parse_args(["paper", "--quick", "--threads", "2"])
        assert args.threads == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow
def test_tiny_paper_run_then_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    budget = dataclasses.replace(
        paper.QUICK,
        sparsities=(0.0, 0.5),
        structures=("channel",),
        findings=("f1",),
        pretrain_epochs=1,
        finetune_epochs=1,
        eval_n=16,
        aa_n=0,
    )
    records = paper.run_paper(budget, seeds=1, out_dir=tmp_path, progress=False)
    assert [r["status"] for r in records] == ["ok", "ok"], records
    pruned = records[1]
    assert pruned["macs"] < records[0]["macs"] and pruned["epochs_total"] == 2
    assert 0.0 <= pruned["pgd"] <= pruned["clean"] <= 1.0 and pruned["n_eval"] == 16
    payload = json.loads((tmp_path / "paper.json").read_text())
    assert len(payload["cells"]) == 2 and payload["rows"][0]["finding"] == "f1"
    assert (tmp_path / "paper_sparsity.png").read_bytes()[:8] == PNG_MAGIC

    import robust_prune as rp

    monkeypatch.setattr(rp, "robustify", lambda *a, **k: pytest.fail("a finished cell ran again"))
    again = paper.run_paper(budget, seeds=1, out_dir=tmp_path, resume=True, progress=False)
    assert all(r.get("resumed") for r in again)
    (tmp_path / "paper.md").unlink()
    paper.run_paper(budget, seeds=1, out_dir=tmp_path, report_only=True, progress=False)
    assert "2 of 2 ok" in (tmp_path / "paper.md").read_text()


def test_a_study_split_by_seed_merges_into_one_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    budget = dataclasses.replace(
        paper.QUICK, sparsities=(0.0,), findings=("f1",), pretrain_epochs=1, finetune_epochs=1, eval_n=16, aa_n=0
    )
    first = paper.run_paper(budget, seeds=1, out_dir=tmp_path / "a", progress=False)
    second = paper.run_paper(budget, seeds=2, first_seed=1, out_dir=tmp_path / "b", progress=False)
    assert [r["key"] for r in first + second] == ["f1/dense/none/0/seed0", "f1/dense/none/0/seed1"]

    import robust_prune as rp

    monkeypatch.setattr(rp, "robustify", lambda *a, **k: pytest.fail("a finished cell ran again"))
    merged = paper.run_paper(
        budget, seeds=2, out_dir=tmp_path / "a", report_only=True, resume_from=[tmp_path / "b" / "paper.json"],
        progress=False,
    )  # fmt: skip
    by_key = {r["key"]: r for r in merged}
    assert by_key["f1/dense/none/0/seed1"]["pgd"] == second[0]["pgd"] and len(by_key) == 2
    payload = json.loads((tmp_path / "a" / "paper.json").read_text())
    assert sorted(c["key"] for c in payload["cells"]) == sorted(by_key) and payload["settings"]["seeds"] == 2


@pytest.mark.slow
def test_speed_latency_and_training_rows(tmp_path: Path) -> None:
    budget = dataclasses.replace(speed.QUICK, train_images=64, latency_models=("test_resnet",), latency_repeats=3)
    rows = speed.run_speed(budget, only=["train", "latency"], out_dir=tmp_path)
    train = [r for r in rows if r["measure"] == "train"]
    assert [r["variant"] for r in train] == ["dense", "channel 0.5", "weight 0.5"]
    assert all(r["value"] > 0 for r in train)
    lat = next(r for r in rows if r["measure"] == "latency")
    assert 0 < lat["macs_ratio"] < 1 and lat["ratio"] > 0
    assert json.loads((tmp_path / "speed.json").read_text())["rows"]
    assert "| measure |" in (tmp_path / "speed.md").read_text()


def test_check_says_which_cells_a_rerun_reproduced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def table(pgd_weight: float) -> dict:
        def row(method: str, sparsity: float, pgd: float) -> dict:
            return {"finding": "f1", "method": method, "structure": "weight", "sparsity": sparsity, "status": "ok",
                    "clean": 0.9, "clean_spread": 0.02, "pgd": pgd, "pgd_spread": 0.05}  # fmt: skip

        return {"rows": [row("dense", 0.0, 0.50), row("prune", 0.5, pgd_weight)], "environment": {"torch": "x"}}

    committed, close, far = tmp_path / "committed.json", tmp_path / "close.json", tmp_path / "far.json"
    for path, pgd in ((committed, 0.40), (close, 0.44), (far, 0.30)):
        path.write_text(json.dumps(table(pgd)))
    parser, modules = build_parser()
    assert modules["check"].main(parser.parse_args(["check", str(close), str(committed)])) == 0
    assert "4 of 4 (cell, metric) pairs within" in capsys.readouterr().out
    assert modules["check"].main(parser.parse_args(["check", str(far), str(committed)])) == 1
    out = capsys.readouterr().out
    assert "3 of 4 (cell, metric) pairs within" in out
    assert "| f1/prune/weight/0.5 | pgd | 0.400 | 0.050 | 0.300 |" in out
    with pytest.raises(SystemExit, match="does not exist"):
        modules["check"].main(parser.parse_args(["check", str(tmp_path / "missing.json"), str(committed)]))


def test_autoattack_cells_and_points_are_chosen_on_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list = []
    monkeypatch.setattr(paper, "run_paper", lambda budget, **kw: seen.append(budget) or [])
    parser = build_parser()[0]
    assert paper.main(parser.parse_args(["paper", "--quick", "--autoattack-cells", "all", "--autoattack-n", "4"])) == 0
    assert paper.main(parser.parse_args(["paper", "--autoattack-cells", "f1/, f2/lottery"])) == 0
    assert paper.main(parser.parse_args(["paper"])) == 0
    everywhere, some, default = seen
    assert everywhere.aa_keys == () and everywhere.aa_n == 4 and everywhere.model == paper.QUICK.model
    assert some.aa_keys == ("f1/", "f2/lottery") and some.aa_n == paper.FULL.aa_n
    assert default == paper.FULL and everywhere.fingerprint() != paper.QUICK.fingerprint()


def test_layer_kinds_account_for_every_mac_of_a_cnn() -> None:
    from benchmarks._layer_kinds import kind_profile
    from robust_prune.measure import count_macs_params

    model = timm.create_model("mobilenetv3_small_050").eval()
    x = torch.rand(1, 3, 64, 64)
    kinds = kind_profile(model, x, repeats=1)
    assert {"conv 1x1", "conv depthwise", "conv kxk", "norm", "activation", "linear"} <= set(kinds)
    assert sum(k["macs"] for k in kinds.values()) == count_macs_params(model, x)[0]
    assert kinds["norm"]["macs"] == 0 and all(k["ms"] >= 0 for k in kinds.values())


@pytest.mark.slow
def test_deploy_suite_compares_both_prunings_eager_and_onnxruntime(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    budget = dataclasses.replace(speed_deploy.DEPLOY_QUICK, models=("test_resnet",), batches=(2,), repeats=(1,))
    rows = speed.run_deploy(budget, out_dir=tmp_path)
    assert [(r["method"], r["batch"], r["size"]) for r in rows] == [(m, 2, 160) for m in speed_deploy.METHODS]
    for row in rows:
        assert 0 < row["flops_ratio"] < 0.5 and 0 < row["channel_ratio"] < 1
        assert row["quotient"] == pytest.approx(row["latency_ratio"] / row["flops_ratio"])
        assert row["ort_quotient"] == pytest.approx(row["ort_latency_ratio"] / row["flops_ratio"])
    saved = json.loads((tmp_path / "speed_deploy.json").read_text())
    assert saved["rows"] == json.loads(json.dumps(rows)) and saved["wall_s"] > 0
    assert "| test_resnet | 160 | 2 | robust_prune |" in (tmp_path / "speed_deploy.md").read_text()
