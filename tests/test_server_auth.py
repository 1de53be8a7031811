"""Tokens and private repos: writes need a write token, private repos are invisible without a token."""

from __future__ import annotations

from pathlib import Path

import pytest
from huggingface_hub import HfApi, hf_hub_download
from huggingface_hub.utils import HfHubHTTPError, RepositoryNotFoundError
from requests import HTTPError

WRONG = "hf_not_a_token_of_this_server"


def _api(hub_server, token) -> HfApi:
    return HfApi(endpoint=hub_server.url, token=token)


def _status(call) -> int:
    with pytest.raises(HfHubHTTPError) as info:
        call()
    return info.value.response.status_code


@pytest.mark.parametrize(("who", "status"), [("none", 401), ("wrong", 401), ("read", 403)])
def test_writes_without_write_access_fail_and_change_nothing(hub_server, hub_repo_id, who, status):
    token = {"none": False, "wrong": WRONG, "read": hub_server.read_token}[who]
    owner, other = _api(hub_server, hub_server.write_token), _api(hub_server, token)
    assert _status(lambda: other.create_repo(hub_repo_id)) == status
    assert not owner.repo_exists(hub_repo_id)
    owner.create_repo(hub_repo_id)
    head = owner.model_info(hub_repo_id).sha
    assert (
        _status(lambda: other.upload_file(path_or_fileobj=b"x", path_in_repo="a.txt", repo_id=hub_repo_id))
        == status
    )
    assert (
        _status(
            lambda: other.upload_file(
                path_or_fileobj=b"\0" * 64, path_in_repo="w.safetensors", repo_id=hub_repo_id
            )
        )
        == status
    )
    assert _status(lambda: other.create_branch(hub_repo_id, branch="b")) == status
    assert _status(lambda: other.delete_repo(hub_repo_id)) == status
    assert owner.model_info(hub_repo_id).sha == head
    assert owner.list_repo_files(hub_repo_id) == [".gitattributes"]
    assert [b.name for b in owner.list_repo_refs(hub_repo_id).branches] == ["main"]


def test_whoami_reports_the_role(hub_server):
    assert _api(hub_server, hub_server.write_token).whoami()["auth"]["accessToken"]["role"] == "write"
    assert _api(hub_server, hub_server.read_token).whoami()["auth"]["accessToken"]["role"] == "read"
    with pytest.raises(HTTPError, match="Invalid user token"):
        _api(hub_server, WRONG).whoami()


def test_public_repo_is_readable_anonymously(hub_server, hub_repo_id):
    owner = _api(hub_server, hub_server.write_token)
    owner.create_repo(hub_repo_id)
    sha = owner.upload_file(path_or_fileobj=b"public", path_in_repo="a.txt", repo_id=hub_repo_id).oid
    anonymous = _api(hub_server, False)
    assert anonymous.model_info(hub_repo_id).sha == sha
    assert Path(hf_hub_download(hub_repo_id, "a.txt", token=False)).read_bytes() == b"public"


def test_private_repo_is_invisible_without_a_token(hub_server, hub_repo_id, tmp_path):
    owner = _api(hub_server, hub_server.write_token)
    owner.create_repo(hub_repo_id, private=True)
    sha = owner.upload_file(path_or_fileobj=b"secret", path_in_repo="a.txt", repo_id=hub_repo_id).oid
    anonymous = _api(hub_server, False)
    assert not anonymous.repo_exists(hub_repo_id)
    with pytest.raises(RepositoryNotFoundError):
        anonymous.model_info(hub_repo_id)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(hub_repo_id, "a.txt", revision=sha, token=False, cache_dir=tmp_path)
    reader = _api(hub_server, hub_server.read_token)
    assert reader.model_info(hub_repo_id).private is True
    path = hf_hub_download(
        hub_repo_id, "a.txt", revision=sha, token=hub_server.read_token, cache_dir=tmp_path
    )
    assert Path(path).read_bytes() == b"secret"
    owner.update_repo_visibility(hub_repo_id, private=False)
    assert anonymous.model_info(hub_repo_id).sha == sha
