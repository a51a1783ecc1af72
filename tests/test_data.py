"""Data loading: pixel space, the embedded digits, and clear errors for bad data."""

import sys

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from robust_prune.data.loading import load_data
from robust_prune.errors import DatasetError, DatasetNotFoundError, MissingDependencyError


def test_digits_are_real_pixel_space_images_with_a_fixed_split():
    bundle = load_data("digits", image_size=32, channels=3, seed=0)
    assert (len(bundle.train.dataset), len(bundle.test.dataset)) == (1437, 360)
    x, y = next(iter(bundle.train))
    assert x.shape[1:] == (3, 32, 32)
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert bundle.num_classes == 10 and set(y.tolist()) <= set(range(10))
    again = load_data("digits", image_size=32, channels=3, seed=0)
    assert torch.equal(bundle.test.dataset.tensors[0], again.test.dataset.tensors[0])


def test_channels_and_size_follow_the_model():
    bundle = load_data(None, image_size=16, channels=1)
    x, _ = next(iter(bundle.test))
    assert x.shape[1:] == (1, 16, 16)


def test_unknown_dataset_name_lists_the_choices():
    with pytest.raises(DatasetError, match="Unknown dataset 'imagenet-42'.*digits"):
        load_data("imagenet-42")


def test_torchvision_dataset_without_local_files_says_how_to_get_them(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="download=True"):
        load_data("cifar10", data_dir=tmp_path)
    with pytest.raises(DatasetNotFoundError, match="data_dir=DIR"):
        load_data("mnist")


def test_missing_image_folder_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        load_data(str(tmp_path / "nowhere") + "/")


def test_image_folder_is_loaded_and_split(tmp_path):
    from PIL import Image

    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
        for i in range(5):
            colour = (40 * i, 100, 200 if label == "cat" else 0)
            Image.new("RGB", (12, 12), color=colour).save(tmp_path / label / f"{i}.png")
    bundle = load_data(str(tmp_path), image_size=16, channels=3, batch_size=4)
    assert bundle.num_classes == 2 and bundle.name == "imagefolder"
    x, _ = next(iter(bundle.train))
    assert x.shape[1:] == (3, 16, 16)
    assert len(bundle.train.dataset) + len(bundle.test.dataset) == 10


def _loaders(x, y):
    loader = DataLoader(TensorDataset(x, y), batch_size=4)
    return loader, loader


def test_loader_pairs_are_checked():
    ok = load_data(_loaders(torch.rand(8, 3, 16, 16), torch.arange(8) % 3), channels=3)
    assert (ok.num_classes, ok.image_size) == (3, 16)
    with pytest.raises(DatasetError, match="outside \\[0, 1\\]"):
        load_data(_loaders(torch.randn(8, 3, 16, 16) * 3, torch.zeros(8, dtype=torch.long)), channels=3)
    with pytest.raises(DatasetError, match="shape \\(N, C, H, W\\)"):
        load_data(_loaders(torch.rand(8, 16, 16), torch.zeros(8, dtype=torch.long)), channels=3)
    with pytest.raises(DatasetError, match="channels"):
        load_data(_loaders(torch.rand(8, 1, 16, 16), torch.zeros(8, dtype=torch.long)), channels=3)
    with pytest.raises(DatasetError, match="empty"):
        load_data(_loaders(torch.rand(0, 3, 16, 16), torch.zeros(0, dtype=torch.long)), channels=3)


# Here, not in test_hf_datasets.py (skipped without datasets): this test is about exactly that environment.
def test_without_datasets_installed_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets now fails, as when it is not installed
    with pytest.raises(MissingDependencyError, match=r'robust-prune\[hf\]'):
        load_data("hf:test-user/digits")
