"""Talking to the Hugging Face Hub: download a saved model folder, upload one in a single commit.

Everything goes through the real ``huggingface_hub`` client, looked up at call time (so ``HF_ENDPOINT`` and a
patched client are honoured). Tokens come from huggingface_hub's usual places (the ``token`` argument,
``HF_TOKEN``, ``hf auth login``); they are never logged, written or put into an error message. Every error the
client raises is turned into a :class:`~robust_prune.errors.HubError` that says what to do.

Example:
    >>> import robust_prune as rp
    >>> from robust_prune.publishing.hub_remote import download_folder
    >>> result = rp.robustify("test_resnet", epochs=0, finetune_epochs=0, eval_n=8, eval_steps=1, progress=False)
    >>> url = result.push_to_hub("me/test_resnet-digits-robust")
    >>> folder = download_folder("me/test_resnet-digits-robust")
    >>> sorted(p.name for p in folder.iterdir())
    ['README.md', 'config.json', 'model.safetensors', 'report.json', 'report.md']
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, cast

from ..errors import HubError, NotARobustPruneFolderError

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "FOLDER_FILES",
    "PushOptions",
    "checked_push",
    "download_folder",
    "resolve_token",
    "upload_folder",
    "validate_repo_id",
]

# The files of a saved folder that travel to and from the Hub (nothing else: no pickles, no stray files).
FOLDER_FILES = ("config.json", "model.safetensors", "masks.safetensors", "report.json", "report.md", "README.md")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def validate_repo_id(repo_id: str) -> str:
    """Check a Hub repository id (``"name"`` or ``"namespace/name"``); returns it unchanged.

    Raises:
        HubError: with the rules a repository id has to follow.

    Example:
        >>> validate_repo_id("me/resnet10t-digits")
        'me/resnet10t-digits'
    """
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id as _validate

    if not isinstance(repo_id, str) or not repo_id:
        raise HubError(f"A Hub repository id must be a non-empty string like 'me/my-model', got {repo_id!r}.")
    try:
        _validate(repo_id)
    except HFValidationError as exc:
        raise HubError(
            f"{repo_id!r} is not a valid Hub repository id: use 'namespace/name' (or 'name'), with letters, digits, "
            f"'-', '_' and '.', at most 96 characters ({exc})."
        ) from None
    return repo_id


def resolve_token(token: str | None = None) -> str:
    """The token to write with: ``token`` if given, else ``HF_TOKEN`` or the one saved by ``hf auth login``.

    Raises:
        HubError: when there is none, saying how to provide one.

    Example:
        >>> resolve_token("hf_xxx")
        'hf_xxx'
    """
    if token:
        return token
    from huggingface_hub import get_token

    found = get_token()
    if not found:
        raise HubError(
            "No Hugging Face token found, and pushing needs one with write access. Pass token=..., set the "
            "HF_TOKEN environment variable, or run `hf auth login`."
        )
    return found


def _network_errors() -> tuple[type[BaseException], ...]:
    """The HTTP library's transport errors (huggingface_hub has used requests, httpx and httpx2)."""
    found: list[type[BaseException]] = []
    for module, name in (("httpx2", "TransportError"), ("httpx", "TransportError"), ("requests", "ConnectionError")):
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(found)


def _scrub(text: str, token: str | None) -> str:
    return text.replace(token, "***") if token else text


