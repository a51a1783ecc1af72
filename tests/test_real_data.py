"""Data as users have it: an image folder at its own resolution, a named torchvision dataset read from disk by
``robust-prune evaluate DIR --data-dir``, augmentation of the training split, and bad data refused.

Downloads are impossible here, so the named dataset is MNIST in torchvision's own on-disk format (idx files under
``ROOT/MNIST/raw``), filled with the real scikit-learn digits at MNIST's 28 px.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset

import robust_prune as rp
from robust_prune import AttackConfig, TrainConfig
from robust_prune.api import prepare
from robust_prune.cli import main
from robust_prune.data.loading import first_n, load_data
from robust_prune.data.transforms import image_transform
from robust_prune.errors import (
    ConfigError,
    DatasetError,
    DatasetNotFoundError,
    NonFiniteImagesError,
    TrainingDivergedError,
)
from robust_prune.training.adversarial import train

TINY = {"epochs": 1, "finetune_epochs": 0, "train_steps": 1, "eval_steps": 2, "progress": False}


def _image_folder(root: Path, size: int) -> Path:
    """Two classes of real-looking 64-px images (shaded disks and stripes with noise), split into train and test."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for split, count in (("train", 24), ("test", 8)):
        for label in ("disks", "stripes"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(count):
                cx, cy = rng.uniform(0.3, 0.7, 2)
                shape = ((xx - cx) ** 2 + (yy - cy) ** 2 < 0.08) if label == "disks" else (np.sin(20 * xx) > 0)
                pixels = np.clip(shape[..., None] * rng.uniform(0.5, 1, 3) + rng.normal(0, 0.1, (size, size, 3)), 0, 1)
                Image.fromarray((pixels * 255).astype(np.uint8)).save(folder / f"{i}.png")
    return root


def test_an_image_folder_trains_and_is_recorded_at_its_resolution(tmp_path: Path, capsys) -> None:
    folder = _image_folder(tmp_path / "shapes", 64)
    seen: list[tuple[int, ...]] = []
    torch.manual_seed(0)
    model = timm.create_model("test_resnet", num_classes=2)
    model.register_forward_pre_hook(lambda _m, args: seen.append(tuple(args[0].shape[-2:])))
    result = rp.robustify(model, str(folder), method="dense", image_size=64, batch_size=16, **TINY)
    assert set(seen) == {(64, 64)}, f"the model saw {set(seen)}"
    assert result.data["image_size"] == 64 and result.data["augment"] is True
    assert result.record.input_size == [3, 64, 64]  # the size it was trained at (32 before issue 25)
    out = tmp_path / "model"
    result.save_pretrained(out)
    loaded = rp.from_pretrained(out)
    assert loaded.record.input_size == [3, 64, 64]
    saved = loaded.saved_config["data"]
    assert (saved["name"], saved["image_size"], saved["source"]) == ("imagefolder", 64, str(folder))

    # `evaluate DIR` reads the recorded folder at the recorded size: the same points, the same MACs as at training
    assert main(["evaluate", str(out), "--attacks", "", "--no-progress", "--no-sanity"]) == 0
    printed = capsys.readouterr().out
    assert f"| MACs | {result.report.macs:,} |" in printed, printed  # MACs grow with the resolution
    assert f"| clean accuracy | {result.report.clean_accuracy:.2%} |" in printed and "| 16 |" in printed
    report = rp.evaluate(rp.from_pretrained(out), str(folder), attacks=(), image_size=64, progress=False, sanity=False)
    assert report.macs == result.report.macs and report.n == result.report.n == 16


def test_an_image_folder_defaults_to_the_model_input_size(tmp_path: Path) -> None:
    folder = _image_folder(tmp_path / "shapes", 64)
    model = timm.create_model("test_resnet", num_classes=2)
    expected = model.pretrained_cfg["input_size"][-1]
    _, bundle = prepare(model, str(folder))
    assert bundle.image_size == expected != 64
    assert next(iter(bundle.test))[0].shape[-2:] == (expected, expected)


def _idx(path: Path, array: np.ndarray) -> None:
    kind = 0x08  # unsigned byte
    header = struct.pack(">HBB", 0, kind, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _mnist_on_disk(root: Path) -> Path:
    """torchvision's MNIST files (``ROOT/MNIST/raw/*-ubyte``) holding the real sklearn digits at 28 px."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16
    images = torch.nn.functional.interpolate(images, size=(28, 28), mode="bilinear", align_corners=False)
    pixels, labels = (images[:, 0] * 255).round().numpy(), digits.target
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    _idx(raw / "train-images-idx3-ubyte", pixels[:400])
    _idx(raw / "train-labels-idx1-ubyte", labels[:400])
    _idx(raw / "t10k-images-idx3-ubyte", pixels[400:500])
    _idx(raw / "t10k-labels-idx1-ubyte", labels[400:500])
    return root


def test_evaluate_dir_reads_a_named_dataset_from_data_dir(tmp_path: Path, capsys) -> None:
    root = _mnist_on_disk(tmp_path / "torchvision")
    bundle = load_data("mnist", data_dir=root, channels=1)
    assert bundle.image_size == 28 and len(bundle.test.dataset) == 100  # MNIST's native resolution by default
    torch.manual_seed(0)
    model = timm.create_model("test_resnet", num_classes=10)
    result = rp.robustify(model, "mnist", data_dir=root, method="dense", eval_n=40, **TINY)
    out = tmp_path / "model"
    result.save_pretrained(out)
    assert result.data["name"] == "mnist" and result.data["image_size"] == 28

    direct = rp.evaluate(rp.from_pretrained(out), "mnist", data_dir=root, attacks=(), n=40, progress=False)
    assert direct.clean_accuracy == result.report.clean_accuracy
    for extra in (["--data-dir", str(root)], []):  # the flag, and the data spec recorded in the saved model
        args = ["evaluate", str(out), "--attacks", "", "--n", "40", "--no-progress", "--no-sanity", *extra]
        assert main(args) == 0
        printed = capsys.readouterr().out
        assert f"| clean accuracy | {direct.clean_accuracy:.2%} |" in printed and "| 40 |" in printed, printed
        assert f"| MACs | {direct.macs:,} |" in printed

    # a digits-trained model evaluated on the named dataset: --dataset and --data-dir
    missing = main(["evaluate", str(out), "--dataset", "mnist", "--data-dir", str(tmp_path / "nowhere"), "--n", "8"])
    assert missing == 2 and "mnist" in capsys.readouterr().err
    with pytest.raises(DatasetNotFoundError):
        rp.evaluate(rp.from_pretrained(out), "mnist", n=8)  # no data_dir: says where to put the files


def test_training_split_is_augmented_and_the_test_split_is_not() -> None:
    torch.manual_seed(0)
    image = torch.rand(3, 32, 32)
    train = image_transform("cifar10", 32, channels=3, train=True, augment=True)
    test = image_transform("cifar10", 32, channels=3, train=False, augment=True)
    crops = {tuple(train(image).flatten()[:50].tolist()) for _ in range(10)}
    assert len(crops) > 1 and all(train(image).shape == (3, 32, 32) for _ in range(3))
    assert torch.equal(test(image), image)
    digits = image_transform("digits", 32, channels=3, train=True, augment=True)
    assert torch.equal(digits(image), image)  # a flipped digit is another digit: none for digits/MNIST
    off = image_transform("cifar10", 32, channels=3, train=True, augment=False)
    assert torch.equal(off(image), image)


def _nan_loaders() -> tuple[DataLoader, DataLoader]:
    x = torch.rand(16, 3, 32, 32)
    x[3, 0, 5, 5] = float("nan")
    y = torch.arange(16) % 4
    return DataLoader(TensorDataset(x, y), batch_size=8), DataLoader(TensorDataset(x, y), batch_size=8)


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"image_size": 4}, ConfigError, "at least 8"),
        ({"image_size": 32.0}, ConfigError, "integer"),
        ({"mixed_precision": "fp8"}, ConfigError, "bf16"),
        ({"num_workers": -1}, ConfigError, "num_workers"),
    ],
)
def test_bad_data_options_are_refused_and_nothing_is_written(kwargs, error, words, tmp_path: Path) -> None:
    with pytest.raises(error, match=words):
        rp.robustify("test_resnet", run_dir=tmp_path / "run", **TINY, **kwargs)
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 runs where CUDA is present")
def test_fp16_without_cuda_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CUDA"):
        rp.robustify("test_resnet", mixed_precision="fp16", run_dir=tmp_path / "run", **TINY)
    assert not (tmp_path / "run").exists()


def test_nan_images_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    with pytest.raises(NonFiniteImagesError, match="NaN"):
        rp.robustify(timm.create_model("test_resnet", num_classes=4), _nan_loaders(), eps=0.1,
                     run_dir=tmp_path / "run", **TINY)  # fmt: skip
    assert not (tmp_path / "run").exists()
    with pytest.raises(NonFiniteImagesError):
        rp.evaluate(timm.create_model("test_resnet", num_classes=4), _nan_loaders()[1], eps=0.1, progress=False)


def _loaders_with_a_bad_second_batch(value: float) -> tuple[DataLoader, DataLoader]:
    """Digits whose first batch of 8 is clean and whose second holds one pixel equal to ``value``."""
    x, y = first_n(load_data("digits", batch_size=32).train, 16)
    x[11, 1, 4, 4] = value
    return DataLoader(TensorDataset(x, y % 4), batch_size=8), DataLoader(TensorDataset(x, y % 4), batch_size=8)


@pytest.mark.parametrize(
    ("value", "error", "words"),
    [(float("nan"), NonFiniteImagesError, "NaN"), (float("-inf"), NonFiniteImagesError, "NaN or infinite"),
     (1.5, DatasetError, r"outside \[0, 1\]")],
)  # fmt: skip
def test_every_batch_of_a_user_loader_is_checked(value: float, error: type, words: str) -> None:
    model = timm.create_model("test_resnet", num_classes=4)
    with pytest.raises(error, match=f"Batch 2 .*{words}") as info:
        rp.robustify(model, _loaders_with_a_bad_second_batch(value), eps=0.1, **TINY)
    assert not isinstance(info.value, TrainingDivergedError)  # the images are blamed, not the learning rate
    with pytest.raises(error, match=f"Batch 2 of the evaluation data.*{words}"):
        rp.evaluate(model, _loaders_with_a_bad_second_batch(value)[1], eps=0.1, progress=False)


def test_a_batch_with_other_channels_is_named() -> None:
    x, y = first_n(load_data("digits", batch_size=32).train, 16)
    batches = [(x[:8], y[:8] % 4), (x[8:, :1], y[8:] % 4)]  # the second batch is grey
    model = timm.create_model("test_resnet", num_classes=4)
    config = TrainConfig(epochs=1, objective="clean", attack=AttackConfig(eps=0.0))
    with pytest.raises(DatasetError, match="Batch 2 of the training images has 1 channels; the model takes 3"):
        train(model, DataLoader(batches, batch_size=None), config=config, progress=False)


def test_workers_read_an_augmented_image_folder(tmp_path: Path) -> None:
    folder = _image_folder(tmp_path / "shapes", 64)
    bundle = load_data(str(folder), image_size=48, num_workers=2, batch_size=8)
    x, y = next(iter(bundle.train))  # the transforms are pickled into the worker processes
    assert x.shape == (8, 3, 48, 48) and bundle.train.num_workers == 2 and bundle.spec()["augment"] is True
    assert bool(torch.isfinite(x).all()) and float(x.min()) >= 0.0 and float(x.max()) <= 1.0
