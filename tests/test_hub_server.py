"""The real huggingface_hub client, end to end, against the in-memory Hub of tests/hub_server.py."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest
from hub_server import HubServer, git_blob_sha1, point_hub_client_at
from huggingface_hub import HfApi, ModelCard, constants, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from safetensors.numpy import load, save

README = "---\nlicense: apache-2.0\nlibrary_name: timm\ntags:\n- robust-prune\n---\n\n# A tiny pruned model\n"
REPO = "test-user/tiny"


def write_model_folder(folder: Path, num_classes: int = 10) -> dict[str, bytes]:
    """config.json, a safetensors file and a README with YAML front matter; returns their bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "config.json": json.dumps({"architecture": "resnet10t", "num_classes": num_classes}).encode(),
        "model.safetensors": save({"fc.weight": np.arange(12, dtype=np.float32).reshape(3, 4)}),
        "README.md": README.encode(),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


@pytest.fixture
def api(hub_server: HubServer) -> HfApi:
    return HfApi()


@pytest.fixture
def uploaded(hub_server: HubServer, api: HfApi, tmp_path: Path) -> tuple[dict[str, bytes], str]:
    """REPO created and filled by one upload_folder; returns (files, commit sha)."""
    api.create_repo(REPO)
    files = write_model_folder(tmp_path / "model")
    info = api.upload_folder(folder_path=tmp_path / "model", repo_id=REPO, commit_message="Upload tiny model")
    return files, info.oid


def test_create_repo_conflict_and_exist_ok(hub_server: HubServer, api: HfApi) -> None:
    url = api.create_repo("tiny")  # no namespace: the token's user
    assert url.repo_id == REPO and url.endpoint == hub_server.url
    assert hub_server.repos[REPO] == {".gitattributes": hub_server.repos[REPO][".gitattributes"]}
    with pytest.raises(HfHubHTTPError) as err:
        api.create_repo(REPO)
    assert err.value.response.status_code == 409
    assert api.create_repo(REPO, exist_ok=True).repo_id == REPO
    assert len(hub_server.commits[REPO]) == 1


def test_upload_folder_makes_exactly_one_commit(hub_server: HubServer, uploaded: tuple[dict[str, bytes], str]) -> None:
    files, sha = uploaded
    commits = hub_server.commits[REPO]
    assert [c.title for c in commits] == ["initial commit", "Upload tiny model"]
    assert commits[-1].oid == sha and commits[-1].parent == commits[0].oid
    assert {p: b for p, b in hub_server.repos[REPO].items() if p != ".gitattributes"} == files
    calls = [path for _, path in hub_server.requests]
    assert calls.count(f"/api/models/{REPO}/commit/main") == 1
    assert f"/api/models/{REPO}/preupload/main" in calls and "/api/validate-yaml" in calls


def test_list_files_and_model_info(api: HfApi, uploaded: tuple[dict[str, bytes], str]) -> None:
    files, sha = uploaded
    assert sorted(api.list_repo_files(REPO)) == sorted([".gitattributes", *files])
    info = api.model_info(REPO)
    assert info.id == REPO and info.sha == sha and info.private is False
    siblings = {s.rfilename: s for s in info.siblings or []}
    assert set(siblings) == {".gitattributes", *files}
    assert siblings["model.safetensors"].blob_id == git_blob_sha1(files["model.safetensors"])
    assert api.model_info(REPO, revision=sha).sha == sha
    assert api.repo_exists(REPO) and not api.repo_exists("test-user/nothing-here")


def test_downloads_are_byte_equal(hub_server: HubServer, uploaded: tuple[dict[str, bytes], str]) -> None:
    files, sha = uploaded
    assert hub_server.hf_home is not None
    for name, data in files.items():
        path = Path(hf_hub_download(REPO, name))
        assert path.read_bytes() == data
        assert Path(constants.HF_HUB_CACHE) in path.parents and hub_server.hf_home in path.parents
    snapshot = Path(snapshot_download(REPO))
    assert snapshot.name == sha
    for name, data in files.items():
        assert (snapshot / name).read_bytes() == data
    weights = load((snapshot / "model.safetensors").read_bytes())
    np.testing.assert_array_equal(weights["fc.weight"], np.arange(12, dtype=np.float32).reshape(3, 4))
    card = ModelCard.load(snapshot / "README.md")
    assert card.data.license == "apache-2.0" and card.data.tags == ["robust-prune"]


def test_revision_by_commit_sha(
    hub_server: HubServer, api: HfApi, uploaded: tuple[dict[str, bytes], str], tmp_path: Path
) -> None:
    files, first = uploaded
    new_config = json.dumps({"architecture": "resnet10t", "num_classes": 100}).encode()
    second = api.upload_file(path_or_fileobj=new_config, path_in_repo="config.json", repo_id=REPO).oid
    assert second != first
    assert Path(hf_hub_download(REPO, "config.json")).read_bytes() == new_config
    assert Path(hf_hub_download(REPO, "config.json", revision=first)).read_bytes() == files["config.json"]
    assert Path(hf_hub_download(REPO, "config.json", revision=first[:12])).read_bytes() == files["config.json"]
    old = Path(snapshot_download(REPO, revision=first, cache_dir=tmp_path / "other-cache"))
    assert (old / "config.json").read_bytes() == files["config.json"]
    assert [c.commit_id for c in api.list_repo_commits(REPO)] == [c.oid for c in reversed(hub_server.commits[REPO])]
    assert hub_server.files(REPO, first)["config.json"] == files["config.json"]


