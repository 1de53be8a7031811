"""The server over raw HTTP: names that would escape the root, ranges, HEAD headers, LFS and commit checks."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
import requests
from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.utils import HfHubHTTPError


@pytest.fixture
def repo(hub_server, hub_repo_id) -> dict:
    """A public repo holding a 1000-byte regular file, with the commit oid."""
    api = HfApi(endpoint=hub_server.url, token=hub_server.write_token)
    api.create_repo(hub_repo_id)
    data = b"".join(f"{i:03d}\n".encode() for i in range(250))  # 1000 bytes of text: a regular file
    sha = api.upload_file(path_or_fileobj=data, path_in_repo="data/blob.txt", repo_id=hub_repo_id).oid
    auth = {"Authorization": f"Bearer {hub_server.write_token}"}
    return {"api": api, "id": hub_repo_id, "sha": sha, "data": data, "url": hub_server.url, "auth": auth}


def _resolve(repo: dict, path: str = "data/blob.txt", rev: str | None = None) -> str:
    return f"{repo['url']}/{repo['id']}/resolve/{rev or repo['sha']}/{path}"


def test_head_has_the_headers_the_client_needs(repo):
    r = requests.head(_resolve(repo), headers={"Accept-Encoding": "identity"})
    assert r.status_code == 200 and r.content == b""
    assert r.headers["X-Repo-Commit"] == repo["sha"] and r.headers["Content-Length"] == "1000"
    blob_oid = hashlib.sha1(b"blob 1000\0" + repo["data"]).hexdigest()  # git's object id, like the Hub
    assert r.headers["ETag"] == f'"{blob_oid}"'
    missing = requests.head(_resolve(repo, "nope.txt"))
    assert missing.status_code == 404 and missing.headers["X-Error-Code"] == "EntryNotFound"
    assert missing.headers["X-Repo-Commit"] == repo["sha"]


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-99", 0, 100),
        ("bytes=990-", 990, 1000),
        ("bytes=0-100000", 0, 1000),
        ("bytes=-10", 990, 1000),
    ],
)
def test_range_requests(repo, header, start, end):
    r = requests.get(_resolve(repo), headers={"Range": header})
    assert r.status_code == 206 and r.content == repo["data"][start:end]
    assert r.headers["Content-Range"] == f"bytes {start}-{end - 1}/1000"


def test_range_past_the_end_is_416(repo):
    assert requests.get(_resolve(repo), headers={"Range": "bytes=5000-"}).status_code == 416


@pytest.mark.parametrize(
    "path",
    [
        "%2e%2e/%2e%2e/meta.json",
        "data/%2e%2e/%2e%2e/meta.json",
        "%2Fetc%2Fpasswd",
        "data/%00blob.txt",
        "data%5C..%5Cmeta.json",
    ],
)
def test_download_paths_that_escape_are_refused(repo, path):
    r = requests.get(_resolve(repo, path))
    assert r.status_code == 400 and "invalid file path" in r.json()["error"]


@pytest.mark.parametrize("repo_part", ["%2e%2e/%2e%2e", "ns/%2e%2e", "ns/a%00b", "ns/.git"])
def test_repo_ids_that_escape_are_refused(hub_server, repo_part):
    assert requests.get(f"{hub_server.url}/{repo_part}/resolve/main/config.json").status_code == 400
    assert requests.get(f"{hub_server.url}/api/models/{repo_part}").status_code == 400


@pytest.mark.parametrize("name", ["..", "a..b", ".hidden", "x" * 100, "a b"])
def test_create_repo_refuses_bad_names(hub_server, name):
    body = {"name": name, "organization": "hubport-tests"}
    headers = {"Authorization": f"Bearer {hub_server.write_token}"}
    assert requests.post(f"{hub_server.url}/api/repos/create", json=body, headers=headers).status_code == 400


@pytest.mark.parametrize("path", ["../evil.txt", "/abs.txt", "a/./b.txt", "nul\x00.txt", "a\\..\\b.txt", ""])
def test_commit_refuses_escaping_paths_and_keeps_the_head(repo, path):
    lines = [
        {"key": "header", "value": {"summary": "evil"}},
        {
            "key": "file",
            "value": {"path": path, "content": base64.b64encode(b"x").decode(), "encoding": "base64"},
        },
    ]
    body = "\n".join(json.dumps(line) for line in lines)
    r = requests.post(
        f"{repo['url']}/api/models/{repo['id']}/commit/main",
        data=body,
        headers={**repo["auth"], "Content-Type": "application/x-ndjson"},
    )
    assert r.status_code == 400
    assert repo["api"].model_info(repo["id"]).sha == repo["sha"]


def test_stale_parent_commit_is_412(repo):
    first = repo["sha"]
    repo["api"].upload_file(path_or_fileobj=b"newer", path_in_repo="b.txt", repo_id=repo["id"])
    with pytest.raises(HfHubHTTPError) as info:
        repo["api"].create_commit(
            repo["id"], [CommitOperationAdd("c.txt", b"c")], commit_message="late", parent_commit=first
        )
    assert info.value.response.status_code == 412
    assert "c.txt" not in repo["api"].list_repo_files(repo["id"])


def test_create_pr_is_refused_not_silently_merged(repo):
    with pytest.raises(HfHubHTTPError) as info:
        repo["api"].upload_file(
            path_or_fileobj=b"pr", path_in_repo="pr.txt", repo_id=repo["id"], create_pr=True
        )
    assert info.value.response.status_code == 400
    assert "pr.txt" not in repo["api"].list_repo_files(repo["id"])


def _batch(repo: dict, data: bytes) -> dict:
    body = {
        "operation": "upload",
        "transfers": ["basic"],
        "hash_algo": "sha256",
        "objects": [{"oid": hashlib.sha256(data).hexdigest(), "size": len(data)}],
    }
    r = requests.post(
        f"{repo['url']}/{repo['id']}.git/info/lfs/objects/batch", json=body, headers=repo["auth"]
    )
    assert r.status_code == 200
    return r.json()["objects"][0]


def test_lfs_upload_urls_are_signed_and_contents_checked(repo):
    data = b"\0weights" * 1000
    upload = _batch(repo, data)["actions"]["upload"]["href"]
    assert requests.put(upload.replace("sig=", "sig=0"), data=data).status_code == 403
    assert requests.put(upload, data=data[:-1] + b"!").status_code == 400  # wrong bytes, right size
    lfs_line = {
        "key": "lfsFile",
        "value": {
            "path": "w.bin",
            "algo": "sha256",
            "size": len(data),
            "oid": hashlib.sha256(data).hexdigest(),
        },
    }
    body = "\n".join(json.dumps(line) for line in [{"key": "header", "value": {"summary": "s"}}, lfs_line])
    commit_url = f"{repo['url']}/api/models/{repo['id']}/commit/main"
    headers = {**repo["auth"], "Content-Type": "application/x-ndjson"}
    assert requests.post(commit_url, data=body, headers=headers).status_code == 400  # object never arrived
    assert requests.put(upload, data=data).status_code == 200
    assert "actions" not in _batch(repo, data)  # now present: the client would skip the upload
    assert requests.post(commit_url, data=body, headers=headers).status_code == 200
    assert requests.get(_resolve(repo, "w.bin", "main")).content == data


def test_unknown_routes(hub_server):
    assert requests.get(f"{hub_server.url}/api/nothing-here").status_code == 404
    assert requests.delete(f"{hub_server.url}/api/whoami-v2").status_code == 405


def test_a_path_cannot_be_both_file_and_folder(repo):
    with pytest.raises(HfHubHTTPError) as info:
        repo["api"].upload_file(path_or_fileobj=b"x", path_in_repo="data/blob.txt/inner", repo_id=repo["id"])
    assert info.value.response.status_code == 400
    with pytest.raises(HfHubHTTPError):
        repo["api"].upload_file(path_or_fileobj=b"x", path_in_repo="data", repo_id=repo["id"])
    assert repo["api"].model_info(repo["id"]).sha == repo["sha"]
