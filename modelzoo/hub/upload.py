"""The one Hub uploader: a dataset folder to a Hugging Face dataset repository.

``zoo publish`` and ``bench leaderboard publish`` both upload through :func:`upload_folder`:
repository ids are checked by ``huggingface_hub.utils.validate_repo_id``, the Hub is probed
first (fail fast, also in offline mode), and every network, auth or Hub error becomes one
:class:`PublishError` that says what to check.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from modelzoo.errors import ZooError


class PublishError(ZooError):
    """Uploading to the Hugging Face Hub failed (network, authentication, permissions)."""


def check_repo_id(repo_id: str) -> None:
    """Raise :class:`ZooError` unless ``repo_id`` is a valid ``user/name`` Hub repository id."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as e:
        raise ZooError(f"--repo-id must look like user/name, got {repo_id!r}: {e}") from None
    if "/" not in repo_id:
        raise ZooError(f"--repo-id must look like user/name (with the user), got {repo_id!r}")


def default_endpoint() -> str:
    """``HF_ENDPOINT`` or the Hub's URL, without a trailing slash."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def _offline() -> bool:
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE", "").strip().upper()
    return env in {"1", "ON", "YES", "TRUE"} or bool(constants.HF_HUB_OFFLINE)


def transport_errors() -> tuple[type[BaseException], ...]:
    """Exception types the Hub client raises for network failures (httpx or requests based)."""
    from huggingface_hub.errors import HfHubHTTPError

    errs: list[type[BaseException]] = [OSError, HfHubHTTPError]
    for mod in ("httpx2", "httpx", "requests"):
        try:
            m = __import__(mod)
        except ImportError:
            continue
        base = getattr(m, "HTTPError", None) or getattr(m, "RequestException", None)
        if isinstance(base, type):
            errs.append(base)
    return tuple(errs)


def hub_error(endpoint: str, e: BaseException) -> PublishError:
    """The :class:`PublishError` for a failed Hub request."""
    msg = str(e).splitlines()[0] if str(e) else e.__class__.__name__
    return PublishError(
        f"cannot publish to the Hugging Face Hub at {endpoint}: {msg}. Check the network, "
        "HF_ENDPOINT and your token (`hf auth login` or HF_TOKEN); or write the repository to "
        "a local folder with --out and upload it later"
    )


def check_reachable(endpoint: str, timeout: float) -> None:
    """Fail fast when offline mode is on or the Hub at ``endpoint`` does not answer."""
    if _offline():
        raise PublishError(
            "cannot publish to the Hugging Face Hub: offline mode is enabled (HF_HUB_OFFLINE=1). "
            "Unset it to upload, or write the repository to a local folder with --out"
        )
    from huggingface_hub import get_session

    try:
        get_session().get(f"{endpoint}/api/status", timeout=timeout)
    except transport_errors() as e:
        raise hub_error(endpoint, e) from None


def hub_api(endpoint: str, token: str | None) -> Any:
    """An ``HfApi`` client for ``endpoint``."""
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint, token=token)


def upload_folder(
    folder: str | Path,
    *,
    repo_id: str,
    commit_message: str,
    commit_description: str | None = None,
    private: bool = False,
    token: str | None = None,
    endpoint: str | None = None,
    delete_patterns: list[str] | None = None,
    tag: str | None = None,
    tag_message: str | None = None,
    timeout: float = 10.0,
    api: Any = None,
) -> str:
    """Create the dataset repository if needed, upload ``folder`` in one commit, tag it.

    Args:
        folder: the dataset folder (README.md card, data files).
        repo_id: ``user/name`` of the Hub dataset repository.
        commit_message: message of the upload commit.
        commit_description: its longer description.
        private: create the repository as private.
        token: Hub token (default: the logged-in token / ``HF_TOKEN``).
        endpoint: Hub URL (default :func:`default_endpoint`).
        delete_patterns: remote files to delete in the same commit (files that are gone).
        tag: also tag the commit (e.g. ``v1.0.0``).
        tag_message: the tag's message.
        timeout: seconds to wait for the Hub to answer the first request.
        api: an ``HfApi`` already talking to ``endpoint`` (checked reachable by the caller).

    Returns:
        The id of the upload commit.

    Raises:
        ZooError: an invalid ``repo_id``.
        PublishError: offline, no network or token, or the Hub refused (nothing is tagged).
    """
    check_repo_id(repo_id)
    endpoint = (endpoint or default_endpoint()).rstrip("/")
    if api is None:
        check_reachable(endpoint, timeout)
        api = hub_api(endpoint, token)
    try:
        api.create_repo(repo_id, repo_type="dataset", exist_ok=True, private=private)
        info = api.upload_folder(
            repo_id=repo_id, folder_path=str(folder), repo_type="dataset",
            commit_message=commit_message, commit_description=commit_description,
            delete_patterns=delete_patterns,
        )  # fmt: skip
        if tag is not None:
            api.create_tag(repo_id, tag=tag, repo_type="dataset", revision=info.oid,
                           tag_message=tag_message)  # fmt: skip
    except transport_errors() as e:
        raise hub_error(endpoint, e) from None
    return str(info.oid)
