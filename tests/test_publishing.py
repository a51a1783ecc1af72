"""What loads is what was measured: closed load -> save -> load round trips, folders and repositories that hold
exactly one model's files, atomic folder saves (also under SIGKILL), and the loading options of from_pretrained."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from _kinds import KINDS
from hub_server import HubServer
from huggingface_hub import HfApi, ModelCard

import robust_prune as rp
import robust_prune.publishing.hub as hub
from robust_prune.api import RobustifyResult
from robust_prune.cli import main as cli_main
from robust_prune.errors import CheckpointError, HubError
from robust_prune.publishing.hub_remote import FOLDER_FILES
from robust_prune.publishing.model_card import card_metrics, metrics_verified, report_metrics

torch.set_num_threads(1)

X = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def _outputs(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(X)


def _model_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.name in FOLDER_FILES}


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.mark.parametrize("kind", KINDS)
def test_folder_round_trip_is_closed(kinds: dict[str, RobustifyResult], kind: str, tmp_path: Path) -> None:
    result = kinds[kind]
    first = result.save_pretrained(tmp_path / "a")
    a = rp.from_pretrained(first)
    second = rp.save_pretrained(a, tmp_path / "b")  # a bare model: it carries its record, report and config
    b = rp.from_pretrained(second)
    assert torch.equal(_outputs(a), _outputs(result.model)) and torch.equal(_outputs(b), _outputs(a))
    assert b.record.to_dict() == a.record.to_dict() == json.loads(json.dumps(result.record.to_dict()))
    assert {k: torch.equal(v, b.record.masks[k]) for k, v in a.record.masks.items()} == {
        k: True for k in result.record.masks
    }
    assert _model_files(second) == _model_files(first)  # byte for byte: config, weights, masks, report, card


@pytest.mark.parametrize("kind", KINDS)
def test_hub_round_trip_is_closed(hub_server: HubServer, kinds: dict[str, RobustifyResult], kind: str) -> None:
    result = kinds[kind]
    result.push_to_hub(f"test-user/{kind}-a")
    a = rp.from_pretrained(f"test-user/{kind}-a")
    rp.push_to_hub(a, f"test-user/{kind}-b")
    b = rp.from_pretrained(f"hf://test-user/{kind}-b")
    assert torch.equal(_outputs(b), _outputs(result.model)) and torch.equal(_outputs(a), _outputs(result.model))
    assert b.record.to_dict() == a.record.to_dict()
    first, second = hub_server.repos[f"test-user/{kind}-a"], hub_server.repos[f"test-user/{kind}-b"]
    assert set(first) == set(second)
    for name in set(first) - {"README.md"}:  # the cards differ only in the repository they name
        assert first[name] == second[name], name
    assert second["README.md"].decode() == first["README.md"].decode().replace(f"{kind}-a", f"{kind}-b")


def test_channel_pruned_bare_model_load_save_load(tmp_path: Path) -> None:
    """The measured failure of the issue: a channel-pruned test_resnet at 0.5, loaded, saved bare, loaded again."""
    model, _ = rp.api.prepare("test_resnet", "digits")
    pruned = rp.prune(model.eval(), 0.5)
    model.record = pruned.record
    a = rp.from_pretrained(rp.save_pretrained(model, tmp_path / "a"))
    b = rp.from_pretrained(rp.save_pretrained(a, tmp_path / "b"))
    assert torch.equal(_outputs(b), _outputs(model))
    # the timm module alone carries no record: the save refuses instead of writing a folder that cannot load
    with pytest.raises(CheckpointError, match="does not fit its pruning record.*pass record="):
        rp.save_pretrained(a.model, tmp_path / "c")
    assert not (tmp_path / "c").exists()
    rp.save_pretrained(a.model, tmp_path / "c", record=a.record)
    assert torch.equal(_outputs(rp.from_pretrained(tmp_path / "c")), _outputs(model))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"]  # no temporary folder left behind


def test_only_the_main_process_saves_or_pushes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The public rp.save_pretrained / push_to_hub / push_folder, like RobustifyResult's, write nothing on rank 1."""
    model, _ = rp.api.prepare("test_resnet", "digits")
    monkeypatch.setenv("RANK", "1")  # what torchrun sets on the second process (no process group needed here)
    assert rp.save_pretrained(model, tmp_path / "a") == tmp_path / "a"
    assert rp.save_pretrained(model, save_directory=tmp_path / "b") == tmp_path / "b"
    assert hub.push_to_hub(model, "me/x") == "" and hub.push_folder(tmp_path / "a", "me/x") == ""
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setenv("RANK", "0")
    rp.save_pretrained(model, tmp_path / "a")
    assert (tmp_path / "a" / "model.safetensors").is_file()


