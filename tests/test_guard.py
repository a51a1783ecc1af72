"""The pruning guard (robust_prune/pruning/guard.py): prune, robustify and grow succeed or refuse with a robust_prune
error, in bounded time, and a refused or failed prune leaves the caller's model exactly as it was."""

from __future__ import annotations

import threading
import time
import warnings

import pytest
import torch
from _hard_coded import HardCodedWidth
from torch import nn

import robust_prune as rp
from robust_prune import config as rp_config
from robust_prune.adapter_api import adapter_by_name
from robust_prune.errors import FamilyPruningError, PruningError
from robust_prune.models import create_model
from robust_prune.pruning import guard, unstructured
from robust_prune.training.runner import StageRunner

# The families issue 14 added adapters for, one quick member each (test_zoo checks channel pruning end to end).
NEW_FAMILIES = (
    "tiny_vit", "efficientvit_mit", "efficientvit_msra", "gcvit", "convit", "pit", "pvt_v2", "xcit", "crossvit",
    "davit", "inception_next", "coat", "csatv2", "fasternet", "efficientvim",
)  # fmt: skip
NEW_EXAMPLES = [ex for name in NEW_FAMILIES for ex in adapter_by_name(name).examples if ex.quick]


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_same(before: dict[str, torch.Tensor], model: nn.Module) -> None:
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(before[k].shape == after[k].shape and torch.equal(before[k], after[k]) for k in before)


def test_a_graph_that_does_not_trace_is_refused_with_the_family_and_the_model_untouched() -> None:
    # CoaT's parallel blocks make torch-pruning raise a TypeError while it builds the dependency graph
    model = create_model("coat_tiny", num_classes=10, img_size=32).eval()
    before = _state(model)
    with pytest.raises(FamilyPruningError) as info:
        rp.prune(model, 0.5)
    err = info.value
    assert err.family == "coat" and err.step == "trace the dependency graph" and "TypeError" in err.detail
    assert "structure='weight'" in str(err) and "adapter" in str(err) and "left unchanged" in str(err)
    _assert_same(before, model)
    rp.prune(model, 0.5, structure="weight")  # the advice holds


def test_a_failure_found_after_pruning_leaves_the_model_byte_identical() -> None:
    model = HardCodedWidth().eval()
    conv = model.conv
    before = _state(model)
    with warnings.catch_warnings(), pytest.raises(FamilyPruningError, match="no longer runs") as info:
        warnings.simplefilter("ignore")
        rp.prune(model, 0.5)
    assert info.value.step == "check the pruned model" and info.value.family == "HardCodedWidth"
    _assert_same(before, model)
    assert model.conv is conv and conv.out_channels == 16
    assert model(torch.rand(1, 3, 8, 8)).shape == (1, 10)


def test_success_keeps_the_callers_module_objects() -> None:
    model = create_model("test_resnet", num_classes=10).eval()
    fc, first = model.fc, model.conv1
    width = fc.in_features
    rp.prune(model, 0.5)
    assert model.fc is fc and model.conv1 is first  # the caller's references see the pruned layers
    assert fc.in_features < width and fc.weight.shape[1] == fc.in_features
    assert model(torch.rand(1, 3, 32, 32)).shape == (1, 10)


class _Sleepy(nn.Module):
    """Runs normally without gradients but stalls while torch-pruning traces it (tracing enables grad)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            time.sleep(30)
        return self.fc(self.conv(x).mean((2, 3)))


def test_a_hanging_trace_is_bounded(monkeypatch) -> None:
    monkeypatch.setattr(rp_config, "PRUNE_TIME_LIMIT_S", 1.0)
    model = _Sleepy().eval()
    before = _state(model)
    t0 = time.perf_counter()
    with warnings.catch_warnings(), pytest.raises(FamilyPruningError, match="did not finish within 1 s") as info:
        warnings.simplefilter("ignore")
        rp.prune(model, 0.5)
    assert time.perf_counter() - t0 < 10
    assert info.value.step == "trace the dependency graph"
    _assert_same(before, model)


class _Spinning(_Sleepy):
    """Stalls in Python code while traced, as torch-pruning's graph building does on the families that hang (capped
    at 60 s so that a broken bound fails the test instead of hanging it)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cap = time.monotonic() + 60
        while torch.is_grad_enabled() and time.monotonic() < cap:
            pass
        return self.fc(self.conv(x).mean((2, 3)))


