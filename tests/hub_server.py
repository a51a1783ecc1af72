"""A small in-memory server that speaks enough of the Hugging Face Hub API for tests.

It implements what ``huggingface_hub`` (2.x) sends for model and dataset repos when Xet is disabled: create a repo,
validate a README's YAML, preupload (every file answered ``"regular"``, so its bytes travel base64 inside the commit),
commit (NDJSON), repo info, tree listing, commit listing, ``/resolve`` (HEAD and GET), and ``whoami-v2``. Storage is a
dict in memory; every commit keeps a full snapshot of the repo, so any commit sha is a valid revision. Dataset repos are
stored as ``"datasets/<owner>/<name>"`` and serve what ``datasets.load_dataset`` reads (repo info, tree, resolve).

Only the standard library is used by the server itself; :func:`point_hub_client_at` imports ``huggingface_hub`` to
redirect the real client to the server.

Example:
    >>> from huggingface_hub import HfApi
    >>> with HubServer() as server, point_hub_client_at(server.url, token=server.token):
    ...     url = HfApi().create_repo("me/demo")
    ...     sorted(server.repos["me/demo"])
    ['.gitattributes']
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import json
import os
import re
import secrets
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["Commit", "HubError", "HubServer", "git_blob_sha1", "point_hub_client_at"]

GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
_HEX_RE = re.compile(r"^[0-9a-f]{7,40}$")
_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
# Where each repo type lives in storage: model repos under their id, dataset repos under "datasets/<id>" (as on the Hub,
# whose dataset URLs carry that prefix).
_PREFIXES = {"models": "", "datasets": "datasets/"}


def git_blob_sha1(data: bytes) -> str:
    """Git object id of a blob: what the Hub reports as a regular file's ``oid``/``blobId`` and ``ETag``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _now() -> str:
    """Current UTC time in the Hub's date format (``2024-01-31T12:00:00.000Z``)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class Commit:
    """One commit: its id, message, parent and the complete file snapshot after it."""

    oid: str
    title: str
    description: str
    parent: str | None
    files: Mapping[str, bytes]
    date: str


@dataclass
class _Repo:
    repo_id: str
    private: bool
    created_at: str
    commits: list[Commit] = field(default_factory=list)  # oldest first
    branches: dict[str, str] = field(default_factory=dict)  # branch name -> commit oid


@dataclass
class _Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class HubError(Exception):
    """An HTTP error answered the way the Hub does: JSON ``{"error": ...}`` plus ``X-Error-*`` headers."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, dict(headers or {})

    def response(self) -> _Response:
        headers = {"X-Error-Message": self.message, **self.headers}
        if self.code:
            headers["X-Error-Code"] = self.code
        return _json(self.status, {"error": self.message}, headers)


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> _Response:
    return _Response(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})})


