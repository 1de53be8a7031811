"""Renamed and legacy repo ids, redirected the way the Hub does it (307 to the repo's current path).

The Hub keeps serving a moved repo under its old id, and its namespace-less legacy checkpoints (`t5-base`) under
`google-t5/`; huggingface_hub follows those redirects. Renames made here with `move_repo` are remembered in
`redirects.json` under the served root; an id without a namespace that names nothing is a typed 404.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hubport.hubids import LEGACY_T5
from hubport.server.context import Hub, json_body
from hubport.server.names import ApiError, RepoKey, bad_request, repo_key, repo_not_found

_PREFIX = r"(?P<pre>/api/models/|/)"
_SINGLE = re.compile(_PREFIX + r"(?P<name>[^/]+)(?P<rest>(?:/(?:resolve|revision|tree|refs|commits|paths-info)"
                     r"(?:/.*)?)?)$")
_DOUBLE = re.compile(_PREFIX + r"(?P<ns>[^/]+)/(?P<name>[^/]+)(?P<rest>/.*)?$")


def _file(root: Path) -> Path:
    return Path(root) / "redirects.json"


def load(root: Path) -> dict[str, str]:
    """Old repo id -> new repo id (models), as recorded by move_repo."""
    try:
        return json.loads(_file(root).read_text())
    except (OSError, ValueError):
        return {}


def _save(root: Path, table: dict[str, str]) -> None:
    tmp = _file(root).with_name(f".redirects.{uuid.uuid4().hex}.tmp")
    tmp.write_text(json.dumps(table, sort_keys=True, indent=1))
    os.replace(tmp, _file(root))


def moved(hub: Hub, raw_path: str, query: str) -> Response | None:
    """A 307 to the new id when `raw_path` names a model repo that move_repo renamed (and no repo took its id)."""
    double = _DOUBLE.match(raw_path)
    if double is None or (double["pre"] == "/" and not (double["rest"] or "").startswith("/resolve/")):
        return None
    table = load(hub.store.root)
    old = f"{double['ns']}/{double['name']}"
    if old not in table or hub.store.exists(repo_key("model", double["ns"], double["name"])):
        return None
    return _moved(double["pre"], table[old], double["rest"] or "", query)


def legacy(raw_path: str, query: str) -> Response | None:
    """For a path no route matched: a 307 when it names a legacy id, a typed 404 for another namespace-less id."""
    single = _SINGLE.match(raw_path)
    if single is None or (single["pre"] == "/" and not single["rest"].startswith("/resolve/")):
        return None
    new = LEGACY_T5.get(single["name"])
    if new is None:
        raise repo_not_found(single["name"])
    return _moved(single["pre"], new, single["rest"], query)


def _moved(prefix: str, new: str, rest: str, query: str) -> Response:
    location = f"{prefix}{new}{rest}" + (f"?{query}" if query else "")
    return Response(status_code=307, headers={"Location": location})


async def move_repo(hub: Hub, request: Request) -> Response:
    """`HfApi.move_repo`: rename a model repo and keep its old id redirecting to the new one."""
    hub.auth.require_write(request.headers.get("authorization"))
    body = await json_body(request)
    old, new = body.get("fromRepo"), body.get("toRepo")
    if not isinstance(old, str) or not isinstance(new, str) or old.count("/") != 1 or new.count("/") != 1:
        raise bad_request("body needs 'fromRepo' and 'toRepo' as namespace/name")
    if str(body.get("type") or "model") != "model":
        raise bad_request("only model repos can be moved on this server")
    src, dst = (repo_key("model", *r.split("/")) for r in (old, new))
    hub.writable(request, src)
    if hub.store.exists(dst):
        raise ApiError(409, f"Repository {new} already exists")
    _rename(hub, src, dst)
    table = {k: (new if v == old else v) for k, v in load(hub.store.root).items() if k != new}
    _save(hub.store.root, {**table, old: new})
    return JSONResponse({})


def _rename(hub: Hub, src: RepoKey, dst: RepoKey) -> None:
    target = hub.store.repo_dir(dst)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.rename(hub.store.repo_dir(src), target)


