"""The Hub server against malformed bodies, lying Content-Lengths and hostile card metadata.

Each client mistake must be a 4xx in the Hub's error shape (`{"error": ...}` plus X-Error-Message), never a 500,
and the server's log must stay free of tracebacks; the server keeps answering afterwards.
"""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests
from huggingface_hub import CommitOperationAdd, HfApi

from hubport.server import ServerProcess, spawn_server

TOKEN = "hf_hostile_server_write"
AUTH = {"authorization": f"Bearer {TOKEN}"}
REPO = "user/target"


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[ServerProcess]:
    import huggingface_hub.constants

    proc = spawn_server(tmp_path_factory.mktemp("hub"), write_tokens=[TOKEN])
    old, huggingface_hub.constants.ENDPOINT = huggingface_hub.constants.ENDPOINT, proc.url
    api = HfApi(endpoint=proc.url, token=TOKEN)
    api.create_repo(REPO)
    api.upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id=REPO)
    try:
        yield proc
    finally:
        huggingface_hub.constants.ENDPOINT = old
        proc.stop(keep_log=False)


def _log(server: ServerProcess) -> str:
    return server.log_path.read_text(errors="replace") if server.log_path.exists() else ""


def _ndjson(*lines: object) -> bytes:
    return b"\n".join(json.dumps(line).encode() for line in lines)


HEADER = {"key": "header", "value": {"summary": "x"}}
API = f"/api/models/{REPO}"
CASES = {
    "paths-info-int": ("POST", f"{API}/paths-info/main", {"paths": 5}),
    "paths-info-objects": ("POST", f"{API}/paths-info/main", {"paths": [1, {}]}),
    "paths-info-list-body": ("POST", f"{API}/paths-info/main", [1, 2]),
    "paths-info-deep": ("POST", f"{API}/paths-info/main", b'{"paths":' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    "preupload-files-int": ("POST", f"{API}/preupload/main", {"files": 5}),
    "preupload-files-ints": ("POST", f"{API}/preupload/main", {"files": [5]}),
    "preupload-path-int": ("POST", f"{API}/preupload/main", {"files": [{"path": 3, "size": 1}]}),
    "preupload-size-str": ("POST", f"{API}/preupload/main", {"files": [{"path": "a", "size": "big"}]}),
    "preupload-size-neg": ("POST", f"{API}/preupload/main", {"files": [{"path": "a", "size": -1}]}),
    "preupload-sample-bad": ("POST", f"{API}/preupload/main", {"files": [{"path": "a", "size": 1, "sample": "%%"}]}),
    "preupload-sample-int": ("POST", f"{API}/preupload/main", {"files": [{"path": "a", "size": 1, "sample": 7}]}),
    "preupload-path-escape": ("POST", f"{API}/preupload/main", {"files": [{"path": "../x", "size": 1}]}),
    "commit-content-int": ("POST", f"{API}/commit/main",
                           _ndjson(HEADER, {"key": "file", "value": {"path": "a.txt", "content": 5}})),
    "commit-path-int": ("POST", f"{API}/commit/main",
                        _ndjson(HEADER, {"key": "file", "value": {"path": 5, "content": ""}})),
    "commit-path-escape": ("POST", f"{API}/commit/main",
                           _ndjson(HEADER, {"key": "file", "value": {"path": "../../x", "content": ""}})),
    "commit-not-base64": ("POST", f"{API}/commit/main",
                          _ndjson(HEADER, {"key": "file", "value": {"path": "a.txt", "content": "%%%"}})),
    "commit-no-header": ("POST", f"{API}/commit/main", _ndjson({"key": "file", "value": {"path": "a"}})),
    "commit-line-list": ("POST", f"{API}/commit/main", _ndjson(HEADER, [1, 2])),
    "commit-not-json": ("POST", f"{API}/commit/main", b'{"key": "header"\n{{{'),
    "commit-deep": ("POST", f"{API}/commit/main", b"[" * 100_000 + b"]" * 100_000),
    "commit-parent-int": ("POST", f"{API}/commit/main", _ndjson({"key": "header", "value": {"parentCommit": 5}})),
    "commit-unknown-op": ("POST", f"{API}/commit/main", _ndjson(HEADER, {"key": "chmod", "value": {"path": "a"}})),
    "commit-lfs-missing": ("POST", f"{API}/commit/main",
                           _ndjson(HEADER, {"key": "lfsFile", "value": {"path": "w", "oid": "0" * 64, "size": 1}})),
    "commit-empty": ("POST", f"{API}/commit/main", b""),
    "lfs-objects-ints": ("POST", f"/{REPO}.git/info/lfs/objects/batch", {"operation": "upload", "objects": [5]}),
    "lfs-objects-int": ("POST", f"/{REPO}.git/info/lfs/objects/batch", {"operation": "upload", "objects": 5}),
    "lfs-download": ("POST", f"/{REPO}.git/info/lfs/objects/batch", {"operation": "download", "objects": []}),
    "create-name-int": ("POST", "/api/repos/create", {"name": 5}),
    "create-bad-name": ("POST", "/api/repos/create", {"name": "../etc"}),
    "create-not-json": ("POST", "/api/repos/create", b"{name"),
    "create-type-bad": ("POST", "/api/repos/create", {"name": "x", "type": "kernel"}),
    "yaml-content-int": ("POST", "/api/validate-yaml", {"content": 5}),
    "body-too-large": ("POST", f"{API}/paths-info/main", b" " * (17 * 1024 * 1024)),
    "branch-bad-name": ("POST", f"{API}/branch/..", {}),
    "tag-bad-name": ("POST", f"{API}/tag/main", {"tag": "a/../b"}),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_malformed_bodies_are_400s_in_the_hubs_shape(case, server):
    method, path, body = CASES[case]
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = requests.request(method, server.url + path, data=data, headers=AUTH, timeout=30)
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:200])
    assert response.json()["error"] and response.headers["X-Error-Message"]
    assert "Traceback" not in _log(server)
    assert requests.get(f"{server.url}{API}", timeout=10).status_code == 200


