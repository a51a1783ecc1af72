"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hub_server import HubServer, point_hub_client_at


@pytest.fixture
def hub_server(tmp_path: Path) -> Iterator[HubServer]:
    """A running in-memory Hub (tests/hub_server.py) with huggingface_hub pointed at it.

    The client is authenticated as ``server.username`` through ``HF_TOKEN = server.token`` (pass ``token=False``
    to a call to make it anonymous); its cache is a fresh ``HF_HOME`` at ``server.hf_home`` under ``tmp_path``.
    Everything is restored when the test ends.
    """
    with HubServer() as server, point_hub_client_at(server.url, token=server.token, home=tmp_path / "hf_home") as home:
        server.hf_home = home
        yield server


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> None:
    """The two CPU cores are shared: keep torch to one thread so parallel work does not oversubscribe them."""
    import torch

    torch.set_num_threads(1)


@pytest.fixture
def tiny_bundle():
    """The embedded digits, cut to 128 training and 48 test images (real data, small enough for unit tests)."""
    from torch.utils.data import DataLoader, Subset

    from robust_prune.data.loading import DataBundle, load_data

    full = load_data("digits", image_size=32, channels=3, batch_size=32, seed=0)
    import torch

    train = DataLoader(Subset(full.train.dataset, range(128)), batch_size=32, shuffle=True,
                       generator=torch.Generator().manual_seed(0))
    test = DataLoader(Subset(full.test.dataset, range(48)), batch_size=48)
    return DataBundle(train, test, 10, 3, 32, "digits", full.default_eps)


@pytest.fixture(scope="session")
def kinds():
    """One small RobustifyResult per publishable kind (tests/_kinds.py), built once per session."""
    from _kinds import build_kinds

    return build_kinds()