@contextlib.contextmanager
def _hub_errors(action: str, repo_id: str, token: str | None = None, revision: str | None = None) -> Iterator[None]:
    """Translate huggingface_hub / network errors raised in the block into HubError (never echoing the token)."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{repo_id}@{revision}" if revision else repo_id
    try:
        yield
    except GatedRepoError as exc:
        raise HubError(f"Cannot {action} {where}: the repository is gated; request access on its page first.") from exc
    except RepositoryNotFoundError as exc:
        raise HubError(
            f"Cannot {action} {where}: the repository does not exist or your token cannot see it. Check the id; "
            "for a private repository pass token=... or set HF_TOKEN."
        ) from exc
    except RevisionNotFoundError as exc:
        raise HubError(
            f"Cannot {action} {where}: the revision {revision!r} does not exist. Use an existing branch, tag or "
            "commit (create a branch first with huggingface_hub.create_branch)."
        ) from exc
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as exc:
        raise HubError(
            f"Cannot {action} {where}: the Hub could not be reached and nothing is cached. Check the network "
            "(and HF_ENDPOINT / HF_HUB_OFFLINE) and try again."
        ) from exc
    except RemoteEntryNotFoundError as exc:
        raise NotARobustPruneFolderError(
            f"{where} has no config.json and model.safetensors: it does not hold a robust_prune model."
        ) from exc
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status in (401, 403):
            raise HubError(
                f"Cannot {action} {where}: the Hub refused the token (HTTP {status}). Use a token with write access "
                "to this namespace (token=..., HF_TOKEN or `hf auth login`)."
            ) from None
        raise HubError(
            f"Cannot {action} {where}: the Hub answered HTTP {status} ({_scrub(str(exc).splitlines()[0], token)}). "
            "Nothing was committed; try again later."
        ) from None
    except (*_network_errors(), ConnectionError, TimeoutError) as exc:
        raise HubError(
            f"Cannot {action} {where}: network failure ({type(exc).__name__}). Nothing was committed; check the "
            "connection and try again."
        ) from None


def download_folder(
    repo_id: str,
    *,
    revision: str | None = None,
    token: str | bool | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool = False,
    check_config: Callable[[Path], None] | None = None,
) -> Path:
    """Download the files of a saved robust_prune model (config, safetensors, report, card) from the Hub.

    config.json comes first and is given to ``check_config`` (which raises to refuse the repository) before any
    other file is fetched; the rest comes from the same commit. Only :data:`FOLDER_FILES` are fetched; nothing is
    unpickled. Returns the local snapshot folder. ``token``, ``cache_dir`` and ``local_files_only`` are
    huggingface_hub's.

    Raises:
        HubError: invalid id, missing repository or revision, or network failure.
        NotARobustPruneFolderError: the repository holds no config.json / model.safetensors.

    Example:
        >>> import timm, robust_prune as rp
        >>> model, record = rp.prune(timm.create_model("test_resnet", num_classes=10), 0.5)
        >>> url = rp.push_to_hub(model, "me/test_resnet-pruned", record=record)
        >>> (download_folder("me/test_resnet-pruned", revision="main") / "config.json").is_file()
        True
    """
    from huggingface_hub import snapshot_download

    validate_repo_id(repo_id)
    where = {"token": token, "cache_dir": cache_dir, "local_files_only": local_files_only}
    with _hub_errors("download", repo_id, token if isinstance(token, str) else None, revision):
        folder = Path(snapshot_download(repo_id, revision=revision, allow_patterns=["config.json"], **where))
    if not (folder / "config.json").is_file():
        raise NotARobustPruneFolderError(f"{repo_id} has no config.json: it does not hold a robust_prune model.")
    if check_config is not None:
        check_config(folder / "config.json")
    # the snapshot folder is named after the commit it holds: fetch the rest from exactly that commit
    commit = folder.name if _COMMIT.match(folder.name) else revision
    with _hub_errors("download", repo_id, token if isinstance(token, str) else None, revision):
        folder = Path(snapshot_download(repo_id, revision=commit, allow_patterns=list(FOLDER_FILES), **where))
    if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
        raise NotARobustPruneFolderError(
            f"{repo_id} has no config.json and model.safetensors: it does not hold a robust_prune model."
        )
    return folder


class PushOptions(TypedDict, total=False):
    """How a push commits: the keywords of every publishing entry point (``robust_prune.push_to_hub``,
    ``robust_prune.push_folder``, ``RobustifyResult.push_to_hub`` and :func:`upload_folder`), declared once.

    Keys:
        private: create the repository private (an existing repository keeps its visibility); default False.
        token: a write token; defaults to ``HF_TOKEN`` or the saved login (never written or logged).
        revision: the branch to commit to (default ``main``).
        commit_message: defaults to ``"Upload robust_prune model"``.
    """

    private: bool
    token: str | None
    revision: str | None
    commit_message: str | None


def checked_push(repo_id: str, options: Mapping[str, Any]) -> PushOptions:
    """``options`` checked before anything is written or sent: the keywords (a ``TypeError`` names an unknown one,
    as a signature would), the repository id, and the token (resolved here, so a missing one fails first).

    Raises:
        TypeError: a keyword that is not one of :class:`PushOptions`.
        HubError: an invalid repository id, or no token.

    Example:
        >>> checked_push("me/resnet10t-digits", {"private": True, "token": "hf_xxx"})
        {'private': True, 'token': 'hf_xxx'}
    """
    unknown = sorted(set(options) - PushOptions.__optional_keys__)
    if unknown:
        known = ", ".join(sorted(PushOptions.__optional_keys__))
        raise TypeError(f"Unexpected keyword argument(s) for a push: {', '.join(unknown)} (known: {known}).")
    validate_repo_id(repo_id)
    return cast(PushOptions, {**options, "token": resolve_token(options.get("token"))})


def upload_folder(
    folder: str | os.PathLike[str],
    repo_id: str,
    *,
    prepare: Callable[[str], object] | None = None,
    **push: Unpack[PushOptions],
) -> str:
    """Create ``repo_id`` if needed and make its robust_prune files exactly ``folder``'s, in one commit.

    The commit adds the :data:`FOLDER_FILES` present in ``folder`` and deletes those the repository holds but
    ``folder`` does not (a stale ``masks.safetensors`` or report of the model pushed before); other files of the
    repository stay. It is made on top of the revision it was computed from, so a concurrent push fails instead
    of mixing two models.

    Args:
        folder: a folder written by ``save_pretrained``.
        repo_id: ``"namespace/name"`` (or ``"name"`` in the token's namespace).
        prepare: optional ``callable(resolved_repo_id)`` run after the repository exists and before the commit
            (used to write the model card with the final repository id).
        **push: :class:`PushOptions` (``private``, ``token``, ``revision``, ``commit_message``).

    Returns:
        The commit URL.

    Example:
        >>> import timm, robust_prune as rp
        >>> model, record = rp.prune(timm.create_model("test_resnet", num_classes=10), 0.5)
        >>> folder = rp.save_pretrained(model, "out/run1", record=record)
        >>> upload_folder(folder, "me/test_resnet-pruned")  # doctest: +ELLIPSIS
        'http.../me/test_resnet-pruned/commit/...'
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    push = checked_push(repo_id, push)
    token, revision = push["token"], push.get("revision")
    folder = Path(folder)
    api = HfApi(token=token, library_name="robust_prune")
    with _hub_errors("push to", repo_id, token, revision):
        repo_id = api.create_repo(repo_id, private=push.get("private", False), exist_ok=True).repo_id
        if callable(prepare):
            prepare(repo_id)
        head = api.model_info(repo_id, revision=revision)
        present = {sibling.rfilename for sibling in head.siblings or []}
        operations: list[CommitOperationAdd | CommitOperationDelete] = [
            CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(folder / name))
            for name in FOLDER_FILES
            if (folder / name).is_file()
        ]
        operations += [
            CommitOperationDelete(path_in_repo=name)
            for name in FOLDER_FILES
            if name in present and not (folder / name).is_file()
        ]
        info = api.create_commit(
            repo_id,
            operations,
            commit_message=push.get("commit_message") or "Upload robust_prune model",
            revision=revision,
            parent_commit=head.sha,
        )
    return str(info.commit_url)
