"""A server SIGKILLed in the middle of a push leaves the repo at its previous revision; a retry succeeds."""

from __future__ import annotations

import hashlib
import http.client
import os
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from huggingface_hub import HfApi

from hubport.server import spawn_server

TOKEN = "hf_faults_write"


@pytest.fixture
def push(tmp_path, monkeypatch) -> dict:
    """A repo at a first revision on its own server, and a second folder (with a >10 MB LFS file) to push."""
    import huggingface_hub.constants

    root = tmp_path / "hub"
    server = spawn_server(root, write_tokens=[TOKEN])
    # CommitInfo parses the returned commit URL against constants.ENDPOINT: point it at this test's own server
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", server.url)
    api = HfApi(endpoint=server.url, token=TOKEN)
    api.create_repo("alice/crash")
    first = api.upload_file(path_or_fileobj=b"v1", path_in_repo="config.json", repo_id="alice/crash").oid
    folder = tmp_path / "v2"
    folder.mkdir()
    (folder / "config.json").write_bytes(b"v2")
    (folder / "weights.bin").write_bytes(os.urandom(11 * 1024 * 1024))
    state = {"server": server, "root": root, "first": first, "folder": folder}
    yield state
    state["server"].stop()


def _restart(state: dict) -> HfApi:
    """Start a fresh server process on the same root and port (what a user does after a crash)."""
    port = urlsplit(state["server"].url).port
    state["server"] = spawn_server(state["root"], write_tokens=[TOKEN], port=port)
    return HfApi(endpoint=state["server"].url, token=TOKEN)


def _assert_still_first_revision(api: HfApi, state: dict) -> None:
    assert api.model_info("alice/crash").sha == state["first"]
    assert api.list_repo_files("alice/crash") == [".gitattributes", "config.json"]
    assert api.list_repo_commits("alice/crash")[0].commit_id == state["first"]


def _retry_and_check(api: HfApi, state: dict) -> None:
    commit = api.upload_folder(folder_path=state["folder"], repo_id="alice/crash")
    assert commit.oid != state["first"]
    # a plain GET: hf_hub_download's URL template is fixed to HF_ENDPOINT (the session server) at import time
    got = requests.get(f"{api.endpoint}/alice/crash/resolve/{commit.oid}/weights.bin", timeout=30)
    assert got.content == (state["folder"] / "weights.bin").read_bytes()


def _wait_for_partial_upload(root: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.stat().st_size > 0 for p in (root / "tmp").glob("upload-*")):
            return
        time.sleep(0.01)
    raise TimeoutError("the server never started receiving the upload")


def test_kill_during_lfs_upload(push, monkeypatch):
    import huggingface_hub.lfs

    def half_then_kill(operation, upload_url):
        """Send half of the object to the real signed URL, then SIGKILL the server while it is receiving."""
        url = urlsplit(upload_url)
        conn = http.client.HTTPConnection(url.hostname, url.port)
        conn.putrequest("PUT", f"{url.path}?{url.query}")
        conn.putheader("Content-Length", str(operation.upload_info.size))
        conn.endheaders()
        with operation.as_file() as f:
            conn.send(f.read(operation.upload_info.size // 2))
        _wait_for_partial_upload(push["root"])
        push["server"].kill()
        raise ConnectionError("server killed during the LFS upload")

    api = HfApi(endpoint=push["server"].url, token=TOKEN)
    with monkeypatch.context() as patch, pytest.raises(RuntimeError, match="Error while uploading") as info:
        patch.setattr(huggingface_hub.lfs, "_upload_single_part", half_then_kill)
        api.upload_folder(folder_path=push["folder"], repo_id="alice/crash")
    assert isinstance(info.value.__cause__, ConnectionError)
    api = _restart(push)
    _assert_still_first_revision(api, push)
    assert not list((push["root"] / "tmp").glob("upload-*"))  # the partial object was thrown away...
    sha = hashlib.sha256((push["folder"] / "weights.bin").read_bytes()).hexdigest()
    assert not list((push["root"] / "repos").rglob(sha[2:]))  # ...and never became an object
    _retry_and_check(api, push)


def test_kill_right_before_the_commit(push, monkeypatch):
    import huggingface_hub.hf_api

    real_payload = huggingface_hub.hf_api._prepare_commit_payload

    def kill_then_payload(*args, **kwargs):
        """The LFS objects are uploaded and verified by now: SIGKILL the server before the commit is sent."""
        push["server"].kill()
        yield from real_payload(*args, **kwargs)

    api = HfApi(endpoint=push["server"].url, token=TOKEN)
    with monkeypatch.context() as patch, pytest.raises(requests.ConnectionError):
        patch.setattr(huggingface_hub.hf_api, "_prepare_commit_payload", kill_then_payload)
        api.upload_folder(folder_path=push["folder"], repo_id="alice/crash")
    assert push["server"].process.poll() is not None  # it really was killed, not stopped
    api = _restart(push)
    _assert_still_first_revision(api, push)
    _retry_and_check(api, push)
