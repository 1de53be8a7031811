"""Server pieces without HTTP: token files, start-up errors, names, and the storage's crash invariant."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from hubport.errors import HubError
from hubport.server import load_token_file, serve
from hubport.server.names import ApiError, check_path, check_ref_name, repo_key
from hubport.server.storage import GITATTRIBUTES, Store, git_blob_oid


def test_token_file(tmp_path):
    path = tmp_path / "tokens"
    path.write_text("# server tokens\nhf_plain\n\nwrite:hf_w\nread:hf_r\n  read:hf_r2  \n")
    assert load_token_file(path) == (("hf_plain", "hf_w"), ("hf_r", "hf_r2"))


@pytest.mark.parametrize("content", ["read:\n", "two tokens\n"])
def test_token_file_rejects_bad_lines(tmp_path, content):
    (tmp_path / "tokens").write_text(content)
    with pytest.raises(HubError, match="bad line"):
        load_token_file(tmp_path / "tokens")


def test_token_file_missing(tmp_path):
    with pytest.raises(HubError, match="cannot read token file"):
        load_token_file(tmp_path / "nope")


def test_serve_refuses_a_file_as_root(tmp_path):
    (tmp_path / "root").write_text("not a folder")
    with pytest.raises(HubError, match="is a file"):
        serve(tmp_path / "root")


def test_serve_refuses_a_busy_port(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        with pytest.raises(HubError, match="in use"):
            serve(tmp_path / "root", port=busy.getsockname()[1])


def test_module_entry_point_reports_errors_in_one_line(tmp_path):
    (tmp_path / "root").write_text("")
    done = subprocess.run(
        [sys.executable, "-m", "hubport.server", "--root", str(tmp_path / "root")],
        capture_output=True,
        check=False,
        text=True,
        timeout=60,
    )
    assert (
        done.returncode == 2
        and done.stderr.startswith("error: server root")
        and "Traceback" not in done.stderr
    )


@pytest.mark.parametrize(
    "path", ["..", "a/../b", "/etc/passwd", "a//b", "a\\b", "a\x00b", ".git/config", "./a"]
)
def test_check_path_refuses_escapes(path):
    with pytest.raises(ApiError):
        check_path(path)


def test_check_path_accepts_nested_names():
    assert check_path("a/b.c/d-e_f.safetensors") == "a/b.c/d-e_f.safetensors"


@pytest.mark.parametrize(
    ("namespace", "name"),
    [("..", "x"), ("ns", ".."), ("ns", "a.git"), ("api", "x"), ("ns", "-x"), ("n s", "x")],
)
def test_repo_key_refuses_bad_names(namespace, name):
    with pytest.raises(ApiError):
        repo_key("model", namespace, name)


@pytest.mark.parametrize("ref", ["../main", "a/../b", "/main", "main/", "a..b", "f" * 40])
def test_check_ref_name_refuses_bad_refs(ref):
    with pytest.raises(ApiError):
        check_ref_name(ref)


def test_git_blob_oid_matches_git():
    assert (
        git_blob_oid(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"
    )  # `git hash-object` of "hello\n"


def test_a_commit_is_published_only_by_its_ref(tmp_path):
    """Crash between writing the commit object and moving the branch: a restart still sees the old head."""
    store = Store(tmp_path)
    key = repo_key("model", "alice", "m")
    assert store.create(key, private=False, author="user")
    head = store.resolve(key, "main")
    files = {**store.commit(key, head)["files"]}
    sha = store.put_blob(key, b"new")
    files["new.txt"] = {"sha256": sha, "size": 3, "oid": git_blob_oid(b"new"), "lfs": False}
    orphan = store.add_commit(key, head, files, "never published", "", "user")
    (tmp_path / "tmp" / "upload-partial").write_bytes(b"half an object")
    restarted = Store(tmp_path)  # what the next server start sees
    assert restarted.resolve(key, "main") == head
    assert set(restarted.commit(key, head)["files"]) == {".gitattributes"}
    assert not (tmp_path / "tmp" / "upload-partial").exists()
    restarted.set_ref(key, "heads", "main", orphan)
    assert restarted.resolve(key, "main") == orphan


def test_create_is_atomic_and_exclusive(tmp_path):
    store = Store(tmp_path)
    key = repo_key("dataset", "alice", "d")
    assert store.create(key, private=True, author="user")
    assert not store.create(key, private=False, author="user")
    assert store.meta(key)["private"] is True
    head = store.commit(key, store.resolve(key, "main"))
    data = store.blob_path(key, head["files"][".gitattributes"]["sha256"]).read_text()
    assert data == GITATTRIBUTES and "*.safetensors filter=lfs" in data
    assert not list((tmp_path / "tmp").iterdir())  # no staging left behind


def test_listening_socket_is_tcp_so_replies_are_not_delayed(tmp_path):
    """asyncio sets TCP_NODELAY only on sockets whose proto is TCP; without it each JSON reply took ~40 ms."""
    from hubport.server import _bind

    sock = _bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()


def test_spawn_server_reports_why_it_did_not_start(tmp_path):
    from hubport.server import spawn_server

    (tmp_path / "root").write_text("")
    with pytest.raises(HubError, match=r"did not start: error: server root .* is a file"):
        spawn_server(tmp_path / "root")