def _prune_in_a_thread(model: nn.Module) -> BaseException | None:
    """``rp.prune(model, 0.5)`` in a thread that is not the main one; what it raised."""
    raised: list[BaseException | None] = [None]

    def work() -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                rp.prune(model, 0.5)
        except BaseException as exc:  # handed to the test's thread
            raised[0] = exc

    worker = threading.Thread(target=work)
    worker.start()
    worker.join(120)
    assert not worker.is_alive()
    return raised[0]


def test_a_hanging_trace_is_bounded_outside_the_main_thread(monkeypatch) -> None:
    monkeypatch.setattr(rp_config, "PRUNE_TIME_LIMIT_S", 1.0)
    model = _Spinning().eval()
    before = _state(model)
    t0 = time.perf_counter()
    error = _prune_in_a_thread(model)
    assert time.perf_counter() - t0 < 30  # the cap is 60 s per traced forward
    assert isinstance(error, FamilyPruningError) and "did not finish within 1 s" in str(error)
    assert error.step == "trace the dependency graph"
    _assert_same(before, model)


def test_without_a_way_to_interrupt_a_thread_the_bound_warns_that_it_is_absent(monkeypatch) -> None:
    monkeypatch.setattr(guard, "_raise_in_thread", None)
    model = create_model("test_resnet", num_classes=10).eval()
    width = model.fc.in_features
    with pytest.warns(RuntimeWarning, match="not applied.*main thread"):
        assert _prune_in_a_thread(model) is None
    assert model.fc.in_features < width  # pruned, unbounded


def test_a_foreign_crash_while_masking_weights_is_typed_and_undone(monkeypatch) -> None:
    model = create_model("test_resnet", num_classes=10).eval()
    before = _state(model)
    real = unstructured.apply_masks

    def half_then_crash(inner, masks):  # masks some layers, then fails as foreign code would
        real(inner, dict(list(masks.items())[:2]))
        raise IndexError("index 320 is out of bounds for dimension 0 with size 320")

    monkeypatch.setattr(unstructured, "apply_masks", half_then_crash)
    with pytest.raises(FamilyPruningError) as info:
        rp.prune(model, 0.5, structure="weight")
    assert info.value.step == "mask the weights" and "IndexError" in info.value.detail
    assert "structure='weight' (masks" not in str(info.value)  # no advice to do what just failed
    _assert_same(before, model)
    assert not any(hasattr(m, "weight_mask") or m._forward_pre_hooks for m in model.modules())


def test_a_masked_model_can_be_pruned_again() -> None:
    # a masked layer's weight is a computed tensor, which plain deepcopy refuses; the guard copies it anyway
    model = create_model("test_resnet", num_classes=10).eval()
    rp.prune(model, 0.5, structure="weight")
    _, record = rp.prune(model, 0.75, structure="weight")
    assert record.stats["sparsity"] == pytest.approx(0.75, abs=1e-3)


def test_grow_turns_a_foreign_failure_into_a_typed_error(monkeypatch) -> None:
    from robust_prune.inheritance import growth as inheritance

    ticket = rp.prune(create_model("test_resnet", num_classes=10).eval(), 0.5)

    def broken(*args, **kwargs):
        raise ZeroDivisionError("integer division or modulo by zero")

    monkeypatch.setattr(inheritance, "_grow_channels", broken)
    with pytest.raises(FamilyPruningError) as info:
        rp.grow(ticket)
    assert info.value.step == "grow the ticket back to full width" and "ZeroDivisionError" in info.value.detail


def test_robustify_refuses_an_unprunable_family_before_training() -> None:
    model = create_model("coat_tiny", num_classes=10, img_size=32)
    before = _state(model)
    t0 = time.perf_counter()
    with pytest.raises(FamilyPruningError, match="coat"):
        rp.robustify(model, sparsity=0.5, epochs=50, progress=False)
    assert time.perf_counter() - t0 < 60  # refused by a dry run, not after 50 epochs
    _assert_same(before, model)


