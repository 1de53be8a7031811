"""File traffic: preupload, NDJSON commits, the LFS batch / upload / verify trio, and downloads (resolve).

A push is three steps: preupload says which files go through LFS, LFS objects are PUT to signed
URLs and land in the repo's objects only once complete and hash-checked, and the commit publishes a new file
table by moving the branch file. Downloads stream from disk with ETag, X-Repo-Commit and HTTP range support.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hashlib
import json
import os

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from hubport.server.context import (
    MAX_COMMIT_BODY,
    Hub,
    base_url,
    items,
    json_body,
    no_pull_requests,
    read_body,
)
from hubport.server.names import SHA256, ApiError, RepoKey, bad_request, check_path, entry_not_found
from hubport.server.storage import file_entry

LFS_THRESHOLD = 10 * 1024 * 1024
LFS_JSON = "application/vnd.git-lfs+json"


def _lfs_patterns(hub: Hub, key: RepoKey, files: dict) -> list[str]:
    entry = files.get(".gitattributes")
    if entry is None:
        return []
    text = hub.store.blob_path(key, entry["sha256"]).read_text(errors="replace")
    return [
        line.split()[0] for line in text.splitlines() if "filter=lfs" in line and not line.startswith("#")
    ]


def _matches(path: str, pattern: str) -> bool:
    target = path if "/" in pattern.rstrip("/*") else path.rsplit("/", 1)[-1]
    return fnmatch.fnmatchcase(target, pattern.replace("**/", "*"))


def _is_binary(sample: bytes) -> bool:
    if b"\x00" in sample:
        return True
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        # a multi-byte character cut off at the end of the 512-byte sample is still text
        return exc.start < len(sample) - 3
    return False


def _upload_mode(path: str, size: int, sample: bytes, patterns: list[str]) -> str:
    """The Hub's rule: LFS when .gitattributes says so, for files of 10 MB or more, and for binary content."""
    if size == 0:
        return "regular"
    if size >= LFS_THRESHOLD or _is_binary(sample) or any(_matches(path, p) for p in patterns):
        return "lfs"
    return "regular"


