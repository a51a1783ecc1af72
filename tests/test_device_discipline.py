"""Every tensor the library makes is made on a device it chose: run each method with the model on the CPU while
robust_prune's own deviceless tensor constructors are sent to the ``meta`` device.

``torch.set_default_device("meta")`` itself cannot run a method: torch's DataLoader draws its base seed with
``torch.empty(()).random_().item()`` (a meta tensor has no value), and timm/torchattacks/torch-pruning make
tensors the same way. So the test narrows the default device to the library: a ``torch.zeros``/``rand``/
``tensor``... called from a robust_prune or adapters frame without ``device=`` lands on ``meta``, where the first
use next to a real tensor, or the first read of its value, fails. On a GPU the same line makes a CPU tensor beside
a CUDA model. Data loading (``data.py``, ``transforms.py``) is exempt: its tensors are the CPU batches a loader
yields by design.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import timm
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._device import _device_constructors
from torch.utils.data import DataLoader, Subset

import robust_prune as rp
from robust_prune.data.loading import load_data

LIBRARY = (str(Path(rp.__file__).resolve().parent), str(Path(rp.__file__).resolve().parent.parent / "adapters"))
HOST_DATA = ("data.py", "transforms.py")


class LibraryTensorsOnMeta(TorchFunctionMode):
    """Sends a tensor constructor called by the library without ``device=`` (and not converting a tensor) to meta."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: set[str] = set()

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = dict(kwargs or {})
        if func in _device_constructors() and kwargs.get("device") is None:
            frame = sys._getframe(1)
            caller = str(Path(frame.f_code.co_filename).resolve())
            converts = any(isinstance(a, torch.Tensor) for a in args)  # torch.as_tensor(t) keeps t's device
            if caller.startswith(LIBRARY) and not caller.endswith(HOST_DATA) and not converts:
                kwargs["device"] = "meta"
                self.sent.add(f"{caller}:{frame.f_lineno}")
        return func(*args, **kwargs)


@pytest.fixture(scope="module")
def loaders() -> tuple[DataLoader, DataLoader]:
    full = load_data("digits", image_size=32, channels=3, batch_size=32, seed=0)
    train = DataLoader(Subset(full.train.dataset, range(256)), batch_size=32, shuffle=True,
                       generator=torch.Generator().manual_seed(0))  # fmt: skip
    return train, DataLoader(Subset(full.test.dataset, range(24)), batch_size=24)


RUNS = {
    "dense": {"method": "dense", "epochs": 3, "eval_attacks": ("pgd", "fgsm", "cw", "apgd-dlr", "autoattack-fast")},
    "prune-channel-taylor": {"method": "prune", "importance": "taylor"},
    "prune-weight-robust": {"method": "prune", "structure": "weight", "importance": "robust"},
    "lottery-weight": {"method": "lottery", "structure": "weight", "rounds": 2},
    "iwi-channel-small-out": {"method": "iwi", "grow_init": "small-out"},
    "iwi-weight-lottery": {"method": "iwi", "structure": "weight", "grow_init": "random", "ticket_method": "lottery"},
}


@pytest.mark.parametrize("name", list(RUNS))
def test_every_method_makes_its_tensors_on_a_chosen_device(name: str, loaders: tuple) -> None:
    torch.manual_seed(0)
    model = timm.create_model("test_resnet", num_classes=10)
    options = {"epochs": 1, "finetune_epochs": 1, "grow_epochs": 1, "eps": 0.1, "train_steps": 1, "eval_steps": 2,
               "eval_n": 24, **RUNS[name]}  # fmt: skip
    with warnings.catch_warnings(), LibraryTensorsOnMeta() as spy:
        warnings.simplefilter("ignore")
        result = rp.robustify(model, loaders, progress=False, **options)
    assert spy.sent == set(), f"library tensors made without a device: {sorted(spy.sent)}"
    assert all(t.device.type == "cpu" for t in result.model.state_dict().values())
    if name == "dense":  # the attacks had points to attack
        assert result.report.clean_accuracy > 0
