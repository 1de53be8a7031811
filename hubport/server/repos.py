"""Repo-level API: whoami, create/delete, info, tree, paths-info, refs, commits, branches, tags, settings.

Response shapes follow what huggingface_hub 0.36 parses (see shared/research/hub.md §2.1): `id` and `sha` in
repo info, `url` in both the 200 and the 409 answer of create_repo, typed 404s for repos and revisions.
"""

from __future__ import annotations

import hashlib

import yaml
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hubport.server.auth import USER
from hubport.server.context import TRUE, Hub, base_url, json_body
from hubport.server.names import ApiError, RepoKey, bad_request, check_ref_name, entry_not_found, repo_key

CARD_MAX_BYTES = 1_000_000


async def whoami(hub: Hub, request: Request) -> Response:
    role = hub.auth.role(request.headers.get("authorization"))
    if role is None:
        raise ApiError(401, "Invalid user token: pass a token")
    token = {"displayName": f"{role} token", "role": role}
    body = {"type": "user", "id": USER, "name": USER, "fullname": USER, "orgs": [], "isPro": False}
    return JSONResponse({**body, "auth": {"type": "access_token", "accessToken": token}})


def _repo_from_body(body: dict) -> RepoKey:
    name, namespace = body.get("name"), body.get("organization") or USER
    if not isinstance(name, str) or not isinstance(namespace, str):
        raise bad_request("body needs 'name' (and optionally 'organization') as strings")
    return repo_key(str(body.get("type") or "model"), namespace, name)


async def create_repo(hub: Hub, request: Request) -> Response:
    author = hub.auth.require_write(request.headers.get("authorization"))
    body = await json_body(request)
    key = _repo_from_body(body)
    private = bool(body.get("private")) or body.get("visibility") == "private"
    url = f"{base_url(request)}/{key.url_path}"
    if not hub.store.create(key, private=private, author=author):
        message = f"You already created this {key.type} repo: {key.repo_id}"
        return JSONResponse({"error": message, "url": url}, 409, headers={"X-Error-Message": message})
    return JSONResponse({"url": url, "name": key.repo_id, "id": key.repo_id})


async def delete_repo(hub: Hub, request: Request) -> Response:
    hub.auth.require_write(request.headers.get("authorization"))
    key = _repo_from_body(await json_body(request))
    hub.writable(request, key)
    hub.store.delete(key)
    return JSONResponse({})


def _card_data(hub: Hub, key: RepoKey, files: dict) -> dict | None:
    """The YAML front matter of README.md, as the Hub reports it in `cardData`."""
    entry = files.get("README.md")
    if entry is None or entry["size"] > CARD_MAX_BYTES:
        return None
    try:
        return _front_matter(hub.store.blob_path(key, entry["sha256"]).read_text())
    except (ValueError, UnicodeDecodeError):
        return None


def _front_matter(text: str) -> dict | None:
    """Parse the `---` YAML block at the top of a card; ValueError when it is invalid or not a mapping."""
    if not text.startswith("---"):
        return None
    head, sep, _ = text[3:].partition("\n---")
    if not sep:
        return None
    try:
        data = yaml.safe_load(head)
    except yaml.YAMLError as exc:
        raise ValueError(f"invalid YAML in the card metadata: {exc}") from exc
    if data is not None and not isinstance(data, dict):
        raise ValueError("the card metadata must be a YAML mapping")
    return data


async def validate_yaml(hub: Hub, request: Request) -> Response:
    body = await json_body(request)
    try:
        _front_matter(str(body.get("content", "")))
    except ValueError as exc:
        return JSONResponse({"errors": [{"message": str(exc)}], "warnings": []}, 400)
    return JSONResponse({"errors": [], "warnings": []})


def _lfs_info(entry: dict) -> dict:
    pointer_size = len(
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{entry['sha256']}\nsize "
    ) + len(f"{entry['size']}\n")
    return {"oid": entry["sha256"], "size": entry["size"], "pointerSize": pointer_size}


def _file_row(path: str, entry: dict) -> dict:
    row = {"type": "file", "path": path, "size": entry["size"], "oid": entry["oid"]}
    if entry["lfs"]:
        row["lfs"] = _lfs_info(entry)
    return row


