"""Listings of a revision's files: the tree API and paths-info, with git oids and LFS pointer details.

Entries follow the Hub: files carry their git blob oid and size, LFS files also `lfs: {oid (sha256), size,
pointerSize}`, which the client uses to skip unchanged files and to check downloads; folders get a stable oid.
"""

from __future__ import annotations

import hashlib

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hubport.server.context import TRUE, Hub, items, json_body
from hubport.server.names import RepoKey, entry_not_found
from hubport.server.storage import lfs_pointer


def lfs_info(entry: dict) -> dict:
    """The `lfs` block of a tree entry or sibling: sha256, size and the size of the git pointer file."""
    pointer_size = len(lfs_pointer(entry["sha256"], entry["size"]))
    return {"oid": entry["sha256"], "size": entry["size"], "pointerSize": pointer_size}


def _file_row(path: str, entry: dict) -> dict:
    row = {"type": "file", "path": path, "size": entry["size"], "oid": entry["oid"]}
    if entry["lfs"]:
        row["lfs"] = lfs_info(entry)
    return row


def _dir_row(path: str, files: dict) -> dict:
    inside = "\n".join(sorted(f"{p}:{e['oid']}" for p, e in files.items() if p.startswith(path + "/")))
    return {"type": "directory", "path": path, "size": 0, "oid": hashlib.sha1(inside.encode()).hexdigest()}


async def tree(hub: Hub, request: Request, key: RepoKey, rev: str, path: str | None = None) -> Response:
    hub.readable(request, key)
    oid = hub.resolve(key, rev)
    files = hub.store.commit(key, oid)["files"]
    prefix = (path or "").strip("/")
    under = {p: e for p, e in files.items() if not prefix or p.startswith(prefix + "/")}
    if prefix and not under:
        raise entry_not_found(prefix, oid)
    if request.query_params.get("recursive") in TRUE:
        dirs = {p.rsplit("/", i)[0] for p in under for i in range(1, p.count("/") + 1)}
        rows = [_dir_row(d, files) for d in sorted(dirs) if not prefix or d.startswith(prefix + "/")]
        return JSONResponse(rows + [_file_row(p, e) for p, e in sorted(under.items())])
    depth = prefix.count("/") + 1 if prefix else 0
    children = {"/".join(p.split("/")[: depth + 1]) for p in under}
    return JSONResponse(
        [_file_row(c, files[c]) if c in files else _dir_row(c, files) for c in sorted(children)]
    )


async def paths_info(hub: Hub, request: Request, key: RepoKey, rev: str) -> Response:
    hub.readable(request, key)
    files = hub.store.commit(key, hub.resolve(key, rev))["files"]
    body = await json_body(request)
    paths = [body["paths"]] if isinstance(body.get("paths"), str) else items(body, "paths", str, "file paths")
    rows = []
    for path in (p.strip("/") for p in paths):
        if path in files:
            rows.append(_file_row(path, files[path]))
        elif any(p.startswith(path + "/") for p in files):
            rows.append(_dir_row(path, files))
    return JSONResponse(rows)
