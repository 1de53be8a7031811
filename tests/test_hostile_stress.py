"""A bounded loopback stress test of the Hub server: 1,000 requests from 20 concurrent clients (reads, racing
commits, malformed bodies) while a push is killed mid-upload and the server is SIGKILLed and restarted.

Afterwards every repo's main is at a commit the server wrote whole: every file reachable from it downloads with
the size and hash the commit records, no partial upload is left, and the log holds no traceback.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests

from hubport.server import spawn_server
from hubport.server.storage import git_blob_oid

TOKEN = "hf_stress_write"
AUTH = {"authorization": f"Bearer {TOKEN}"}
REPOS = [f"user/stress-{i}" for i in range(4)]
CLIENTS, PER_CLIENT = 20, 50

KILLED_PUSH = """
import os, sys, time
import huggingface_hub.lfs
from huggingface_hub import HfApi

def half_then_hang(operation, upload_url):
    import http.client
    from urllib.parse import urlsplit
    url = urlsplit(upload_url)
    conn = http.client.HTTPConnection(url.hostname, url.port)
    conn.putrequest("PUT", f"{url.path}?{url.query}")
    conn.putheader("Content-Length", str(operation.upload_info.size))
    conn.endheaders()
    with operation.as_file() as f:
        conn.send(f.read(operation.upload_info.size // 2))
    print("sent half", flush=True)
    time.sleep(600)

huggingface_hub.lfs._upload_single_part = half_then_hang
HfApi(endpoint=sys.argv[1], token=sys.argv[2]).upload_file(
    path_or_fileobj=os.urandom(3 * 1024 * 1024), path_in_repo="big.bin", repo_id=sys.argv[3])
"""


def _commit(url: str, repo: str, worker: int, n: int) -> requests.Response:
    head = requests.get(f"{url}/api/models/{repo}", timeout=10).json()["sha"]
    header = {"key": "header", "value": {"summary": f"w{worker} n{n}", "parentCommit": head}}
    content = base64.b64encode(f"worker {worker} request {n}".encode()).decode()
    op = {"key": "file", "value": {"path": f"w{worker % 3}.txt", "content": content}}
    body = b"\n".join(json.dumps(x).encode() for x in (header, op))
    return requests.post(f"{url}/api/models/{repo}/commit/main", data=body, headers=AUTH, timeout=10)


def _one(url: str, worker: int, n: int) -> int:
    repo = REPOS[(worker + n) % len(REPOS)]
    kind = n % 5
    if kind == 0:
        return _commit(url, repo, worker, n).status_code
    if kind == 1:
        return requests.get(f"{url}/api/models/{repo}?blobs=true", timeout=10).status_code
    if kind == 2:
        return requests.post(f"{url}/api/models/{repo}/paths-info/main", json={"paths": 5}, headers=AUTH,
                             timeout=10).status_code
    if kind == 3:
        return requests.get(f"{url}/{repo}/resolve/main/seed.txt", timeout=10).status_code
    return requests.post(f"{url}/api/models/{repo}/preupload/main", json={"files": [5]}, headers=AUTH,
                         timeout=10).status_code


def _client(url: str, worker: int, statuses: list) -> None:
    for n in range(PER_CLIENT):
        for _ in range(200):  # the server is being restarted: retry until it answers again
            try:
                statuses.append(_one(url, worker, n))  # list.append is atomic under the GIL
                break
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
                time.sleep(0.05)


def _check_repo(url: str, root: Path, repo: str) -> None:
    info = requests.get(f"{url}/api/models/{repo}?blobs=true", timeout=10).json()
    commit = json.loads((root / "repos" / "model" / repo / "commits" / f"{info['sha']}.json").read_text())
    for path, entry in commit["files"].items():
        data = requests.get(f"{url}/{repo}/resolve/{info['sha']}/{path}", timeout=10).content
        assert len(data) == entry["size"], path
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], path
        if not entry["lfs"]:
            assert git_blob_oid(data) == entry["oid"], path


def test_server_under_load_with_a_killed_push_and_a_restart(tmp_path):
    root = tmp_path / "hub"
    server = spawn_server(root, write_tokens=[TOKEN])
    url, port = server.url, urlsplit(server.url).port
    logs: list[str] = []
    try:
        for repo in REPOS:
            assert requests.post(f"{url}/api/repos/create", json={"name": repo.split("/")[1]}, headers=AUTH,
                                 timeout=10).status_code == 200
            assert _commit(url, repo, 0, 0).status_code == 200
            seed = base64.b64encode(b"seed").decode()
            body = b"\n".join(json.dumps(x).encode() for x in (
                {"key": "header", "value": {"summary": "seed"}},
                {"key": "file", "value": {"path": "seed.txt", "content": seed}}))
            assert requests.post(f"{url}/api/models/{repo}/commit/main", data=body, headers=AUTH,
                                 timeout=10).status_code == 200
        before_push = requests.get(f"{url}/api/models/{REPOS[0]}", timeout=10).json()["sha"]
        env = {**os.environ, "HF_HUB_DISABLE_XET": "1", "HF_ENDPOINT": url}
        pusher = subprocess.Popen([sys.executable, "-c", KILLED_PUSH, url, TOKEN, "user/pushed"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        requests.post(f"{url}/api/repos/create", json={"name": "pushed"}, headers=AUTH, timeout=10)
        statuses: list[int] = []
        threads = [threading.Thread(target=_client, args=(url, w, statuses)) for w in range(CLIENTS)]
        for t in threads:
            t.start()
        assert pusher.stdout.readline().strip() == "sent half"
        pusher.kill()  # the push dies mid-upload
        pusher.wait()
        while len(statuses) < CLIENTS * PER_CLIENT // 3:
            time.sleep(0.01)
        server.kill()  # and the server dies in the middle of the load
        logs.append(server.log_path.read_text(errors="replace"))
        server.stop()  # already dead: this only removes its log folder
        server = spawn_server(root, write_tokens=[TOKEN], port=port)
        for t in threads:
            t.join(180)
        assert len(statuses) == CLIENTS * PER_CLIENT  # every request got an answer (after retries)
        assert not [s for s in statuses if s >= 500]
        assert {200, 400} <= set(statuses) and set(statuses) <= {200, 400, 412}
        for repo in REPOS:
            _check_repo(url, root, repo)
        pushed = requests.get(f"{url}/api/models/user/pushed", timeout=10).json()
        assert [s["rfilename"] for s in pushed["siblings"]] == [".gitattributes"]  # the killed push left nothing
        assert not list((root / "tmp").glob("upload-*"))
        assert requests.get(f"{url}/api/models/{REPOS[0]}", timeout=10).json()["sha"] != before_push
        logs.append(server.log_path.read_text(errors="replace"))
        assert not [log for log in logs if "Traceback" in log or TOKEN in log]
    finally:
        server.stop()
