"""The MNIST family from its official IDX files, wherever they are (issue 22).

Small copies are made from the real scikit-learn digits at MNIST's 28 px, written in the official layout (four
IDX files, gzip-compressed or not); the whole Fashion-MNIST distribution is read where Debian's
``dataset-fashion-mnist`` package installed it (CI installs it; elsewhere those tests skip and say why).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from pathlib import Path

import pytest
import timm
import torch
from _idx_copy import digits_28 as _digits_28
from _idx_copy import official_copy as _official_copy

import robust_prune as rp
from robust_prune.api import prepare
from robust_prune.cli import main
from robust_prune.data.catalog import IDX_FILES, dataset_info, system_dataset_dir
from robust_prune.data.idx import write_idx
from robust_prune.data.loading import load_data
from robust_prune.errors import CorruptDatasetError, DatasetNotFoundError

TINY = {"epochs": 1, "finetune_epochs": 0, "train_steps": 1, "eval_steps": 2, "progress": False}
SYSTEM = system_dataset_dir("fashion-mnist")
needs_system_copy = pytest.mark.skipif(
    not all((SYSTEM / f"{name}.gz").is_file() for name in IDX_FILES.values()),
    reason=f"Fashion-MNIST's official files are not in {SYSTEM}: apt-get install dataset-fashion-mnist",
)


def test_the_four_gz_files_in_data_dir_load_at_28_px_with_their_hashes(tmp_path: Path) -> None:
    folder = _official_copy(tmp_path / "fmnist")
    bundle = load_data("fashion-mnist", data_dir=folder, channels=3)
    x, y = next(iter(bundle.test))
    assert x.shape[1:] == (3, 28, 28) and bundle.image_size == 28
    assert torch.equal(x[:, 0], x[:, 1]), "one grey channel repeated to the model's three"
    pixels, labels = _digits_28()
    assert torch.equal(y, torch.as_tensor(labels[300:364], dtype=torch.long))
    assert torch.allclose(x[0, 0], torch.as_tensor(pixels[300], dtype=torch.float32) / 255)
    recorded = {f["name"]: f["sha256"] for f in bundle.spec()["files"]}
    assert recorded == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def test_torchvision_layout_and_uncompressed_files_are_found_under_data_dir(tmp_path: Path) -> None:
    _official_copy(tmp_path / "root" / "FashionMNIST" / "raw", gz=False)
    bundle = load_data("fashion-mnist", data_dir=tmp_path / "root", channels=1)
    assert len(bundle.train.dataset) == 300 and len(bundle.test.dataset) == 100
    assert {f["name"] for f in bundle.spec()["files"]} == set(IDX_FILES.values())


def test_without_data_dir_the_system_folder_is_read(tmp_path: Path, monkeypatch) -> None:
    _official_copy(tmp_path / "datasets" / "mnist")
    monkeypatch.setenv("ROBUST_PRUNE_DATASETS_DIR", str(tmp_path / "datasets"))
    assert len(load_data("mnist", channels=1).test.dataset) == 100
    with pytest.raises(DatasetNotFoundError, match="apt-get install dataset-fashion-mnist"):
        load_data("fashion-mnist")  # no fashion-mnist/ there: says how to get it


def test_a_run_records_the_files_it_read_in_report_and_card(tmp_path: Path) -> None:
    folder = _official_copy(tmp_path / "fmnist")
    seen: list[tuple[int, ...]] = []
    torch.manual_seed(0)
    model = timm.create_model("test_resnet", num_classes=10)
    model.register_forward_pre_hook(lambda _m, args: seen.append(tuple(args[0].shape[-2:])))
    result = rp.robustify(model, "fashion-mnist", data_dir=folder, method="dense", eval_n=20, **TINY)
    assert set(seen) == {(28, 28)}
    out = tmp_path / "model"
    result.save_pretrained(out)
    sha = hashlib.sha256((folder / "t10k-images-idx3-ubyte.gz").read_bytes()).hexdigest()
    report_files = json.loads((out / "config.json").read_text())["robust_prune"]["data"]["files"]
    assert {"name": "t10k-images-idx3-ubyte.gz", "sha256": sha} in report_files
    card = (out / "README.md").read_text()
    assert "Fashion-MNIST" in card and f"`t10k-images-idx3-ubyte.gz`: `{sha}`" in card


def _damage(folder: Path, case: str) -> str:
    """Damage one official copy as ``case`` says; return the file name the error must name."""
    images = folder / "train-images-idx3-ubyte.gz"
    if case == "missing":
        (folder / "t10k-labels-idx1-ubyte.gz").unlink()
        return "t10k-labels-idx1-ubyte"
    raw = gzip.decompress(images.read_bytes())
    if case == "truncated gzip":
        images.write_bytes(images.read_bytes()[:-100])
    elif case == "wrong magic":
        images.write_bytes(gzip.compress(b"\x00\x00\x09\x03" + raw[4:]))
    elif case == "header sizes":
        images.write_bytes(gzip.compress(raw[:-28 * 28]))  # one image fewer than the header declares
    elif case == "counts differ":
        pixels, _ = _digits_28()
        write_idx(images, pixels[:299])
    return "train-images-idx3-ubyte.gz"


@pytest.mark.parametrize("case", ["missing", "truncated gzip", "wrong magic", "header sizes", "counts differ"])
def test_damaged_files_raise_a_typed_error_naming_the_file_and_nothing_is_written(tmp_path: Path, case: str) -> None:
    folder = _official_copy(tmp_path / "fmnist")
    name = _damage(folder, case)
    expected = DatasetNotFoundError if case == "missing" else CorruptDatasetError
    with pytest.raises(expected, match=name) as raised:
        load_data("fashion-mnist", data_dir=folder)
    assert "again" in str(raised.value) or "apt-get" in str(raised.value)  # says how to get a good copy
    run_dir = tmp_path / "run"
    with pytest.raises(expected):
        rp.robustify("test_resnet", "fashion-mnist", data_dir=folder, run_dir=run_dir, **TINY)
    out = tmp_path / "out"
    cli = ["robustify", "--model", "test_resnet", "--dataset", "fashion-mnist", "--data-dir", str(folder),
           "--epochs", "1", "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(cli) == 2
    assert not run_dir.exists() and not out.exists()


def test_prepare_reads_a_named_dataset_once(tmp_path: Path, monkeypatch) -> None:
    import robust_prune.data.loading as data

    folder = _official_copy(tmp_path / "fmnist")
    calls: list[object] = []
    real = data.load_idx_dataset
    monkeypatch.setattr(data, "load_idx_dataset", lambda *a: calls.append(a) or real(*a))
    _, bundle = prepare("test_resnet", "fashion-mnist", data_dir=folder)
    assert len(calls) == 1 and bundle.num_classes == dataset_info("fashion-mnist").num_classes


def test_train_subset_is_a_seeded_subset_of_the_training_split(tmp_path: Path) -> None:
    folder = _official_copy(tmp_path / "fmnist")
    a = load_data("fashion-mnist", data_dir=folder, train_subset=50, seed=1)
    b = load_data("fashion-mnist", data_dir=folder, train_subset=50, seed=1)
    c = load_data("fashion-mnist", data_dir=folder, train_subset=50, seed=2)
    assert a.spec()["train_size"] == 50 and a.train.dataset.indices == b.train.dataset.indices
    assert a.train.dataset.indices != c.train.dataset.indices and len(a.test.dataset) == 100


@needs_system_copy
def test_the_whole_official_fashion_mnist_has_6000_and_1000_images_per_class() -> None:
    bundle = load_data("fashion-mnist", channels=1, augment=False)
    for loader, per_class in ((bundle.train, 6000), (bundle.test, 1000)):
        split = loader.dataset.base
        counts = torch.bincount(split.labels, minlength=10)
        assert counts.tolist() == [per_class] * 10
        assert split.images.shape[1:] == (1, 28, 28) and split.images.dtype == torch.uint8
    assert len(bundle.spec()["files"]) == 4 and all(len(f["sha256"]) == 64 for f in bundle.spec()["files"])


@needs_system_copy
def test_cli_robustify_finds_the_system_copy_by_itself_and_trains_at_28_px(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    args = ["robustify", "--model", "test_resnet", "--dataset", "fashion-mnist", "--method", "dense", "--epochs", "1",
            "--train-subset", "128", "--train-steps", "1", "--n", "64", "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    data = json.loads((out / "config.json").read_text())["robust_prune"]["data"]
    assert (data["name"], data["image_size"], data["train_size"], data["test_size"]) == ("fashion-mnist", 28, 128,
                                                                                         10000)  # fmt: skip
    assert {f["name"] for f in data["files"]} == {f"{name}.gz" for name in IDX_FILES.values()}
