"""Publishing end to end: the real huggingface_hub client against the in-memory Hub of tests/hub_server.py.

Every model kind (dense, channel-pruned, weight-masked, lottery ticket, grown) is pushed in one commit, downloaded,
rebuilt and compared output for output; timm's own loader is checked on the kinds it can read.
"""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path

import huggingface_hub
import pytest
import timm
import torch
from _kinds import KINDS, TIMM_KINDS
from hub_server import HubServer

import robust_prune as rp
from robust_prune.api import RobustifyResult
from robust_prune.cli import main as cli_main
from robust_prune.errors import HubError, NotARobustPruneFolderError
from robust_prune.publishing.hub import push_folder, push_to_hub
from robust_prune.publishing.model_card import card_metrics, metrics_verified, report_metrics

torch.set_num_threads(1)

X = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.fixture
def results(kinds: dict[str, RobustifyResult]) -> dict[str, RobustifyResult]:
    """One RobustifyResult per model kind (tests/_kinds.py)."""
    return kinds


def _files(server: HubServer, repo_id: str) -> dict[str, bytes]:
    return server.repos[repo_id]


@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_exact(hub_server: HubServer, results: dict[str, RobustifyResult], kind: str) -> None:
    result, repo_id = results[kind], f"test-user/{kind}"
    before = len(hub_server.commits.get(repo_id, []))
    url = result.push_to_hub(repo_id, commit_message=f"Add {kind}")
    commits = hub_server.commits[repo_id]
    assert len(commits) == max(before, 1) + 1 and commits[-1].title == f"Add {kind}"  # one commit
    assert commits[-1].oid in url
    files = _files(hub_server, repo_id)
    assert {"config.json", "model.safetensors", "report.json", "README.md"} <= set(files)
    assert ("masks.safetensors" in files) == (kind == "weight")
    assert not any(name.endswith((".bin", ".pt", ".pth", ".pkl", ".ckpt")) for name in files)

    loaded = rp.from_pretrained(repo_id)
    assert not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(X), result.model(X))
    assert loaded.record.to_dict() == result.record.to_dict()
    assert loaded.report.to_dict() == json.loads(json.dumps(result.report.to_dict()))
    card = files["README.md"].decode()
    assert card_metrics(card) == (report_metrics(result.report) if metrics_verified(result.report) else {})
    assert f'rp.from_pretrained("{repo_id}")' in card
    assert (f'timm.create_model("hf-hub:{repo_id}"' in card) == (kind in TIMM_KINDS)
    for data in files.values():  # the token never reaches a file
        assert hub_server.token.encode() not in data


@pytest.mark.parametrize("kind", TIMM_KINDS)
def test_timm_loads_unchanged_architectures(
    hub_server: HubServer, results: dict[str, RobustifyResult], kind: str
) -> None:
    """The promise of the card's "How to load": plain timm gives exactly robust_prune's logits (dense, weight-pruned,
    grown), on inputs normalised with the pretrained_cfg's mean/std as the card shows."""
    result = results[kind]
    result.push_to_hub(f"test-user/{kind}")
    model = timm.create_model(f"hf-hub:test-user/{kind}", pretrained=True).eval()
    cfg = model.pretrained_cfg
    mean, std = torch.tensor(cfg["mean"]).view(1, -1, 1, 1), torch.tensor(cfg["std"]).view(1, -1, 1, 1)
    inner = rp.from_pretrained(f"test-user/{kind}").model.eval()
    assert type(inner) is type(model)
    with torch.no_grad():
        assert torch.equal(model((X - mean) / std), inner((X - mean) / std))
        assert torch.equal(model((X - mean) / std), result.model(X))
    card = hub_server.repos[f"test-user/{kind}"]["README.md"].decode()
    assert 'mean = torch.tensor(model.pretrained_cfg["mean"])' in card and "needs robust_prune" not in card


def test_channel_pruned_is_refused_by_timm(hub_server: HubServer, results: dict[str, RobustifyResult]) -> None:
    results["channel"].push_to_hub("test-user/channel")
    with pytest.raises(RuntimeError, match="size mismatch"):
        timm.create_model("hf-hub:test-user/channel", pretrained=True)
    card = hub_server.repos["test-user/channel"]["README.md"].decode()
    assert "**This model needs robust_prune**" in card and "fails with a size-mismatch error" in card