def test_the_publishing_entry_points_share_one_set_of_push_keywords(tmp_path: Path) -> None:
    """push_to_hub, push_folder and RobustifyResult.push_to_hub take PushOptions: an unknown keyword is refused by
    name before anything is saved or sent."""
    from robust_prune.publishing.hub_remote import PushOptions

    assert PushOptions.__optional_keys__ == {"private", "token", "revision", "commit_message"}
    model, _ = rp.api.prepare("test_resnet", "digits")
    with pytest.raises(TypeError, match="privat"):
        hub.push_to_hub(model, "me/x", privat=True)
    assert list(tmp_path.iterdir()) == []
    folder = rp.save_pretrained(model, tmp_path / "a")
    with pytest.raises(TypeError, match="message"):
        hub.push_folder(folder, "me/x", message="typo")


def test_a_folder_save_leaves_exactly_this_models_files(kinds: dict[str, RobustifyResult], tmp_path: Path) -> None:
    folder = tmp_path / "m"
    kinds["weight"].save_pretrained(folder)
    assert {"masks.safetensors", "report.json", "report.md"} <= set(_model_files(folder))
    (folder / "notes.txt").write_text("mine")  # not robust_prune's: kept
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "LATEST").write_text("000001\n")
    dense = rp.from_pretrained(kinds["dense"].save_pretrained(tmp_path / "dense"))
    dense.report = None  # a bare model without a report: the old report and masks must not survive
    rp.save_pretrained(dense, folder)
    assert set(_model_files(folder)) == {"config.json", "model.safetensors", "README.md"}
    assert _listing(folder) == ["README.md", "checkpoints", "checkpoints/LATEST", "config.json", "model.safetensors",
                                "notes.txt"]  # fmt: skip
    assert card_metrics(ModelCard.load(folder / "README.md")) == {}  # no stale report in the card
    again = rp.from_pretrained(folder)
    assert again.report is None and again.record.masks == {} and torch.equal(_outputs(again), _outputs(dense))


