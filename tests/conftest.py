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
