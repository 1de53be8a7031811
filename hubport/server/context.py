"""What every request handler needs: the store, the tokens, and the checks that decide who sees which repo.

Handlers change state only in synchronous code that runs after their last `await`, so the single event loop
serializes every read-check-write sequence (e.g. "head is X, write commit, move branch") without a lock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import parse_qs

from starlette.requests import ClientDisconnect, Request

from hubport.server.auth import Auth
from hubport.server.names import ApiError, RepoKey, bad_request, repo_not_found, revision_not_found
from hubport.server.storage import Store

TRUE = {"1", "true", "True", "yes"}


@dataclass(frozen=True)
class Hub:
    """The served state, passed explicitly to every handler."""

    store: Store
    auth: Auth

    def can_see(self, request: Request, key: RepoKey) -> bool:
        """True if the repo exists and the caller may read it (private repos need a valid token)."""
        role = self.auth.role(request.headers.get("authorization"))
        return self.store.exists(key) and (role is not None or not self.store.meta(key)["private"])

    def readable(self, request: Request, key: RepoKey) -> RepoKey:
        """The repo, or 404 RepoNotFound when it is missing or hidden from this caller."""
        if not self.can_see(request, key):
            raise repo_not_found(key.repo_id)
        return key

    def writable(self, request: Request, key: RepoKey) -> str:
        """Check write access (token first: nothing leaks to anonymous callers); returns the author name."""
        author = self.auth.require_write(request.headers.get("authorization"))
        if not self.store.exists(key):
            raise repo_not_found(key.repo_id)
        return author

    def resolve(self, key: RepoKey, rev: str) -> str:
        """A revision -> commit oid, or 404 RevisionNotFound."""
        oid = self.store.resolve(key, rev)
        if oid is None:
            raise revision_not_found(rev)
        return oid

    def branch_head(self, key: RepoKey, branch: str) -> str:
        """The head of a branch that commits may go to (tags and commit ids are not branches)."""
        oid = self.store.ref(key, "heads", branch.removeprefix("refs/heads/"))
        if oid is None:
            raise revision_not_found(branch)
        return oid


def base_url(request: Request) -> str:
    """The server's own URL as the client reached it (for `url`, `commitUrl` and LFS hrefs)."""
    return str(request.base_url).rstrip("/")


def no_pull_requests(request: Request) -> None:
    """Pull requests are not served: refuse create_pr instead of silently committing to the branch."""
    if request.query_params.get("create_pr") in TRUE:
        raise bad_request("create_pr is not supported by this server: commit to a branch instead")


MAX_JSON_BODY = 16 * 1024 * 1024
MAX_COMMIT_BODY = 1024 * 1024 * 1024  # regular files travel base64 inside the commit; LFS files never do


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused (413) past `limit` or a Content-Length above it; 400 when it ends early."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise ApiError(413 if declared.isdigit() else 400, f"request body over {limit} bytes, or a bad Content-Length")
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"request body over {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise bad_request("the request body ended before its Content-Length") from None
    return b"".join(chunks)


def items(body: dict, name: str, kind: type, what: str) -> list:
    """`body[name]` as a list of `kind` (missing: empty), or 400 naming the field."""
    value = body.get(name) or []
    if not isinstance(value, list) or not all(isinstance(v, kind) for v in value):
        raise bad_request(f"'{name}' must be a list of {what}")
    return value


async def json_body(request: Request) -> dict:
    """The request body as a JSON object (or form fields, which some client versions send); 400 otherwise."""
    raw = await read_body(request, MAX_JSON_BODY)
    if not raw:
        return {}
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        form = parse_qs(raw.decode("utf-8", "replace"))
        return {k: v if k == "paths" else v[-1] for k, v in form.items()}
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise bad_request(f"request body is not valid JSON: {exc}") from exc
    except RecursionError:
        raise bad_request("request body is nested too deep") from None
    if not isinstance(body, dict):
        raise bad_request("request body must be a JSON object")
    return body


def error_headers(exc: ApiError) -> dict[str, str]:
    """X-Error-Code / X-Error-Message plus any extra headers, ASCII-safe."""
    printable = "".join(c if " " <= c <= "~" else "?" for c in exc.message)
    headers = {"X-Error-Message": printable, **exc.headers}
    if exc.code:
        headers["X-Error-Code"] = exc.code
    return headers
