"""The Starlette application: one table of routes matched against the raw (still %-encoded) request path.

Routes are matched on the raw path because the client %-encodes revisions (`refs%2Fpr%2F1`, `feature%2Fx`)
that would be indistinguishable from file paths once decoded; each captured part is decoded on its own, then
validated.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hubport.server import files, redirects, repos, trees
from hubport.server.auth import Auth
from hubport.server.context import Hub, error_headers
from hubport.server.names import REPO_TYPES, ApiError, repo_key
from hubport.server.storage import Store

Handler = Callable[..., Awaitable[Response]]
_API = r"/api/(?P<t>models|datasets|spaces)/(?P<ns>[^/]+)/(?P<name>[^/]+)"
_WEB = r"/(?:(?P<t>datasets|spaces)/)?(?P<ns>[^/]+)/(?P<name>[^/]+)"
_OBJ = r"/(?P<t>models|datasets|spaces)/(?P<ns>[^/]+)/(?P<name>[^/]+)/(?P<oid>[0-9a-f]{64})"

ROUTES: list[tuple[frozenset[str], re.Pattern[str], Handler]] = [
    (frozenset(methods.split()), re.compile(f"^{pattern}$"), handler)
    for methods, pattern, handler in [
        ("GET", r"/api/whoami-v2", repos.whoami),
        ("POST", r"/api/repos/create", repos.create_repo),
        ("DELETE", r"/api/repos/delete", repos.delete_repo),
        ("POST", r"/api/validate-yaml", repos.validate_yaml),
        ("POST", r"/api/repos/move", redirects.move_repo),
        ("GET", r"/api/(?P<t>models|datasets|spaces)", repos.list_repos),
        ("GET", _API + r"(?:/revision/(?P<rev>[^/]+))?", repos.repo_info),
        ("GET", _API + r"/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?", trees.tree),
        ("POST", _API + r"/paths-info/(?P<rev>[^/]+)", trees.paths_info),
        ("GET", _API + r"/refs", repos.refs),
        ("GET", _API + r"/commits/(?P<rev>[^/]+)", repos.commits),
        ("POST DELETE", _API + r"/branch/(?P<ref>[^/]+)", repos.branch),
        ("POST DELETE", _API + r"/tag/(?P<ref>[^/]+)", repos.tag),
        ("PUT", _API + r"/settings", repos.settings),
        ("POST", _API + r"/preupload/(?P<rev>[^/]+)", files.preupload),
        ("POST", _API + r"/commit/(?P<rev>[^/]+)", files.commit),
        ("POST", _WEB + r"\.git/info/lfs/objects/batch", files.lfs_batch),
        ("PUT", r"/lfs-upload" + _OBJ, files.lfs_upload),
        ("POST", r"/lfs-verify" + _OBJ, files.lfs_verify),
        ("GET HEAD", _WEB + r"/resolve/(?P<rev>[^/]+)/(?P<path>.+)", files.resolve),
    ]
]


def _match(method: str, raw_path: str) -> tuple[Handler, dict[str, str]]:
    allowed = False
    for methods, pattern, handler in ROUTES:
        found = pattern.match(raw_path)
        if found and method in methods:
            return handler, {k: unquote(v) for k, v in found.groupdict().items() if v is not None}
        allowed = allowed or bool(found)
    raise ApiError(405 if allowed else 404, f"no route for {method} {raw_path}")


async def _dispatch(request: Request) -> Response:
    hub: Hub = request.app.state.hub
    raw_path = request.scope.get("raw_path", b"").decode("latin-1").split("?")[0]
    reading = request.method in ("GET", "HEAD")
    moved = redirects.moved(hub, raw_path, request.url.query) if reading else None
    if moved is not None:
        return moved
    try:
        handler, params = _match(request.method, raw_path)
    except ApiError as exc:
        found = redirects.legacy(raw_path, request.url.query) if reading and exc.status == 404 else None
        if found is None:
            raise
        return found
    if "ns" in params:
        repo_type = REPO_TYPES[params.pop("t", "models")]
        params["key"] = repo_key(repo_type, params.pop("ns"), params.pop("name"))
    return await handler(hub, request, **params)


async def _api_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, ApiError):  # registered for ApiError only; this narrows the type
        raise exc
    return JSONResponse({"error": exc.message}, exc.status, headers=error_headers(exc))


async def _gone(request: Request, exc: Exception) -> Response:
    """A client that hung up mid-body (or sent less than its Content-Length): nothing was changed, no traceback."""
    return JSONResponse({"error": "the request body ended before its Content-Length"}, 400)


def create_app(root: Path, *, write_tokens=(), read_tokens=()) -> Starlette:
    """A Starlette app serving the Hub stored under `root` (created if missing)."""
    app = Starlette(
        routes=[Route("/{path:path}", _dispatch, methods=["GET", "HEAD", "POST", "PUT", "DELETE"])],
        exception_handlers={ApiError: _api_error, ClientDisconnect: _gone},
    )
    app.state.hub = Hub(Store(Path(root)), Auth.of(write_tokens, read_tokens))
    return app
