"""Repo-level API: whoami, create/delete, list, info, refs, commits, branches, tags, settings, card YAML.

Response shapes follow what huggingface_hub 0.36 parses: `id` and `sha` in
repo info, `url` in both the 200 and the 409 answer of create_repo, typed 404s for repos and revisions.
"""

from __future__ import annotations

import yaml
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hubport.server.auth import USER
from hubport.server.context import TRUE, Hub, base_url, json_body
from hubport.server.names import REPO_TYPES, ApiError, RepoKey, bad_request, check_ref_name, repo_key
from hubport.server.trees import lfs_info

CARD_MAX_BYTES = 1_000_000
FRONT_MATTER_MAX_CHARS = 100_000
FRONT_MATTER_MAX_DEPTH = 32


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
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def _front_matter(text: str) -> dict | None:
    """Parse the `---` YAML block at the top of a card; ValueError when it is invalid, not a mapping, or
    outside the bounds that keep one request from occupying the server (size, nesting, no aliases: a
    400-byte alias bomb expands to millions of nodes)."""
    if not text.startswith("---"):
        return None
    head, sep, _ = text[3:].partition("\n---")
    if not sep:
        return None
    if len(head) > FRONT_MATTER_MAX_CHARS:
        raise ValueError(f"the card metadata is over {FRONT_MATTER_MAX_CHARS} characters")
    try:
        _check_events(head)
        data = yaml.safe_load(head)
    except yaml.YAMLError as exc:
        raise ValueError(f"invalid YAML in the card metadata: {exc}") from exc
    if data is not None and not isinstance(data, dict):
        raise ValueError("the card metadata must be a YAML mapping")
    return data


def _check_events(head: str) -> None:
    """Walk the YAML event stream once: aliases and nesting past FRONT_MATTER_MAX_DEPTH are refused."""
    depth = 0
    for event in yaml.parse(head, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            raise ValueError("the card metadata uses YAML aliases, which are not expanded")  # noqa: TRY004
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > FRONT_MATTER_MAX_DEPTH:
                raise ValueError(f"the card metadata is nested deeper than {FRONT_MATTER_MAX_DEPTH} levels")
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


async def validate_yaml(hub: Hub, request: Request) -> Response:
    body = await json_body(request)
    content = body.get("content", "")
    if not isinstance(content, str):
        raise bad_request("'content' must be the card's text")
    try:
        _front_matter(content)
    except ValueError as exc:
        return JSONResponse({"errors": [{"message": str(exc)}], "warnings": []}, 400)
    return JSONResponse({"errors": [], "warnings": []})


async def list_repos(hub: Hub, request: Request, t: str) -> Response:
    """`list_models` / `list_datasets`: the repos this caller can see, filtered by author and search."""
    query = request.query_params
    author, searches = query.get("author"), [s.lower() for s in query.getlist("search")]
    limit = int(query["limit"]) if query.get("limit", "").isdigit() else None
    rows = []
    for key in hub.store.keys(REPO_TYPES[t]):
        wanted = (not author or key.namespace == author) and all(s in key.repo_id.lower() for s in searches)
        if wanted and hub.can_see(request, key):
            sha, meta = hub.store.resolve(key, "main"), hub.store.meta(key)
            rows.append({"id": key.repo_id, "_id": key.repo_id, "sha": sha, "private": meta["private"]})
    return JSONResponse(rows[:limit])


def sibling_lfs(entry: dict) -> dict:
    """The `lfs` block of a sibling in repo info: the Hub names the hash `sha256` here (`oid` in tree rows)."""
    tree = lfs_info(entry)
    return {"sha256": tree["oid"], "size": tree["size"], "pointerSize": tree["pointerSize"]}


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
                size=entry["size"], blobId=entry["oid"], **({"lfs": sibling_lfs(entry)} if entry["lfs"] else {})
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


async def refs(hub: Hub, request: Request, key: RepoKey) -> Response:
    hub.readable(request, key)

    def rows(kind: str) -> list[dict]:
        return [
            {"name": n, "ref": f"refs/{kind}/{n}", "targetCommit": o}
            for n, o in hub.store.refs(key, kind).items()
        ]

    return JSONResponse({"branches": rows("heads"), "tags": rows("tags"), "converts": [], "pullRequests": []})


def _commit_row(c: dict) -> dict:
    authors = [{"user": c["author"]}]
    return {
        "id": c["id"],
        "title": c["title"],
        "message": c["message"],
        "authors": authors,
        "date": c["date"],
    }


async def commits(hub: Hub, request: Request, key: RepoKey, rev: str) -> Response:
    hub.readable(request, key)
    return JSONResponse([_commit_row(c) for c in hub.store.history(key, hub.resolve(key, rev))])


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