def test_load_path_never_unpickles(
    hub_server: HubServer, results: dict[str, RobustifyResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    results["weight"].push_to_hub("test-user/weight")

    def forbidden(*args, **kwargs):
        raise AssertionError("the load path unpickled something")

    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    model = rp.from_pretrained("hf://test-user/weight")
    with torch.no_grad():
        assert torch.equal(model(X), results["weight"].model(X))


def test_private_revision_and_token_hygiene(
    hub_server: HubServer,
    results: dict[str, RobustifyResult],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HF_TOKEN")
    caplog.set_level(logging.DEBUG)
    token = hub_server.token
    push_to_hub(results["dense"], "private-dense", private=True, token=token)  # no namespace: the token's user
    assert hub_server.is_private("test-user/private-dense")
    first = hub_server.commits["test-user/private-dense"][-1].oid
    results["channel"].push_to_hub("test-user/private-dense", token=token)
    with pytest.raises(HubError, match="does not exist or your token cannot see it"):
        rp.from_pretrained("test-user/private-dense")  # anonymous
    monkeypatch.setenv("HF_TOKEN", token)
    old = rp.from_pretrained("test-user/private-dense", revision=first)
    with torch.no_grad():
        assert torch.equal(old(X), results["dense"].model(X))
    with pytest.raises(HubError, match="revision 'nope' does not exist"):
        rp.from_pretrained("test-user/private-dense", revision="nope")
    out = capsys.readouterr()
    assert token not in caplog.text + out.out + out.err


def test_errors_are_clear(
    hub_server: HubServer, results: dict[str, RobustifyResult], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    result = results["dense"]
    with pytest.raises(HubError, match="not a valid Hub repository id"):
        result.push_to_hub("bad id/with space")
    with pytest.raises(HubError, match="not a local folder"):
        rp.from_pretrained("no/such/thing")
    with pytest.raises(HubError, match="does not exist"):
        rp.from_pretrained("test-user/missing")
    with pytest.raises(HubError, match="refused the token") as err:
        result.push_to_hub("test-user/x", token="hf_wrong_token_123")
    assert "hf_wrong_token_123" not in str(err.value)
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(HubError, match="No Hugging Face token"):
        result.push_to_hub("test-user/x")
    monkeypatch.setenv("HF_TOKEN", hub_server.token)

    hub_server.fail_next_commit = True  # the server answers 500 to the commit: nothing may be half-pushed
    with pytest.raises(HubError, match="Nothing was committed"):
        result.push_to_hub("test-user/flaky")
    assert set(hub_server.repos["test-user/flaky"]) == {".gitattributes"}

    timm_files = {"config.json": b'{"architecture": "resnet10t"}', "model.safetensors": b""}
    hub_server.add_repo("test-user/plain-timm", timm_files)
    with pytest.raises(NotARobustPruneFolderError, match="not a robust_prune model"):
        rp.from_pretrained("test-user/plain-timm")
    hub_server.add_repo("test-user/empty")
    with pytest.raises(NotARobustPruneFolderError):
        rp.from_pretrained("test-user/empty")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "config.json").write_text("{}")
    with pytest.raises(NotARobustPruneFolderError):
        push_folder(tmp_path / "foreign", "test-user/foreign")
    assert "test-user/foreign" not in hub_server.repos

    hub_server.stop()  # the network goes away (and with it the client's pooled keep-alive connections)
    huggingface_hub.close_session()
    with pytest.raises(HubError, match="(network failure|could not be reached)"):
        result.push_to_hub("test-user/offline")
    with pytest.raises(HubError, match="could not be reached|network failure"):
        rp.from_pretrained("test-user/never-downloaded")


def test_cli_push_and_evaluate(
    hub_server: HubServer, results: dict[str, RobustifyResult], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = results["channel"].save_pretrained(tmp_path / "run")
    (run_dir / "checkpoint.pt").write_bytes(b"not for the hub")
    assert cli_main(["push", str(run_dir), "--repo-id", "test-user/cli", "--private"]) == 0
    files = hub_server.repos["test-user/cli"]
    assert "checkpoint.pt" not in files and hub_server.is_private("test-user/cli")
    assert 'rp.from_pretrained("test-user/cli")' in files["README.md"].decode()
    for target in ("hf://test-user/cli", "test-user/cli"):
        assert cli_main(["evaluate", target, "--n", "8", "--steps", "1", "--no-progress"]) == 0
        assert "clean accuracy" in capsys.readouterr().out
    assert cli_main(["push", str(tmp_path), "--repo-id", "test-user/cli2"]) == 2
    assert "not written by robust_prune" in capsys.readouterr().err