class HubServer:
    """An in-memory Hub on ``127.0.0.1`` (a free port), served from a daemon thread.

    Attributes:
        url: base URL, e.g. ``"http://127.0.0.1:43123"`` (set by :meth:`start`).
        token: the one token accepted (``Authorization: Bearer <token>``); writes need it, private reads too.
        username: the token's user; ``create_repo("name")`` without a namespace lands there.
        fail_next_commit: when True, the next authenticated commit answers HTTP 500 and stores nothing (then resets).
        requests: ``(method, path)`` of every request received, in order.
        hf_home: the client's HF_HOME when pointed at this server by the ``hub_server`` fixture, else None.

    Example:
        >>> with HubServer() as server:
        ...     oid = server.add_repo("me/seeded", {"config.json": b"{}"})
        ...     sorted(server.repos["me/seeded"])
        ['.gitattributes', 'config.json']
    """

    def __init__(self, *, username: str = "test-user", token: str | None = None) -> None:
        self.username = username
        self.token = token or f"hf_test_token_{secrets.token_hex(12)}"
        self.fail_next_commit = False
        self.requests: list[tuple[str, str]] = []
        self.hf_home: Path | None = None
        self._repos: dict[str, _Repo] = {}
        self._lock = threading.RLock()
        self._counter = itertools.count()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL of the running server."""
        if self._httpd is None:
            raise RuntimeError("HubServer is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> HubServer:
        """Bind a free port on 127.0.0.1 and serve in a daemon thread; returns self."""
        if self._httpd is None:
            self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
            self._httpd.hub = self
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="hub-server", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket (idempotent)."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._httpd = self._thread = None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- inspection and seeding ----------------------------------------------------------------------------------

    @property
    def repos(self) -> dict[str, dict[str, bytes]]:
        """``{repo_id: {path: bytes}}`` at the head of ``main`` (a copy); dataset repos as ``"datasets/<repo_id>"``."""
        with self._lock:
            return {rid: dict(self._resolve(repo, "main").files) for rid, repo in self._repos.items()}

    @property
    def commits(self) -> dict[str, list[Commit]]:
        """``{repo_id: [Commit, ...]}``, oldest first, including the repo's initial commit (a copy)."""
        with self._lock:
            return {rid: list(repo.commits) for rid, repo in self._repos.items()}

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """Files of ``repo_id`` at ``revision`` (a branch or a commit sha)."""
        with self._lock:
            return dict(self._resolve(self._repos[repo_id], revision).files)

    def is_private(self, repo_id: str) -> bool:
        """Whether ``repo_id`` was created private."""
        return self._repos[repo_id].private

    def add_repo(self, repo_id: str, files: Mapping[str, bytes] | None = None, *, private: bool = False) -> str:
        """Create ``repo_id`` without HTTP, plus a second commit with ``files`` if given; returns the head sha."""
        with self._lock:
            if repo_id in self._repos:
                raise ValueError(f"{repo_id} exists")
            repo = self._repos[repo_id] = _Repo(repo_id, private, _now())
            head = self._commit(repo, "main", "initial commit", "", {".gitattributes": GITATTRIBUTES})
            if files:
                head = self._commit(repo, "main", "Add files", "", {**head.files, **files})
            return head.oid

    # -- storage helpers (call with the lock held) ---------------------------------------------------------------

    def _commit(self, repo: _Repo, branch: str, title: str, description: str, files: dict[str, bytes]) -> Commit:
        parent = repo.branches.get(branch)
        digest = hashlib.sha1(f"{repo.repo_id}\0{parent}\0{title}\0{next(self._counter)}\0".encode())
        for path in sorted(files):
            digest.update(f"{path}\0{git_blob_sha1(files[path])}\0".encode())
        commit = Commit(digest.hexdigest(), title, description, parent, dict(files), _now())
        repo.commits.append(commit)
        repo.branches[branch] = commit.oid
        return commit

    def _resolve(self, repo: _Repo, revision: str) -> Commit:
        oid = repo.branches.get(revision)
        if oid is None and _HEX_RE.match(revision):
            matches = [c.oid for c in repo.commits if c.oid.startswith(revision)]
            oid = matches[0] if len(matches) == 1 else None
        for commit in reversed(repo.commits):
            if commit.oid == oid:
                return commit
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    # -- authentication ------------------------------------------------------------------------------------------

    def _authenticated(self, headers: Mapping[str, str]) -> bool:
        """False without a token, True with the right one; a wrong token is a 401 everywhere, like on the Hub."""
        auth = headers.get("Authorization")
        if auth is None:
            return False
        if auth != f"Bearer {self.token}":
            raise HubError(401, "Invalid credentials in Authorization header")
        return True

    def _require_write(self, headers: Mapping[str, str]) -> None:
        if not self._authenticated(headers):
            raise HubError(401, "You must be authenticated to access this resource")

    def _writable_repo(self, repo_id: str, headers: Mapping[str, str]) -> _Repo:
        self._require_write(headers)
        if repo_id not in self._repos:
            raise HubError(404, "Repository not found", "RepoNotFound")
        return self._repos[repo_id]

    def _readable_repo(self, repo_id: str, headers: Mapping[str, str]) -> _Repo:
        authed = self._authenticated(headers)
        repo = self._repos.get(repo_id)
        if repo is None or (repo.private and not authed):
            # The Hub answers 401 to anonymous callers and 404 to authenticated ones, RepoNotFound in both cases.
            raise HubError(404 if authed else 401, "Repository not found", "RepoNotFound")
        return repo

    # -- routing -------------------------------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: dict[str, str], headers: Mapping[str, str], body: bytes
    ) -> _Response:
        """Answer one request (called by the HTTP handler thread)."""
        seg = [unquote(s) for s in path.strip("/").split("/")]  # split first: a quoted revision may hold "/"
        with self._lock:
            self.requests.append((method, path))
            if seg[:1] == ["api"]:
                return self._handle_api(method, seg[1:], query, headers, body)
            if len(seg) >= 5 and seg[2] == "resolve" and method in ("GET", "HEAD"):
                return self._resolve_file(f"{seg[0]}/{seg[1]}", seg[3], "/".join(seg[4:]), headers)
            if seg[0] == "datasets" and len(seg) >= 6 and seg[3] == "resolve" and method in ("GET", "HEAD"):
                return self._resolve_file(f"datasets/{seg[1]}/{seg[2]}", seg[4], "/".join(seg[5:]), headers)
        raise HubError(404, f"Not found: {method} {path}")

    def _handle_api(
        self, method: str, seg: list[str], query: dict[str, str], headers: Mapping[str, str], body: bytes
    ) -> _Response:
        if seg == ["whoami-v2"] and method == "GET":
            self._require_write(headers)
            access = {"displayName": "hub-server-test", "role": "write"}
            return _json(200, {"type": "user", "name": self.username, "orgs": [], "auth": {"accessToken": access}})
        if seg == ["repos", "create"] and method == "POST":
            return self._create_repo(json.loads(body or b"{}"), headers)
        if seg == ["repos", "delete"] and method == "DELETE":
            return self._delete_repo(json.loads(body or b"{}"), headers)
        if seg == ["validate-yaml"] and method == "POST":
            return self._validate_yaml(json.loads(body or b"{}"))
        if len(seg) < 3 or seg[0] not in _PREFIXES:
            raise HubError(404, f"Not found: /api/{'/'.join(seg)}")
        repo_id, rest = f"{_PREFIXES[seg[0]]}{seg[1]}/{seg[2]}", seg[3:]
        if method == "GET" and not rest:
            return self._info(repo_id, "main", headers)
        if method == "GET" and len(rest) == 2 and rest[0] == "revision":
            return self._info(repo_id, rest[1], headers)
        if method == "GET" and len(rest) >= 2 and rest[0] == "tree":
            recursive = query.get("recursive", "").lower() in ("1", "true")
            return self._tree(repo_id, rest[1], "/".join(rest[2:]), recursive, headers)
        if method == "GET" and len(rest) == 2 and rest[0] == "commits":
            return self._list_commits(repo_id, rest[1], headers)
        if method == "POST" and len(rest) == 2 and rest[0] == "preupload":
            return self._preupload(repo_id, rest[1], json.loads(body or b"{}"), headers)
        if method == "POST" and len(rest) == 2 and rest[0] == "commit":
            return self._create_commit(repo_id, rest[1], query, body, headers)
        raise HubError(404, f"Not found: {method} /api/{'/'.join(seg)}")

    # -- endpoints -----------------------------------------------------------------------------------------------

    def _create_repo(self, payload: dict[str, Any], headers: Mapping[str, str]) -> _Response:
        self._require_write(headers)
        if payload.get("type") not in (None, "model", "dataset"):
            raise HubError(400, "This test server hosts model and dataset repos only")
        name, namespace = payload.get("name", ""), payload.get("organization") or self.username
        if not (_NAME_RE.match(name) and _NAME_RE.match(namespace)):
            raise HubError(400, f"Invalid repo name: {namespace}/{name}")
        repo_id = ("datasets/" if payload.get("type") == "dataset" else "") + f"{namespace}/{name}"
        url = f"{self.url}/{repo_id}"
        if repo_id in self._repos:
            return _json(409, {"error": "You already created this model repo", "url": url})
        private = payload.get("visibility") == "private" or payload.get("private") is True
        self.add_repo(repo_id, private=private)
        return _json(200, {"url": url, "name": repo_id, "id": hashlib.sha1(repo_id.encode()).hexdigest()[:24]})

    def _delete_repo(self, payload: dict[str, Any], headers: Mapping[str, str]) -> _Response:
        repo_id = f"{payload.get('organization') or self.username}/{payload.get('name', '')}"
        self._writable_repo(repo_id, headers)
        del self._repos[repo_id]
        return _Response(200)

    def _validate_yaml(self, payload: dict[str, Any]) -> _Response:
        content = payload.get("content", "")
        if content.startswith("---") and "\n---" not in content[3:]:
            return _json(400, {"errors": [{"message": "YAML front matter is not closed with '---'"}], "warnings": []})
        return _json(200, {"errors": [], "warnings": []})

    def _info(self, repo_id: str, revision: str, headers: Mapping[str, str]) -> _Response:
        repo = self._readable_repo(repo_id, headers)
        commit = self._resolve(repo, revision)
        siblings = [
            {"rfilename": p, "size": len(b), "blobId": git_blob_sha1(b)} for p, b in sorted(commit.files.items())
        ]
        return _json(
            200,
            {
                "_id": hashlib.sha1(repo_id.encode()).hexdigest()[:24],
                "id": repo_id,
                "modelId": repo_id,
                "author": repo_id.split("/")[0],
                "sha": commit.oid,
                "lastModified": commit.date,
                "createdAt": repo.created_at,
                "private": repo.private,
                "disabled": False,
                "gated": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "siblings": siblings,
                "usedStorage": sum(len(b) for b in commit.files.values()),
            },
        )

    def _tree(self, repo_id: str, revision: str, base: str, recursive: bool, headers: Mapping[str, str]) -> _Response:
        commit = self._resolve(self._readable_repo(repo_id, headers), revision)
        base = base.strip("/")
        prefix = f"{base}/" if base else ""
        under = sorted(p for p in commit.files if p.startswith(prefix))
        if base and not under:
            raise HubError(404, f"{base} does not exist on {revision}", "EntryNotFound")
        entries: dict[str, dict[str, Any]] = {}
        for path in under:
            parts = path[len(prefix) :].split("/")
            depth = len(parts) if recursive else 1
            for i in range(1, min(depth, len(parts) - 1) + 1):  # folders on the way down
                folder = prefix + "/".join(parts[:i])
                entries[folder] = {"type": "directory", "path": folder, "size": 0, "oid": _sha1(folder, commit.oid)}
            if recursive or len(parts) == 1:
                data = commit.files[path]
                entries[path] = {"type": "file", "path": path, "size": len(data), "oid": git_blob_sha1(data)}
        return _json(200, [entries[p] for p in sorted(entries)])

    def _list_commits(self, repo_id: str, revision: str, headers: Mapping[str, str]) -> _Response:
        repo = self._readable_repo(repo_id, headers)
        by_oid = {c.oid: c for c in repo.commits}
        commit: Commit | None = self._resolve(repo, revision)
        items = []
        while commit is not None:
            items.append(
                {
                    "id": commit.oid,
                    "title": commit.title,
                    "message": commit.description,
                    "authors": [{"user": self.username}],
                    "date": commit.date,
                }
            )
            commit = by_oid.get(commit.parent) if commit.parent else None
        return _json(200, items)

    def _preupload(self, repo_id: str, revision: str, payload: dict[str, Any], headers: Mapping[str, str]) -> _Response:
        repo = self._writable_repo(repo_id, headers)
        current = self._resolve(repo, revision).files
        files = [
            {
                "path": f["path"],
                "uploadMode": "regular",
                "shouldIgnore": False,
                "oid": git_blob_sha1(current[f["path"]]) if f["path"] in current else None,
            }
            for f in payload.get("files", [])
        ]
        return _json(200, {"files": files, "commitOid": repo.branches.get(revision)})

    def _create_commit(
        self, repo_id: str, revision: str, query: dict[str, str], body: bytes, headers: Mapping[str, str]
    ) -> _Response:
        repo = self._writable_repo(repo_id, headers)
        if self.fail_next_commit:
            self.fail_next_commit = False
            raise HubError(500, "Simulated failure: the commit was not stored")
        if query.get("create_pr"):
            raise HubError(400, "Pull requests are not supported by this test server")
        if revision not in repo.branches:
            raise HubError(404, f"Invalid rev id: {revision} (commits go to a branch)", "RevisionNotFound")
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "The first NDJSON line of a commit must be its header")
        header = lines[0]["value"]
        head = self._resolve(repo, revision)
        if header.get("parentCommit") not in (None, head.oid):
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        files = dict(head.files)
        for line in lines[1:]:
            _apply_operation(files, line.get("key"), line.get("value", {}))
        commit = self._commit(repo, revision, header.get("summary") or "", header.get("description") or "", files)
        url = f"{self.url}/{repo_id}/commit/{commit.oid}"
        return _json(200, {"success": True, "commitOid": commit.oid, "commitUrl": url, "pullRequestUrl": None})

    def _resolve_file(self, repo_id: str, revision: str, path: str, headers: Mapping[str, str]) -> _Response:
        commit = self._resolve(self._readable_repo(repo_id, headers), revision)
        if path not in commit.files:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": commit.oid})
        data = commit.files[path]
        out = {
            "X-Repo-Commit": commit.oid,
            "ETag": f'"{git_blob_sha1(data)}"',
            "Content-Type": "application/octet-stream",
            "Accept-Ranges": "bytes",
        }
        match = _RANGE_RE.match(headers.get("Range") or "")
        if match and (match[1] or match[2]):
            start = int(match[1]) if match[1] else max(len(data) - int(match[2]), 0)
            end = min(int(match[2]), len(data) - 1) if match[1] and match[2] else len(data) - 1
            if start >= len(data) or start > end:
                return _Response(416, b"", {**out, "Content-Range": f"bytes */{len(data)}"})
            return _Response(206, data[start : end + 1], {**out, "Content-Range": f"bytes {start}-{end}/{len(data)}"})
        return _Response(200, data, out)