def _dir_row(path: str, files: dict) -> dict:
    inside = sorted(f"{p}:{e['oid']}" for p, e in files.items() if p.startswith(path + "/"))
    return {
        "type": "directory",
        "path": path,
        "size": 0,
        "oid": hashlib.sha1("\n".join(inside).encode()).hexdigest(),
    }


async def repo_info(hub: Hub, request: Request, key: RepoKey, rev: str | None = None) -> Response:
    hub.readable(request, key)
    oid = hub.resolve(key, rev or "main")
    commit, meta = hub.store.commit(key, oid), hub.store.meta(key)
    blobs = request.query_params.get("blobs") in TRUE
    siblings = []
    for path, entry in sorted(commit["files"].items()):
        sibling = {"rfilename": path}
        if blobs:
            sibling.update(
                size=entry["size"], blobId=entry["oid"], **({"lfs": _lfs_info(entry)} if entry["lfs"] else {})
            )
        siblings.append(sibling)
    body = {
        "_id": key.repo_id, "id": key.repo_id, "modelId": key.repo_id, "author": key.namespace, "sha": oid,
        "private": meta["private"], "disabled": False, "gated": False, "downloads": 0, "likes": 0, "tags": [],
        "createdAt": meta["createdAt"], "lastModified": commit["date"], "siblings": siblings,
    }  # fmt: skip
    card = _card_data(hub, key, commit["files"])
    if card is not None:
        body["cardData"] = card
    return JSONResponse(body)


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
    paths = (await json_body(request)).get("paths") or []
    paths = [paths] if isinstance(paths, str) else paths
    rows = []
    for path in (str(p).strip("/") for p in paths):
        if path in files:
            rows.append(_file_row(path, files[path]))
        elif any(p.startswith(path + "/") for p in files):
            rows.append(_dir_row(path, files))
    return JSONResponse(rows)


async def refs(hub: Hub, request: Request, key: RepoKey) -> Response:
    hub.readable(request, key)

    def rows(kind: str) -> list[dict]:
        return [
            {"name": n, "ref": f"refs/{kind}/{n}", "targetCommit": o}
            for n, o in hub.store.refs(key, kind).items()
        ]

    return JSONResponse({"branches": rows("heads"), "tags": rows("tags"), "converts": [], "pullRequests": []})


async def commits(hub: Hub, request: Request, key: RepoKey, rev: str) -> Response:
    hub.readable(request, key)
    history = hub.store.history(key, hub.resolve(key, rev))
    return JSONResponse(
        [
            {
                "id": c["id"],
                "title": c["title"],
                "message": c["message"],
                "authors": [{"user": c["author"]}],
                "date": c["date"],
            }
            for c in history
        ]
    )


async def branch(hub: Hub, request: Request, key: RepoKey, ref: str) -> Response:
    hub.writable(request, key)
    name = check_ref_name(ref)
    if request.method == "DELETE":
        if name == "main" or hub.store.ref(key, "heads", name) is None:
            raise bad_request(f"cannot delete branch '{name}': it is main or does not exist")
        hub.store.delete_ref(key, "heads", name)
        return JSONResponse({})
    start = hub.resolve(key, str((await json_body(request)).get("startingPoint") or "main"))
    if hub.store.ref(key, "heads", name) is not None:
        return JSONResponse({"error": f"Reference already exists: {name}"}, 409)
    hub.store.set_ref(key, "heads", name, start)
    return JSONResponse({})


async def tag(hub: Hub, request: Request, key: RepoKey, ref: str) -> Response:
    hub.writable(request, key)
    if request.method == "DELETE":
        if hub.store.ref(key, "tags", ref) is None:
            raise ApiError(404, f"Tag not found: {ref}", "RevisionNotFound")
        hub.store.delete_ref(key, "tags", ref)
        return JSONResponse({})
    name = check_ref_name(str((await json_body(request)).get("tag") or ""))
    target = hub.resolve(key, ref)
    if hub.store.ref(key, "tags", name) is not None:
        return JSONResponse({"error": f"Tag already exists: {name}"}, 409)
    hub.store.set_ref(key, "tags", name, target)
    return JSONResponse({})


async def settings(hub: Hub, request: Request, key: RepoKey) -> Response:
    hub.writable(request, key)
    body = await json_body(request)
    if "private" in body or "visibility" in body:
        hub.store.set_private(key, bool(body.get("private")) or body.get("visibility") == "private")
    return JSONResponse({"private": hub.store.meta(key)["private"]})