def test_robustify_dry_runs_the_runs_own_pruning_before_training(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    # test_vit prunes at the default options (each layer loses 60% of its heads, at least one kept), but a global
    # ranking takes every head of some layer; the dry run with the default options passed, and the run failed
    # after training
    def vit() -> nn.Module:
        return create_model("test_vit", num_classes=10, img_size=32)

    assert rp.prune(vit(), 0.6).record.structure == "channel"

    def train(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(StageRunner, "train", train)
    with pytest.raises(FamilyPruningError, match="vision_transformer") as info:
        rp.robustify(vit(), sparsity=0.6, scope="global", epochs=50, run_dir=tmp_path / "run", progress=False)
    assert "after_prune" in str(info.value)
    assert not [p for p in (tmp_path / "run").rglob("*") if p.is_file()]  # no checkpoint, no epoch written
    # the run's own options, where they prune, are not refused: whole heads by a global ranking cannot, the same
    # dimensions of every head can
    with pytest.raises(AssertionError, match="training started"):
        rp.robustify(vit(), sparsity=0.6, scope="global", attention="head_dim", epochs=50, progress=False)


def test_robustify_is_not_refused_for_a_pruning_it_would_not_do(monkeypatch: pytest.MonkeyPatch) -> None:
    # No family of the zoo fails at the default options and prunes at others, so a default that fails is made here:
    # the default criterion cannot score this model's channels. A run that asks for another criterion is not refused.
    from robust_prune.pruning import importance

    monkeypatch.setattr(importance.registry, "_REGISTRY", dict(importance.registry._REGISTRY))

    @importance.register_importance
    class Magnitude(importance.Importance):
        name = "magnitude"

        def channel_scorer(self):
            raise ZeroDivisionError("this family's channels cannot be scored by magnitude")

    def train(*args, **kwargs):
        raise AssertionError("training started")

    monkeypatch.setattr(StageRunner, "train", train)
    with pytest.raises(FamilyPruningError, match="cannot be scored by magnitude"):  # the default options are refused
        rp.robustify("test_resnet", sparsity=0.5, epochs=50, progress=False)
    with pytest.raises(AssertionError, match="training started"):  # the run's own options are not
        rp.robustify("test_resnet", sparsity=0.5, importance="random", epochs=50, progress=False)


@pytest.mark.parametrize("importance", ["random", "taylor"])
def test_robustifys_dry_run_leaves_the_training_as_it_was(monkeypatch: pytest.MonkeyPatch, importance: str) -> None:
    from robust_prune import api

    def run() -> dict[str, torch.Tensor]:
        # random importance reads the global RNG after the dry run; taylor's dry run attacks training batches
        result = rp.robustify("test_resnet", epochs=1, finetune_epochs=1, train_steps=1, eval_n=20, eval_steps=2,
                              seed=3, importance=importance, progress=False)  # fmt: skip
        return {k: v.clone() for k, v in result.model.state_dict().items()}

    checked = run()
    monkeypatch.setattr(api, "_refuse_unprunable", lambda *args, **kwargs: None)
    unchecked = run()
    assert checked.keys() == unchecked.keys()
    assert all(torch.equal(checked[k], unchecked[k]) for k in checked)  # the check drew nothing from the run's RNG


def test_family_errors_are_pruning_errors() -> None:
    err = FamilyPruningError("gcvit", "trace the dependency graph", "ZeroDivisionError: division by zero")
    assert isinstance(err, PruningError) and "gcvit" in str(err) and "open an issue" in str(err)


@pytest.mark.parametrize("example", NEW_EXAMPLES, ids=[ex.id for ex in NEW_EXAMPLES])
def test_new_families_prune_their_weights(example) -> None:
    model = create_model(example.model, num_classes=10, **example.kwargs).eval()
    adapter = rp.get_adapter(model)
    size = adapter.fixed_input_size(model) or (example.image_size, example.image_size)
    x = torch.rand(1, adapter.in_chans(model), *size)
    _, record = rp.prune(model, 0.5, structure="weight", image_size=example.image_size)
    assert record.adapter == example.family
    assert record.stats["sparsity"] == pytest.approx(0.5, abs=1e-3)
    with torch.no_grad():
        assert torch.isfinite(model(x)).all()