def _sha1(*parts: str) -> str:
    return hashlib.sha1("\0".join(parts).encode()).hexdigest()


def _check_path(path: Any) -> str:
    if not isinstance(path, str) or not path or path.startswith("/") or ".." in path.split("/"):
        raise HubError(400, f"Invalid path in commit: {path!r}")
    return path


def _apply_operation(files: dict[str, bytes], key: str | None, value: dict[str, Any]) -> None:
    """Apply one NDJSON commit operation to a snapshot being built."""
    path = _check_path(value.get("path"))
    if key == "file":
        content = value.get("content", "")
        files[path] = base64.b64decode(content) if value.get("encoding") == "base64" else content.encode()
    elif key == "deletedFile":
        if files.pop(path, None) is None:
            raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
    elif key == "deletedFolder":
        doomed = [p for p in files if p.startswith(path.rstrip("/") + "/")]
        if not doomed:
            raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
        for p in doomed:
            del files[p]
    elif key == "lfsFile":
        raise HubError(400, "LFS files are not supported here: preupload answers 'regular' for every file")
    else:
        raise HubError(400, f"Unknown commit operation: {key!r}")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    hub: HubServer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30  # close idle keep-alive connections eventually
    disable_nagle_algorithm = True  # headers and body go out in two writes: avoid the delayed-ACK stall
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: pytest shows failures, not access logs."""

    def do_GET(self) -> None:  # http.server's naming
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline().strip():  # trailers
                pass
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(split.query).items()}
        try:
            body = self._read_body()
            response = self.server.hub.handle(method, split.path, query, self.headers, body)  # type: ignore[arg-type]
        except HubError as err:
            response = err.response()
        except Exception as err:  # a bug in the server must reach the test as a 500, not a hang
            response = HubError(500, f"hub_server error: {err!r}").response()
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(response.body)


@contextlib.contextmanager
def _patched(target: Any, values: Mapping[str, Any]) -> Iterator[None]:
    """Set attributes on ``target`` (only those it already has) and restore them on exit."""
    saved = {name: getattr(target, name) for name in values if hasattr(target, name)}
    try:
        for name in saved:
            setattr(target, name, values[name])
        yield
    finally:
        for name, value in saved.items():
            setattr(target, name, value)


@contextlib.contextmanager
def _patched_env(values: Mapping[str, str | None]) -> Iterator[None]:
    """Set (or, for None, unset) environment variables and restore them on exit."""
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def point_hub_client_at(
    url: str, *, token: str | None = None, home: str | os.PathLike[str] | None = None
) -> Iterator[Path]:
    """Point the already-imported ``huggingface_hub`` at ``url`` for the duration of the block.

    ``huggingface_hub`` reads its settings once, at import, into ``huggingface_hub.constants`` (and the module-level
    ``huggingface_hub.hf_api.api`` behind ``huggingface_hub.create_repo`` & co. keeps its own ``endpoint``), so
    setting environment variables later is not enough: this patches those attributes and the environment, and
    restores both on exit. Xet and telemetry are disabled, offline mode is off, the cache lives in ``home`` (a
    temporary directory unless given), and the token is ``token`` (``HF_TOKEN``) or none at all: no ambient token
    file, ``HUGGING_FACE_HUB_TOKEN`` or OIDC setting leaks in. The shared HTTP session is closed on entry and exit.

    Args:
        url: the server's base URL, e.g. ``HubServer().start().url``.
        token: exported as ``HF_TOKEN`` so calls without ``token=`` are authenticated; None means anonymous.
        home: directory used as ``HF_HOME`` (the hub cache is ``home/hub``).

    Yields:
        The ``HF_HOME`` directory.

    Example:
        >>> with HubServer() as server, point_hub_client_at(server.url, token=server.token) as home:
        ...     from huggingface_hub import whoami
        ...     whoami()["name"]
        'test-user'
    """
    import huggingface_hub.hf_api as hf_api  # import before touching the environment: originals stay the user's
    from huggingface_hub import close_session, constants

    url = url.rstrip("/")
    with contextlib.ExitStack() as stack:
        home_path = Path(home) if home is not None else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        home_path.mkdir(parents=True, exist_ok=True)
        cache, token_path = str(home_path / "hub"), str(home_path / "token")
        no_proxy = ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1", "localhost"]))
        stack.enter_context(
            _patched_env(
                {
                    "HF_ENDPOINT": url,
                    "HF_HOME": str(home_path),
                    "HF_HUB_CACHE": cache,
                    "HF_TOKEN_PATH": token_path,
                    "HF_TOKEN": token,
                    "HUGGING_FACE_HUB_TOKEN": None,
                    "HF_OIDC_RESOURCE": None,
                    "HF_OIDC_ID_TOKEN": None,
                    "HF_HUB_DISABLE_XET": "1",
                    "HF_HUB_DISABLE_TELEMETRY": "1",
                    "HF_HUB_OFFLINE": "0",
                    "TRANSFORMERS_OFFLINE": None,
                    "NO_PROXY": no_proxy,
                    "no_proxy": no_proxy,
                }
            )
        )
        host = urlsplit(url).hostname or "127.0.0.1"
        constant_values = {
            "ENDPOINT": url,
            "HUGGINGFACE_CO_URL_TEMPLATE": url + "/{repo_id}/resolve/{revision}/{filename}",
            "HF_URL_HOSTS": frozenset(getattr(constants, "HF_URL_HOSTS", frozenset())) | {host},
            "HF_HUB_DISABLE_XET": True,
            "HF_HUB_DISABLE_TELEMETRY": True,
            "HF_HUB_OFFLINE": False,
            "HF_HOME": str(home_path),
            "HF_HUB_CACHE": cache,
            "HUGGINGFACE_HUB_CACHE": cache,
            "HF_ASSETS_CACHE": str(home_path / "assets"),
            "HUGGINGFACE_ASSETS_CACHE": str(home_path / "assets"),
            "HF_XET_CACHE": str(home_path / "xet"),
            "HF_TOKEN_PATH": token_path,
            "HF_STORED_TOKENS_PATH": str(home_path / "stored_tokens"),
        }
        stack.enter_context(_patched(constants, constant_values))
        stack.enter_context(_patched(hf_api.api, {"endpoint": url}))
        datasets_config = sys.modules.get("datasets.config")  # `datasets` also reads its settings once, at import
        if datasets_config is not None:
            stack.enter_context(_patched(datasets_config, {
                "HF_ENDPOINT": url,
                "HUB_DATASETS_URL": url + "/datasets/{repo_id}/resolve/{revision}/{path}",
                "HF_HUB_OFFLINE": False,
                "HF_DATASETS_OFFLINE": False,
                "HF_DATASETS_CACHE": home_path / "datasets",
                "HF_MODULES_CACHE": home_path / "modules",
                "DOWNLOADED_DATASETS_PATH": home_path / "datasets" / "downloads",
                "EXTRACTED_DATASETS_PATH": home_path / "datasets" / "downloads" / "extracted",
            }))  # fmt: skip
        close_session()
        stack.callback(close_session)
        yield home_path
