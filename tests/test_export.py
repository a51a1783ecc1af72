"""ONNX export: what onnxruntime computes from the file is what torch computes, for dense, channel-pruned,
head-pruned and grown models, through the path users take (a saved folder -> ``robust-prune export``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

import robust_prune as rp
from robust_prune.cli import main
from robust_prune.errors import MissingDependencyError
from robust_prune.models import NormalizedModel, create_model

# Only the tests that run an export need the extra: the missing-extra test must run exactly where it is missing.
needs_export_extra = pytest.mark.skipif(
    any(importlib.util.find_spec(name) is None for name in ("onnx", "onnxruntime")),
    reason="needs the export extra (pip install 'robust-prune[export]')",
)


def _ort_logits(path: Path, x: torch.Tensor) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"pixels": x.numpy()})[0]


def _assert_matches(model: torch.nn.Module, path: Path, size: int) -> None:
    torch.manual_seed(1)
    x = torch.rand(3, 3, size, size)  # batch 3: the file's batch dimension is dynamic (traced at 1)
    with torch.no_grad():
        expected = model.eval()(x).numpy()
    np.testing.assert_allclose(_ort_logits(path, x), expected, atol=1e-4, rtol=0)


def _pruned(name: str, size: int, **kwargs: object) -> NormalizedModel:
    torch.manual_seed(0)
    model = NormalizedModel.from_timm(create_model(name, num_classes=10, **kwargs))
    rp.prune(model, 0.5, image_size=size)
    return model.eval()


@needs_export_extra
def test_channel_pruned_resnet_exported_from_a_saved_folder_runs_in_onnxruntime(tmp_path: Path) -> None:
    model = _pruned("resnet18", 32)
    assert model.model.layer1[0].conv1.out_channels == 32  # half of 64 (a multiple of 8 already)
    rp.save_pretrained(model, tmp_path / "folder")
    out = tmp_path / "resnet18.onnx"
    assert main(["export", str(tmp_path / "folder"), "--onnx", str(out)]) == 0
    _assert_matches(rp.from_pretrained(tmp_path / "folder"), out, 32)
    _assert_matches(model, out, 32)


@needs_export_extra
def test_head_pruned_vit_exports_with_its_heads_removed(tmp_path: Path) -> None:
    model = _pruned("vit_small_patch16_224", 32, img_size=32, depth=2)
    attn = model.model.blocks[0].attn
    assert (attn.num_heads, attn.head_dim, attn.fused_attn) == (3, 64, True)  # 3 of 6 heads went whole
    path = rp.export_onnx(model, tmp_path / "vit.onnx")  # the fixed 32 px comes from the patch embedding
    _assert_matches(model, path, 32)


@needs_export_extra
def test_dense_and_grown_models_export(tmp_path: Path) -> None:
    dense = NormalizedModel.from_timm(create_model("resnet10t", num_classes=10)).eval()
    _assert_matches(dense, rp.export_onnx(dense, tmp_path / "dense.onnx", image_size=48), 48)
    grown = rp.grow(_pruned("resnet10t", 32)).model
    assert grown.model.layer1[0].conv1.out_channels == dense.model.layer1[0].conv1.out_channels
    _assert_matches(grown, rp.export_onnx(grown, tmp_path / "grown.onnx"), 32)


def test_missing_onnx_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a))
    with pytest.raises(MissingDependencyError, match=r'pip install "robust-prune\[export\]"') as info:
        rp.export_onnx(create_model("test_resnet"), tmp_path / "x.onnx")
    assert info.value.packages == ["onnx"] and isinstance(info.value, ImportError)
    assert not (tmp_path / "x.onnx").exists()