def test_errors_map_to_typed_client_exceptions(api: HfApi, uploaded: tuple[dict[str, bytes], str]) -> None:
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("test-user/missing")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("test-user/missing", "config.json")
    with pytest.raises(RevisionNotFoundError):
        api.model_info(REPO, revision="no-such-branch")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(REPO, "config.json", revision="no-such-branch")
    with pytest.raises(RevisionNotFoundError):
        snapshot_download(REPO, revision="0" * 40)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(REPO, "missing.json")
    with pytest.raises(EntryNotFoundError):
        api.delete_file("missing.json", repo_id=REPO)


def test_writes_need_the_token(hub_server: HubServer, api: HfApi, uploaded: tuple[dict[str, bytes], str]) -> None:
    before = hub_server.commits[REPO]
    for token in (False, "hf_wrong"):
        with pytest.raises(HfHubHTTPError) as err:
            api.create_repo("test-user/other", token=token)
        assert err.value.response.status_code == 401
        with pytest.raises(HfHubHTTPError) as err:
            api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=REPO, token=token)
        assert err.value.response.status_code == 401
    assert hub_server.commits[REPO] == before and "test-user/other" not in hub_server.repos
    assert api.whoami()["name"] == hub_server.username
    with pytest.raises(HfHubHTTPError):
        api.whoami(token="hf_wrong")


def test_private_repo_needs_the_token_to_read(hub_server: HubServer, api: HfApi) -> None:
    api.create_repo("test-user/secret", private=True)
    api.upload_file(path_or_fileobj=b'{"a": 1}', path_in_repo="config.json", repo_id="test-user/secret")
    assert hub_server.is_private("test-user/secret")
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("test-user/secret", token=False)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("test-user/secret", "config.json", token=False)
    with pytest.raises(RepositoryNotFoundError):
        api.list_repo_files("test-user/secret", token=False)
    assert api.model_info("test-user/secret").private is True
    assert Path(hf_hub_download("test-user/secret", "config.json")).read_bytes() == b'{"a": 1}'


def test_failed_commit_stores_nothing(
    hub_server: HubServer, api: HfApi, uploaded: tuple[dict[str, bytes], str], tmp_path: Path
) -> None:
    repos_before, commits_before = hub_server.repos, hub_server.commits
    folder = tmp_path / "v2"
    write_model_folder(folder, num_classes=100)
    (folder / "extra.json").write_bytes(b"{}")
    hub_server.fail_next_commit = True
    with pytest.raises(HfHubHTTPError) as err:
        api.upload_folder(folder_path=folder, repo_id=REPO)
    assert err.value.response.status_code == 500
    assert hub_server.repos == repos_before and hub_server.commits == commits_before
    assert "extra.json" not in api.list_repo_files(REPO)
    assert hub_server.fail_next_commit is False
    api.upload_folder(folder_path=folder, repo_id=REPO)  # the retry goes through, whole
    assert hub_server.repos[REPO]["extra.json"] == b"{}"
    assert len(hub_server.commits[REPO]) == len(commits_before[REPO]) + 1


def test_unchanged_upload_makes_no_commit_and_delete_works(
    hub_server: HubServer, api: HfApi, uploaded: tuple[dict[str, bytes], str], tmp_path: Path
) -> None:
    count = len(hub_server.commits[REPO])
    api.upload_folder(folder_path=tmp_path / "model", repo_id=REPO)  # preupload reports the same blob oids
    assert len(hub_server.commits[REPO]) == count
    api.delete_file("README.md", repo_id=REPO)
    assert "README.md" not in hub_server.repos[REPO] and len(hub_server.commits[REPO]) == count + 1


def test_raw_http_contract(hub_server: HubServer, uploaded: tuple[dict[str, bytes], str]) -> None:
    files, sha = uploaded
    auth = {"Authorization": f"Bearer {hub_server.token}"}
    url = f"{hub_server.url}/{REPO}/resolve/main/config.json"
    with urllib.request.urlopen(urllib.request.Request(url, method="HEAD")) as response:
        assert response.headers["X-Repo-Commit"] == sha
        assert response.headers["ETag"] == f'"{git_blob_sha1(files["config.json"])}"'
        assert int(response.headers["Content-Length"]) == len(files["config.json"])
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Range": "bytes=2-5", **auth})) as response:
        assert response.status == 206 and response.read() == files["config.json"][2:6]
    for path, code in [("missing.json", "EntryNotFound"), ("../x", "EntryNotFound")]:
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{hub_server.url}/{REPO}/resolve/main/{path}")
        assert err.value.code == 404 and err.value.headers["X-Error-Code"] == code
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{hub_server.url}/{REPO}/resolve/nope/config.json")
    assert err.value.headers["X-Error-Code"] == "RevisionNotFound"


def test_point_hub_client_at_restores_everything(tmp_path: Path) -> None:
    endpoint, template = constants.ENDPOINT, constants.HUGGINGFACE_CO_URL_TEMPLATE
    api_endpoint = huggingface_hub.hf_api.api.endpoint
    env = {k: os.environ.get(k) for k in ("HF_ENDPOINT", "HF_TOKEN", "HF_HOME", "HF_HUB_DISABLE_XET")}
    with HubServer() as server, point_hub_client_at(server.url, home=tmp_path / "home") as home:
        assert constants.ENDPOINT == server.url == huggingface_hub.hf_api.api.endpoint
        assert constants.HF_HUB_DISABLE_XET is True and constants.HF_HUB_CACHE == str(home / "hub")
        assert os.environ.get("HF_TOKEN") is None  # anonymous unless a token is given
        with pytest.raises(HfHubHTTPError):
            huggingface_hub.create_repo("test-user/anon")
    assert (constants.ENDPOINT, constants.HUGGINGFACE_CO_URL_TEMPLATE) == (endpoint, template)
    assert huggingface_hub.hf_api.api.endpoint == api_endpoint
    assert {k: os.environ.get(k) for k in env} == env