def _raw_request(server: ServerProcess, head: bytes, body: bytes, shut: bool) -> bytes:
    url = urlsplit(server.url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(head + body)
        if shut:
            sock.shutdown(socket.SHUT_WR)
        try:
            return sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            return b""


@pytest.mark.parametrize("declared,shut", [(1000, True), (10**12, False), (5, False)], ids=["short", "huge", "long"])
def test_content_length_that_lies(declared, shut, server):
    head = (f"POST {API}/paths-info/main HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {declared}\r\n\r\n").encode()
    answer = _raw_request(server, head, b'{"paths": ["config.json"]}', shut)
    assert not answer.startswith(b"HTTP/1.1 5"), answer[:200]
    assert "Traceback" not in _log(server)
    assert requests.get(f"{server.url}{API}", timeout=10).status_code == 200


BOMB = """---
a: &a ["x","x","x","x","x","x","x","x","x"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
---
"""
DEEP = "---\na: " + "[" * 5000 + "]" * 5000 + "\n---\n"
HUGE = "---\n" + "".join(f"k{i}: {'v' * 50}\n" for i in range(3000)) + "---\n"


@pytest.mark.parametrize("card,needle", [(BOMB, "aliases"), (DEEP, "nested deeper"), (HUGE, "over 100000")],
                         ids=["alias-bomb", "deep", "huge"])
def test_hostile_card_metadata_is_bounded(card, needle, server):
    """huggingface_hub refuses to commit such a card (it asks validate-yaml first), so the attacker's raw commit."""
    api = HfApi(endpoint=server.url, token=TOKEN)
    repo = f"user/card-{needle.split()[0]}"
    api.create_repo(repo, exist_ok=True)
    readme = {"key": "file", "value": {"path": "README.md", "content": base64.b64encode(card.encode()).decode()}}
    committed = requests.post(f"{server.url}/api/models/{repo}/commit/main", data=_ndjson(HEADER, readme),
                              headers=AUTH, timeout=30)
    assert committed.status_code == 200, committed.text
    response = requests.get(f"{server.url}/api/models/{repo}", timeout=30)
    assert response.status_code == 200 and len(response.content) < 10_000
    assert "cardData" not in response.json()
    check = requests.post(f"{server.url}/api/validate-yaml", json={"content": card}, timeout=30)
    assert check.status_code == 400 and needle in check.json()["errors"][0]["message"]
    assert "Traceback" not in _log(server)


def test_an_ordinary_card_still_reports_its_metadata(server):
    api = HfApi(endpoint=server.url, token=TOKEN)
    api.create_repo("user/plain-card", exist_ok=True)
    api.create_commit("user/plain-card", [CommitOperationAdd("README.md", b"---\ntags: [a, b]\nx: {y: 1}\n---\n")],
                      commit_message="card")
    assert api.model_info("user/plain-card").card_data.to_dict()["tags"] == ["a", "b"]


def test_regular_file_commit_still_works_after_the_hostile_ones(server):
    content = base64.b64encode(b"hello").decode()
    body = _ndjson(HEADER, {"key": "file", "value": {"path": "hello.txt", "content": content}})
    response = requests.post(f"{server.url}{API}/commit/main", data=body, headers=AUTH, timeout=30)
    assert response.status_code == 200, response.text
    assert requests.get(f"{server.url}/{REPO}/resolve/main/hello.txt", timeout=10).content == b"hello"


def test_server_log_names_no_token(server):
    assert TOKEN not in _log(server)