def test_a_failed_save_keeps_the_previous_folder(
    kinds: dict[str, RobustifyResult], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = kinds["weight"].save_pretrained(tmp_path / "m")
    before = _model_files(folder)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(hub, "write_json", crash)  # after the weights and masks, before the config
    with pytest.raises(OSError, match="disk full"):
        kinds["dense"].save_pretrained(folder)
    assert _model_files(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


_KILLED_SAVE = """
import os, signal, sys
import robust_prune as rp, robust_prune.publishing.hub as hub
model = rp.from_pretrained(sys.argv[1])
model.report = None
model.record.masks = {}
real = hub.write_safetensors
def write_then_die(path, *args, **kwargs):
    real(path, *args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)  # the weights are written, nothing else
hub.write_safetensors = write_then_die
rp.save_pretrained(model, sys.argv[2])
"""


def test_sigkill_mid_save_keeps_the_previous_folder(kinds: dict[str, RobustifyResult], tmp_path: Path) -> None:
    folder = kinds["weight"].save_pretrained(tmp_path / "m")
    before = _model_files(folder)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.run([sys.executable, "-c", textwrap.dedent(_KILLED_SAVE), str(folder), str(folder)], env=env,
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    assert _model_files(folder) == before
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "m"]
    assert len(leftovers) == 1 and leftovers[0].startswith(".m.saving-")  # the dead save's own temporary folder
    kinds["dense"].save_pretrained(folder)  # the next save cleans it up
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    assert torch.equal(_outputs(rp.from_pretrained(folder)), _outputs(kinds["dense"].model))


def test_a_save_that_died_between_its_renames_is_put_back(kinds: dict[str, RobustifyResult], tmp_path: Path) -> None:
    folder = kinds["dense"].save_pretrained(tmp_path / "m")
    (folder / "notes.txt").write_text("mine")
    os.replace(folder, tmp_path / ".m.old-0123abcd")  # where a crash between the two renames leaves it
    kinds["channel"].save_pretrained(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    assert (folder / "notes.txt").read_text() == "mine"
    assert torch.equal(_outputs(rp.from_pretrained(folder)), _outputs(kinds["channel"].model))


def test_a_push_leaves_exactly_this_models_files(hub_server: HubServer, kinds: dict[str, RobustifyResult]) -> None:
    repo = "test-user/one-repo"
    kinds["weight"].push_to_hub(repo)
    HfApi().upload_file(path_or_fileobj=b"mine", path_in_repo="notes.txt", repo_id=repo)  # the owner's own file
    assert "masks.safetensors" in hub_server.repos[repo]
    commits = len(hub_server.commits[repo])
    kinds["dense"].push_to_hub(repo)
    assert len(hub_server.commits[repo]) == commits + 1  # one commit adds and deletes
    files = hub_server.repos[repo]
    assert set(files) == {".gitattributes", "notes.txt", "config.json", "model.safetensors", "report.json",
                          "report.md", "README.md"}  # fmt: skip
    dense_report = kinds["dense"].report
    assert metrics_verified(dense_report)  # so the card has metrics to compare
    assert card_metrics(files["README.md"].decode()) == report_metrics(dense_report)
    assert torch.equal(_outputs(rp.from_pretrained(repo)), _outputs(kinds["dense"].model))

    bare = rp.from_pretrained(repo)
    bare.report = None  # a model without a report: the repository's report goes too
    rp.push_to_hub(bare, repo)
    assert set(hub_server.repos[repo]) == {".gitattributes", "notes.txt", "config.json", "model.safetensors",
                                           "README.md"}  # fmt: skip
    assert card_metrics(hub_server.repos[repo]["README.md"].decode()) == {}


def test_from_pretrained_passes_token_cache_and_offline_through(
    hub_server: HubServer, kinds: dict[str, RobustifyResult], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = "test-user/private-weight"
    kinds["weight"].push_to_hub(repo, private=True)
    first = hub_server.commits[repo][-1].oid
    kinds["dense"].push_to_hub(repo)
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(HubError, match="does not exist or your token cannot see it"):
        rp.from_pretrained(repo)
    cache = tmp_path / "cache"
    old = rp.from_pretrained(repo, revision=first, token=hub_server.token, cache_dir=cache)
    assert torch.equal(_outputs(old), _outputs(kinds["weight"].model))
    assert any(cache.rglob("model.safetensors"))
    assert not any((hub_server.hf_home or tmp_path).rglob("models--test-user--private-weight"))
    hub_server.stop()
    offline = rp.from_pretrained(repo, revision=first, cache_dir=cache, local_files_only=True)
    assert torch.equal(_outputs(offline), _outputs(kinds["weight"].model))
    with pytest.raises(HubError, match="could not be reached and nothing is cached"):
        rp.from_pretrained(repo, cache_dir=tmp_path / "empty", local_files_only=True)


def test_cli_reads_hf_token_and_takes_revision(
    hub_server: HubServer,
    kinds: dict[str, RobustifyResult],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = "test-user/cli-private"
    kinds["channel"].push_to_hub(repo, private=True)
    first = hub_server.commits[repo][-1].oid
    kinds["dense"].push_to_hub(repo)
    assert cli_main(["grow", repo, "--revision", first, "--out", str(tmp_path / "grown")]) == 0  # HF_TOKEN is set
    grown = rp.from_pretrained(tmp_path / "grown")
    assert grown.record.architecture == "test_resnet" and grown.record.structure == "none"
    assert cli_main(["evaluate", repo, "--revision", first, "--n", "8", "--steps", "1", "--no-progress"]) == 0
    assert "clean accuracy" in capsys.readouterr().out
    assert not any(hub_server.token.encode() in p.read_bytes() for p in (tmp_path / "grown").iterdir())
    monkeypatch.delenv("HF_TOKEN")  # without a token the private repository is not visible (a cached commit is)
    assert cli_main(["evaluate", repo, "--n", "8", "--no-progress"]) == 2
    assert "token cannot see it" in capsys.readouterr().err