def _preupload_item(item: dict) -> tuple[str, int, bytes]:
    path, size, sample = item.get("path"), item.get("size", 0), item.get("sample") or ""
    if not isinstance(path, str) or not isinstance(size, int) or isinstance(size, bool) or size < 0 \
            or not isinstance(sample, str) or len(sample) > 4096:
        raise bad_request("preupload entries need a string 'path', a non-negative integer 'size' and a short "
                          "base64 'sample'")
    try:
        return check_path(path), size, base64.b64decode(sample, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise bad_request(
            f"preupload entries need 'path', integer 'size' and base64 'sample': {exc}"
        ) from exc


async def preupload(hub: Hub, request: Request, key: RepoKey, rev: str) -> Response:
    hub.writable(request, key)
    no_pull_requests(request)
    body = await json_body(request)
    files = hub.store.commit(key, hub.branch_head(key, rev))["files"]
    patterns = _lfs_patterns(hub, key, files)
    answers = []
    for item in items(body, "files", dict, "objects with path, size and sample"):
        path, size, sample = _preupload_item(item)
        mode = _upload_mode(path, size, sample, patterns)
        old = files.get(path)
        oid = (
            None
            if old is None or old["lfs"] != (mode == "lfs")
            else (old["sha256"] if old["lfs"] else old["oid"])
        )
        answers.append({"path": path, "uploadMode": mode, "shouldIgnore": False, "oid": oid})
    return JSONResponse({"files": answers})


def _parse_ndjson(raw: bytes) -> tuple[dict, list[dict]]:
    try:
        lines = [json.loads(line) for line in raw.splitlines() if line.strip()]
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise bad_request(f"commit body is not NDJSON: {exc}") from exc
    except RecursionError:
        raise bad_request("commit body is nested too deep") from None
    if not lines or not isinstance(lines[0], dict) or lines[0].get("key") != "header":
        raise bad_request("commit body must start with a header line")
    if not all(isinstance(i, dict) and isinstance(i.get("value"), dict) for i in lines):
        raise bad_request("every commit line needs 'key' and an object 'value'")
    return lines[0]["value"], lines[1:]


def _apply(hub: Hub, key: RepoKey, files: dict, op: dict) -> None:
    """Apply one commit operation to the file table (blobs of regular files are stored here)."""
    kind, value = op.get("key"), op["value"]
    raw_path = value.get("path")
    if not isinstance(raw_path, str):
        raise bad_request(f"commit operation '{str(kind)[:40]}' needs a string 'path'")
    path = check_path(raw_path.rstrip("/") if kind == "deletedFolder" else raw_path)
    if kind == "file":
        content = value.get("content", "")
        if not isinstance(content, str):
            raise bad_request(f"file '{path}': content must be a base64 string")
        try:
            data = base64.b64decode(content, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise bad_request(f"file '{path}': content is not base64") from exc
        files[path] = file_entry(hub.store.put_blob(key, data), len(data), lfs=False, data=data)
    elif kind == "lfsFile":
        oid, size = str(value.get("oid", "")), value.get("size")
        if not SHA256.match(oid) or not hub.store.has_blob(key, oid, size if isinstance(size, int) else None):
            raise bad_request(
                f"file '{path}': LFS object {oid} was not uploaded; upload it through the LFS batch"
            )
        files[path] = file_entry(oid, hub.store.blob_path(key, oid).stat().st_size, lfs=True)
    elif kind == "deletedFile":
        if files.pop(path, None) is None:
            raise ApiError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
    elif kind == "deletedFolder":
        inside = [p for p in files if p.startswith(path + "/")]
        if not inside:
            raise ApiError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
        for p in inside:
            del files[p]
    else:
        raise bad_request(f"unknown commit operation '{kind}'")


def _check_no_file_dir_clash(files: dict) -> None:
    """Git cannot hold `a` as a file and `a/b` at once; refuse such a commit like the Hub does."""
    folders = {p.rsplit("/", i)[0] for p in files for i in range(1, p.count("/") + 1)}
    clash = sorted(folders & files.keys())
    if clash:
        raise bad_request(f"'{clash[0]}' would be both a file and a folder; delete one of them first")


async def commit(hub: Hub, request: Request, key: RepoKey, rev: str) -> Response:
    author = hub.writable(request, key)
    no_pull_requests(request)
    raw = await read_body(request, MAX_COMMIT_BODY)
    # Nothing awaits from here on, so reading the head and moving the branch cannot interleave with a commit.
    header, ops = _parse_ndjson(raw)
    head = hub.branch_head(key, rev)
    parent = header.get("parentCommit")
    if parent is not None and not isinstance(parent, str):
        raise bad_request("'parentCommit' must be a commit id")
    if parent and parent != head:
        raise ApiError(
            412, f"A commit has happened since {parent}: the branch head is {head}; pull and retry"
        )
    files = dict(hub.store.commit(key, head)["files"])
    for op in ops:
        _apply(hub, key, files, op)
    _check_no_file_dir_clash(files)
    title, message = str(header.get("summary") or "Upload files"), str(header.get("description") or "")
    oid = hub.store.add_commit(key, head, files, title, message, author)
    hub.store.set_ref(key, "heads", rev.removeprefix("refs/heads/"), oid)
    url = f"{base_url(request)}/{key.url_path}/commit/{oid}"
    return JSONResponse({"success": True, "commitOid": oid, "commitUrl": url, "hookOutput": ""})


def _object_href(request: Request, key: RepoKey, kind: str, oid: str) -> str:
    return f"{base_url(request)}/lfs-{kind}/{key.type}s/{key.repo_id}/{oid}"


async def lfs_batch(hub: Hub, request: Request, key: RepoKey) -> Response:
    hub.writable(request, key)
    body = await json_body(request)
    if body.get("operation") != "upload":
        raise bad_request("only the LFS 'upload' operation is served; download files through /resolve/")
    objects = []
    for obj in items(body, "objects", dict, "objects with oid and size"):
        oid, size = str(obj.get("oid", "")), obj.get("size")
        if not SHA256.match(oid) or not isinstance(size, int) or size < 0:
            objects.append({"oid": oid, "size": size, "error": {"code": 422, "message": "bad oid or size"}})
        elif hub.store.has_blob(key, oid, size):
            objects.append({"oid": oid, "size": size})  # no actions: the client skips the upload
        else:
            sig = hub.auth.sign(key.type, key.repo_id, oid, str(size))
            upload = {"href": f"{_object_href(request, key, 'upload', oid)}?size={size}&sig={sig}"}
            verify = {"href": _object_href(request, key, "verify", oid)}
            objects.append({"oid": oid, "size": size, "actions": {"upload": upload, "verify": verify}})
    return JSONResponse({"transfer": "basic", "objects": objects}, media_type=LFS_JSON)


async def lfs_upload(hub: Hub, request: Request, key: RepoKey, oid: str) -> Response:
    size = request.query_params.get("size", "")
    hub.auth.check_signature(request.query_params.get("sig", ""), key.type, key.repo_id, oid, size)
    if not hub.store.exists(key):
        raise ApiError(404, f"Repository {key.repo_id} not found", "RepoNotFound")
    staged, digest, received = hub.store.staging_file(), hashlib.sha256(), 0
    try:
        with open(staged, "wb") as out:
            async for chunk in request.stream():
                received += len(chunk)
                if received > int(size):
                    raise bad_request(f"upload is larger than the announced {size} bytes")
                digest.update(chunk)
                out.write(chunk)
        if received != int(size) or digest.hexdigest() != oid:
            raise bad_request(f"upload does not match oid {oid} and size {size}; upload the file again")
        if not hub.store.exists(key):
            raise ApiError(404, f"Repository {key.repo_id} not found", "RepoNotFound")
        hub.store.adopt_blob(key, staged, oid)
    finally:
        staged.unlink(missing_ok=True)
    return Response(status_code=200, headers={"ETag": f'"{oid}"'})


async def lfs_verify(hub: Hub, request: Request, key: RepoKey, oid: str) -> Response:
    hub.writable(request, key)
    size = (await json_body(request)).get("size")
    if not hub.store.has_blob(key, oid, size if isinstance(size, int) else None):
        raise ApiError(404, f"LFS object {oid} not found: upload it again")
    return JSONResponse({"message": "ok"}, media_type=LFS_JSON)


async def resolve(hub: Hub, request: Request, key: RepoKey, rev: str, path: str) -> Response:
    hub.readable(request, key)
    oid = hub.resolve(key, rev)
    entry = hub.store.commit(key, oid)["files"].get(check_path(path))
    if entry is None:
        raise entry_not_found(path, oid)
    blob = hub.store.blob_path(key, entry["sha256"])
    etag = entry["sha256"] if entry["lfs"] else entry["oid"]
    headers = {"ETag": f'"{etag}"', "X-Repo-Commit": oid}
    if entry["lfs"]:
        headers.update({"X-Linked-Etag": f'"{etag}"', "X-Linked-Size": str(entry["size"])})
    return FileResponse(
        blob, headers=headers, stat_result=os.stat(blob), media_type="application/octet-stream"
    )
