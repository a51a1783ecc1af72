"""Hugging Face ``datasets`` in: a DatasetDict of real images (scikit-learn's digits), a (train, test) pair of arrays,
``hf:REPO`` through the local Hub server, and a typed error for each kind of bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import robust_prune as rp
from robust_prune.data.loading import load_data
from robust_prune.errors import DatasetError

datasets = pytest.importorskip("datasets")
from PIL import Image  # noqa: E402

N_TRAIN, N_TEST, SIDE = 96, 32, 16


def _digits(side: int = SIDE) -> tuple[list[Image.Image], list[int]]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    pictures = [
        Image.fromarray((image * 255 / 16).astype(np.uint8)).resize((side, side), Image.BILINEAR)
        for image in digits.images[: N_TRAIN + N_TEST]
    ]
    return pictures, [int(t) for t in digits.target[: N_TRAIN + N_TEST]]


def _split(pictures: list, labels: list[int], image: str = "image", label: str = "label") -> datasets.Dataset:
    features = datasets.Features(
        {image: datasets.Image(), label: datasets.ClassLabel(names=[str(d) for d in range(10)])}
    )
    return datasets.Dataset.from_dict({image: pictures, label: labels}, features=features)


@pytest.fixture(scope="module")
def digits_dict() -> datasets.DatasetDict:
    """Real 8x8 digits, upsampled to 16x16 PIL images, with a ClassLabel column: 96 train, 32 test."""
    pictures, labels = _digits()
    return datasets.DatasetDict(
        train=_split(pictures[:N_TRAIN], labels[:N_TRAIN]), test=_split(pictures[N_TRAIN:], labels[N_TRAIN:])
    )


def test_a_dataset_dict_reads_as_the_images_pixels_at_their_own_size(digits_dict):
    bundle = load_data(digits_dict, channels=3, batch_size=8, augment=False)
    assert (bundle.image_size, bundle.num_classes, bundle.name) == (SIDE, 10, "datasets")
    x, y = next(iter(bundle.test))
    first = torch.from_numpy(np.array(digits_dict["test"][0]["image"])).float() / 255.0
    assert x.shape == (8, 3, SIDE, SIDE)
    assert torch.equal(x[0], first.expand(3, -1, -1))  # the PIL pixels / 255, grey repeated into 3 channels
    assert y.tolist() == digits_dict["test"]["label"][:8]
    spec = bundle.spec()["hf"]
    assert spec["fingerprints"] == {name: digits_dict[name]._fingerprint for name in ("train", "test")}
    assert (spec["image_column"], spec["label_column"], spec["splits"]) == (
        "image", "label", {"train": "train", "test": "test"})  # fmt: skip


@pytest.mark.filterwarnings("ignore:GRADIENT-MASKING")  # one epoch of training: the checks may fail, as elsewhere
def test_robustify_trains_on_a_dataset_dict_and_records_it(digits_dict, tmp_path):
    result = rp.robustify("test_resnet", digits_dict, method="dense", epochs=1, train_steps=1, eval_steps=2,
                          eval_n=16, batch_size=32, progress=False)  # fmt: skip
    assert result.data["image_size"] == SIDE and result.config.data == "datasets"
    assert result.report.meta["eps"] == pytest.approx(8 / 255)  # no budget given: Hugging Face data's default
    assert 0.0 <= result.report.robust_accuracy["pgd"] <= result.report.clean_accuracy
    again = rp.evaluate(result.model, digits_dict, attacks=(), n=16, latency=False, progress=False, sanity=False)
    assert again.clean_accuracy == result.report.clean_accuracy  # evaluate() reads the same test images
    folder = result.save_pretrained(tmp_path / "run")
    saved = json.loads((folder / "config.json").read_text())["robust_prune"]["data"]["hf"]
    assert saved["fingerprints"]["train"] == digits_dict["train"]._fingerprint
    card = (folder / "README.md").read_text()
    assert f"test split `test` (fingerprint `{digits_dict['test']._fingerprint}`)" in card
    assert "\ndatasets:" not in card  # built in memory: no Hub dataset to name in the metadata


def test_a_pair_of_array_datasets_with_other_column_names(digits_dict):
    pictures, labels = _digits(side=12)
    arrays = [np.asarray(p) for p in pictures]  # (H, W) uint8 arrays and plain int labels
    train = datasets.Dataset.from_dict({"img": arrays[:N_TRAIN], "labels": labels[:N_TRAIN]})
    test = datasets.Dataset.from_dict({"img": arrays[N_TRAIN:], "labels": labels[N_TRAIN:]})
    bundle = load_data((train, test), channels=1, batch_size=4, augment=False)
    assert (bundle.image_size, bundle.num_classes) == (12, 10)
    x, y = next(iter(bundle.test))
    assert torch.equal(x[0, 0], torch.from_numpy(arrays[N_TRAIN].copy()).float() / 255.0)
    assert y.tolist() == labels[N_TRAIN : N_TRAIN + 4]


def test_bad_hugging_face_data_gets_an_error_naming_the_split_or_column(digits_dict):
    pictures, labels = _digits()
    train, test = digits_dict["train"], digits_dict["test"]
    with pytest.raises(DatasetError, match="no 'test' split.*'train', 'valid'"):
        load_data(datasets.DatasetDict(train=train, valid=test))
    unnamed = datasets.Dataset.from_dict({"pixels": [np.asarray(p) for p in pictures[:8]], "label": labels[:8]})
    with pytest.raises(DatasetError, match="No image column found in split 'train'.*pixels.*image_column"):
        load_data((unnamed, unnamed))
    assert load_data((unnamed, unnamed), image_column="pixels").image_size == SIDE
    with pytest.raises(DatasetError, match="label_column='target' is not a column of split 'train'"):
        load_data(digits_dict, label_column="target")
    ints = datasets.Dataset.from_dict({"image": pictures[:8], "label": [0, 1] * 4})  # train labels: 2 classes
    with pytest.raises(DatasetError, match="Column 'label' of split 'test' holds labels outside \\[0, 2\\)"):
        load_data((ints, ints.map(lambda row: {"label": row["label"] + 1})))
    mixed = _split(pictures[:7] + [pictures[7].resize((12, 12))], labels[:8])
    with pytest.raises(DatasetError, match="Column 'image' of split 'train' holds images of mixed.*12x12, 16x16"):
        load_data(datasets.DatasetDict(train=mixed, test=test))
    assert load_data(datasets.DatasetDict(train=mixed, test=test), image_size=16).image_size == 16
    bright = datasets.Dataset.from_dict({"image": [np.full((8, 8), 300)] * 4, "label": [0, 1, 0, 1]})  # not 8-bit
    with pytest.raises(DatasetError, match="Column 'image' of split 'test' holds pixels outside \\[0, 255\\]"):
        next(iter(load_data((bright, bright)).test))


@pytest.mark.filterwarnings("ignore:GRADIENT-MASKING")
def test_hf_repo_through_the_hub_server_with_column_flags(hub_server, digits_dict, tmp_path, capsys):
    """A dataset repo pushed to the Hub-compatible server (parquet files, as datasets' own push writes them) is read by
    ``--dataset hf:REPO`` with the columns named by flags; ``evaluate DIR`` loads it back from the spec."""
    from huggingface_hub import HfApi

    from robust_prune.cli import main as cli_main

    folder = tmp_path / "repo" / "data"
    folder.mkdir(parents=True)
    for name, split in digits_dict.items():  # other column names: the flags name them
        renamed = split.rename_columns({"image": "pixels", "label": "digit"})
        renamed.to_parquet(folder / f"{name}-00000-of-00001.parquet")
    HfApi().create_repo("test-user/digits", repo_type="dataset")
    HfApi().upload_folder(folder_path=tmp_path / "repo", repo_id="test-user/digits", repo_type="dataset")
    assert sorted(hub_server.repos["datasets/test-user/digits"]) == [
        ".gitattributes", "data/test-00000-of-00001.parquet", "data/train-00000-of-00001.parquet"]  # fmt: skip

    out = tmp_path / "run"
    assert cli_main(["robustify", "--model", "test_resnet", "--dataset", "hf:test-user/digits", "--method", "dense",
                     "--epochs", "1", "--train-steps", "1", "--eval-steps", "2", "--n", "16", "--image-column",
                     "pixels", "--label-column", "digit", "--no-progress", "--out", str(out)]) == 0  # fmt: skip
    data = json.loads((out / "config.json").read_text())["robust_prune"]["data"]
    loaded = datasets.load_dataset("test-user/digits")
    assert (data["name"], data["image_size"], data["hf"]["repo_id"], data["hf"]["image_column"]) == (
        "hf:test-user/digits", SIDE, "test-user/digits", "pixels")  # fmt: skip
    assert data["hf"]["fingerprints"] == {name: loaded[name]._fingerprint for name in ("train", "test")}
    card = (out / "README.md").read_text()
    assert "datasets:\n- test-user/digits\n" in card and "the Hub dataset `test-user/digits`" in card
    capsys.readouterr()
    assert cli_main(["evaluate", str(out), "--n", "16", "--steps", "2", "--no-sanity", "--no-progress"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["meta"]["data"] == "hf:test-user/digits" and report["meta"]["hf"] == data["hf"]
    shown = capsys.readouterr().out  # the same 16 test images through the same model: the same clean accuracy
    assert f"| clean accuracy | {report['clean_accuracy']:.2%} |" in shown
    with pytest.raises(rp.errors.DatasetNotFoundError, match="test-user/nothing"):
        load_data("hf:test-user/nothing")
