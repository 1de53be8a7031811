"""Names the server accepts (repo ids, revisions, file paths) and the typed errors it answers with.

Every name that reaches the disk is checked here first, so that no repo id, branch or file path can escape the
served root (`..`, absolute paths, NUL, backslashes). Errors carry the `X-Error-Code` the huggingface_hub
client turns into its own exception classes (RepositoryNotFoundError, RevisionNotFoundError,
EntryNotFoundError).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_RESERVED = {"api", "models", "datasets", "spaces", "lfs", "resolve"}
_REF = re.compile(r"^[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*$")
COMMIT_OID = re.compile(r"^[0-9a-f]{40}$")
SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ApiError(Exception):
    """An HTTP error answer: status, optional X-Error-Code, a message, and extra headers."""

    def __init__(
        self, status: int, message: str, code: str | None = None, headers: dict | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code
        self.headers = dict(headers or {})


def repo_not_found(repo_id: str) -> ApiError:
    """The answer for a repo that does not exist or that the caller may not see (private: like the Hub)."""
    return ApiError(404, f"Repository {repo_id} not found", "RepoNotFound")


def revision_not_found(rev: str) -> ApiError:
    """The answer for a branch, tag or commit that is not in the repo."""
    return ApiError(404, f"Invalid rev id: {rev}", "RevisionNotFound")


def entry_not_found(path: str, commit: str) -> ApiError:
    """The answer for a missing file; X-Repo-Commit lets the client cache the miss."""
    return ApiError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": commit})


def bad_request(message: str) -> ApiError:
    """The answer for malformed input (names, bodies)."""
    return ApiError(400, message)


@dataclass(frozen=True)
class RepoKey:
    """A repo: its type (model, dataset, space), namespace and name."""

    type: str
    namespace: str
    name: str

    @property
    def repo_id(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def url_path(self) -> str:
        """The repo's path on the web side: `ns/name`, `datasets/ns/name` or `spaces/ns/name`."""
        return f"{URL_PREFIXES[self.type]}{self.repo_id}"


def check_name(part: str, what: str = "repo name") -> str:
    """A namespace or repo name as huggingface_hub validates it (letters, digits, `-`, `_`, `.`; no `..`, no `.git`
    suffix), and none of the server's own path words."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        valid = "/" not in part and validate_repo_id(part) is None
    except HFValidationError:
        valid = False
    if not valid or part.lower() in _RESERVED:
        raise bad_request(f"invalid {what} {part!r}: use letters, digits, '-', '_' and '.' (no '..')")
    return part


def repo_key(repo_type: str, namespace: str, name: str) -> RepoKey:
    """Build a RepoKey from URL parts, refusing anything that could escape the root."""
    if repo_type not in URL_PREFIXES:
        raise bad_request(f"invalid repo type '{repo_type}': use model, dataset or space")
    return RepoKey(repo_type, check_name(namespace, "namespace"), check_name(name))


def check_ref_name(ref: str) -> str:
    """A branch or tag name: safe path-like segments, no `..`, no leading or trailing `/`."""
    if not _REF.match(ref) or ".." in ref or ref.endswith((".lock", "/")) or COMMIT_OID.match(ref):
        raise bad_request(f"invalid branch or tag name {ref!r}")
    return ref


def check_path(path: str) -> str:
    """A file path inside a repo: relative, `/`-separated, no empty, `.` or `..` segments, no NUL or `\\`."""
    segments = path.split("/")
    bad = (
        not path
        or "\x00" in path
        or "\\" in path
        or path.startswith("/")
        or any(s in ("", ".", "..") for s in segments)
        or segments[0] == ".git"
        or len(path) > 1000
    )
    if bad:
        raise bad_request(f"invalid file path {path!r}: use a relative path without '..', '\\\\' or NUL")
    return path
