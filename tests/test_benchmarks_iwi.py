"""``python -m benchmarks iwi``: a real run at the tests' budget, its JSON lines, resume, FLOPs and zero counts."""

from __future__ import annotations

import dataclasses
import json

import torch
from torch import nn

from benchmarks import iwi

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_tiny_study_writes_one_line_per_cell_both_framings_and_resumes(tmp_path):
    budget = dataclasses.replace(iwi.TINY, eval_n=16, aa_n=2)
    records = iwi.run_iwi(budget, out_dir=tmp_path, name="t")
    lines = [json.loads(x) for x in (tmp_path / "t.jsonl").read_text().splitlines()]
    keys = [c.key for c in iwi.build_cells(budget)]
    assert [r["key"] for r in lines[: len(keys)]] == keys and all(r["status"] == "ok" for r in lines)
    aa = [r for r in lines if r["autoattack_cell"]]
    assert len(aa) == 2 and {r["variant"] for r in aa} >= {"dense-a"}
    assert all(0.0 <= r["autoattack"] <= r["pgd_on_aa_points"] for r in aa)
    by = {r["variant"]: r for r in lines if not r["autoattack_cell"]}
    dense = by["dense-a"]
    # FLOPs follow the histories: the ticket trained one full-size epoch (no fine-tuning in this budget), the grown
    # model one more, so the ticket costs one dense epoch and the whole run two
    for v in ("iwi:prune/channel/zero-out", "iwi:prune/channel/net2net"):
        assert abs(by[v]["ticket_flops"] - dense["train_flops"]) < 1e-6 * dense["train_flops"]
        assert abs(by[v]["train_flops"] - 2 * dense["train_flops"]) < 1e-6 * dense["train_flops"]
    assert by["iwi:prune/channel/net2net"]["function_preserving"] is True
    assert by["iwi:prune/channel/zero-out"]["zero_fraction"] > by["iwi:prune/channel/net2net"]["zero_fraction"]
    md = (tmp_path / "t.md").read_text()
    assert "Framing (a)" in md and "Framing (b)" in md and "dense-b2" in md and "Exact zeros" in md
    assert (tmp_path / "t.png").read_bytes()[:8] == PNG_MAGIC
    payload = json.loads((tmp_path / "t.json").read_text())
    assert payload["environment"]["git_commit"] and payload["settings"]["wall_seconds"] > 0

    again = iwi.run_iwi(budget, out_dir=tmp_path, name="t")  # every cell is there: nothing runs
    assert len((tmp_path / "t.jsonl").read_text().splitlines()) == len(lines)
    assert sorted(r["key"] for r in again) == sorted(r["key"] for r in records)


def test_dead_taps_are_the_kernel_taps_that_only_read_padding():
    model = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.Conv2d(2, 2, 3, padding=1, stride=2))
    dead = iwi.dead_tap_mask(model, 1)  # a 1x1 image: only the centre tap of a padded 3x3 sees it
    expect = torch.ones(3, 3, dtype=torch.bool)
    expect[1, 1] = False
    assert all(torch.equal(m[0, 0], expect) for m in dead.values())
    assert not any(m.any() for m in iwi.dead_tap_mask(model, 4).values())
    with torch.no_grad():
        model[0].weight.zero_()
    stats = iwi.zero_stats(model, 1)
    n0, n1 = model[0].weight.numel(), model[1].weight.numel()
    assert abs(stats["zero_fraction"] - n0 / (n0 + n1)) < 1e-9
    assert abs(stats["dead_tap_fraction"] - 8 / 9) < 1e-9
    assert abs(stats["live_zero_fraction"] - (n0 / 9) / ((n0 + n1) / 9)) < 1e-9


def test_dead_taps_of_resnet10t_at_32px_get_no_gradient():
    import timm

    torch.manual_seed(0)
    model = timm.create_model("resnet10t", num_classes=10, zero_init_last=False)  # no zeroed BN: gradients flow
    (model(torch.rand(16, 3, 32, 32)) ** 2).sum().backward()
    dead = iwi.dead_tap_mask(model, 32)
    n_dead = sum(int(m.sum()) for m in dead.values())
    for name, mask in dead.items():
        assert not model.get_parameter(name).grad[mask].any()  # a dead tap never sees the image
    weights = [p for p in model.parameters() if p.dim() > 1]
    zero_grad = sum(int((p.grad == 0).sum()) for p in weights)
    total = sum(p.numel() for p in weights)
    assert 0.5 < n_dead / total and (zero_grad - n_dead) / total < 0.01  # (the rest: a few dead ReLU units)


def test_iwi_default_is_the_best_variant_of_the_committed_full_study():
    """Issue 17: method="iwi"'s defaults follow the measurement. Recomputed from the committed cells (not read from
    the report's summary), so a rerun of the study that changes the winner fails here until IWI_DEFAULT follows."""
    from benchmarks._common import RESULTS_DIR
    from benchmarks._iwi_report import best_variant, iwi_default
    from robust_prune.methods.iwi import IWI_DEFAULT

    payload = json.loads((RESULTS_DIR / "iwi.json").read_text(encoding="utf-8"))
    assert payload["settings"]["fingerprint"] == iwi.FULL.fingerprint(), "iwi.json was run with another budget"
    cells = [c for c in payload["cells"] if c["status"] == "ok"]
    assert len(cells) == len(iwi.build_cells(iwi.FULL)) + 2 and payload["settings"]["finished"]
    assert iwi_default(best_variant(cells, iwi.FULL), iwi.FULL) == IWI_DEFAULT
