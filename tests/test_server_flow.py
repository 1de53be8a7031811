"""The unchanged huggingface_hub client against hubport's server: create, push (regular, LFS), read."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from huggingface_hub import HfApi, get_safetensors_metadata, hf_hub_download, snapshot_download
from huggingface_hub.utils import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

BIG = (
    10 * 1024 * 1024 + 12345
)  # over the 10 MB line: must travel through LFS even without a .gitattributes rule


@pytest.fixture
def api(hub_server) -> HfApi:
    return HfApi(endpoint=hub_server.url, token=hub_server.write_token)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Small text files, a nested file, a tiny safetensors file and one file over 10 MB."""
    import torch
    from safetensors.torch import save_file

    out = tmp_path_factory.mktemp("upload")
    (out / "config.json").write_text('{"d_model": 32}\n')
    (out / "nested").mkdir()
    (out / "nested" / "notes.txt").write_text("hello hub\n")
    save_file(
        {"w": torch.arange(12, dtype=torch.float32).reshape(3, 4), "b": torch.ones(5)},
        out / "model.safetensors",
    )
    (out / "big.bin").write_bytes(os.urandom(BIG))
    return out


def _sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_create_repo_twice_gives_409_or_the_same_url(api, hub_repo_id):
    url = api.create_repo(hub_repo_id)
    assert url.repo_id == hub_repo_id and url.startswith(api.endpoint)
    assert api.create_repo(hub_repo_id, exist_ok=True) == url
    with pytest.raises(HfHubHTTPError) as info:
        api.create_repo(hub_repo_id)
    assert info.value.response.status_code == 409


def test_push_and_read_back(api, hub_repo_id, folder):
    api.create_repo(hub_repo_id)
    commit = api.upload_folder(folder_path=folder, repo_id=hub_repo_id, commit_message="first push")
    files = api.list_repo_files(hub_repo_id)
    assert sorted(files) == [
        ".gitattributes",
        "big.bin",
        "config.json",
        "model.safetensors",
        "nested/notes.txt",
    ]
    assert api.model_info(hub_repo_id).sha == commit.oid
    tree = {f.path: f for f in api.list_repo_tree(hub_repo_id, recursive=True) if hasattr(f, "size")}
    assert tree["big.bin"].lfs.sha256 == _sha256(folder / "big.bin") and tree["big.bin"].size == BIG
    assert tree["model.safetensors"].lfs is not None  # .gitattributes rule, even for a tiny file
    assert tree["config.json"].lfs is None
    for name in ("big.bin", "config.json", "nested/notes.txt", "model.safetensors"):
        local = hf_hub_download(hub_repo_id, name, revision=commit.oid)
        assert _sha256(local) == _sha256(folder / name), name
    snap = Path(snapshot_download(hub_repo_id, revision=commit.oid))
    assert snap.name == commit.oid and (snap / "nested" / "notes.txt").read_text() == "hello hub\n"


def test_unchanged_push_is_a_no_op_and_changes_make_commits(api, hub_repo_id, folder):
    api.create_repo(hub_repo_id)
    first = api.upload_folder(folder_path=folder, repo_id=hub_repo_id)
    again = api.upload_folder(folder_path=folder, repo_id=hub_repo_id)
    assert again.oid == first.oid  # the preupload oids matched: nothing was sent
    second = api.upload_file(path_or_fileobj=b"v2", path_in_repo="config.json", repo_id=hub_repo_id)
    api.delete_file("nested/notes.txt", hub_repo_id)
    assert "nested/notes.txt" not in api.list_repo_files(hub_repo_id)
    old = hf_hub_download(hub_repo_id, "config.json", revision=first.oid)
    new = hf_hub_download(hub_repo_id, "config.json", revision=second.oid)
    assert Path(old).read_text() == '{"d_model": 32}\n' and Path(new).read_bytes() == b"v2"
    titles = [c.title for c in api.list_repo_commits(hub_repo_id)]
    assert len(titles) == 4 and titles[-1] == "initial commit"


def test_missing_file_and_bad_revision_raise_typed_errors(api, hub_repo_id):
    api.create_repo(hub_repo_id)
    sha = api.upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id=hub_repo_id).oid
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(hub_repo_id, "missing.json", revision=sha)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(hub_repo_id, "config.json", revision="no-such-branch")
    with pytest.raises(RevisionNotFoundError):
        api.model_info(hub_repo_id, revision="f" * 40)
    assert api.file_exists(hub_repo_id, "config.json") and not api.file_exists(hub_repo_id, "missing.json")


def test_repo_exists_and_delete(api, hub_repo_id):
    assert not api.repo_exists(hub_repo_id)
    api.create_repo(hub_repo_id)
    assert api.repo_exists(hub_repo_id)
    api.delete_repo(hub_repo_id)
    assert not api.repo_exists(hub_repo_id)
    with pytest.raises(RepositoryNotFoundError):
        api.delete_repo(hub_repo_id)
    api.delete_repo(hub_repo_id, missing_ok=True)
    api.create_repo(hub_repo_id)  # the name is free again, with a fresh history
    assert api.list_repo_files(hub_repo_id) == [".gitattributes"]


def test_branches_and_tags(api, hub_repo_id):
    api.create_repo(hub_repo_id)
    main_sha = api.upload_file(path_or_fileobj=b"main", path_in_repo="a.txt", repo_id=hub_repo_id).oid
    api.create_branch(hub_repo_id, branch="feature/x")
    api.create_branch(hub_repo_id, branch="feature/x", exist_ok=True)
    dev_sha = api.upload_file(
        path_or_fileobj=b"dev", path_in_repo="a.txt", repo_id=hub_repo_id, revision="feature/x"
    ).oid
    api.create_tag(hub_repo_id, tag="v1", revision=main_sha)
    assert Path(hf_hub_download(hub_repo_id, "a.txt", revision="feature/x")).read_bytes() == b"dev"
    assert Path(hf_hub_download(hub_repo_id, "a.txt", revision="v1")).read_bytes() == b"main"
    assert api.model_info(hub_repo_id).sha == main_sha
    refs = api.list_repo_refs(hub_repo_id)
    assert {b.name: b.target_commit for b in refs.branches} == {"main": main_sha, "feature/x": dev_sha}
    assert [(t.name, t.target_commit) for t in refs.tags] == [("v1", main_sha)]
    api.delete_branch(hub_repo_id, branch="feature/x")
    with pytest.raises(RevisionNotFoundError):
        api.list_repo_files(hub_repo_id, revision="feature/x")


def test_upload_to_a_missing_branch_fails(api, hub_repo_id):
    api.create_repo(hub_repo_id)
    with pytest.raises(RevisionNotFoundError):
        api.upload_file(path_or_fileobj=b"x", path_in_repo="a.txt", repo_id=hub_repo_id, revision="nope")


def test_safetensors_metadata_by_range(api, hub_repo_id, folder):
    api.create_repo(hub_repo_id)
    api.upload_file(
        path_or_fileobj=folder / "model.safetensors", path_in_repo="model.safetensors", repo_id=hub_repo_id
    )
    meta = get_safetensors_metadata(hub_repo_id, token=api.token)
    tensors = meta.files_metadata["model.safetensors"].tensors
    assert {k: (t.dtype, t.shape) for k, t in tensors.items()} == {"w": ("F32", [3, 4]), "b": ("F32", [5])}


def test_dataset_repo(api, hub_repo_id):
    api.create_repo(hub_repo_id, repo_type="dataset")
    api.upload_file(
        path_or_fileobj=b'{"text": "a", "label": 1}\n',
        path_in_repo="train.jsonl",
        repo_id=hub_repo_id,
        repo_type="dataset",
    )
    assert not api.repo_exists(hub_repo_id)  # a dataset, not a model
    path = hf_hub_download(hub_repo_id, "train.jsonl", repo_type="dataset")
    assert Path(path).read_text().startswith('{"text"')
    assert api.dataset_info(hub_repo_id).id == hub_repo_id


def test_readme_card_data_and_invalid_yaml(api, hub_repo_id):
    api.create_repo(hub_repo_id)
    card = "---\nlicense: apache-2.0\ntags:\n- hubport\n---\n# A card\n"
    api.upload_file(path_or_fileobj=card.encode(), path_in_repo="README.md", repo_id=hub_repo_id)
    assert api.model_info(hub_repo_id).card_data.to_dict() == {"license": "apache-2.0", "tags": ["hubport"]}
    with pytest.raises(ValueError, match="Invalid metadata"):
        api.upload_file(
            path_or_fileobj=b"---\nlicense: [unclosed\n---\n", path_in_repo="README.md", repo_id=hub_repo_id
        )


def test_list_models_by_author_and_search(api, hub_server, hub_repo_id):
    public, private = hub_repo_id, f"{hub_repo_id}-private"
    api.create_repo(public)
    api.create_repo(private, private=True)
    name = hub_repo_id.split("/")[1]
    found = [m.id for m in api.list_models(author="hubport-tests", search=name)]
    assert found == [public, private]
    anonymous = HfApi(endpoint=hub_server.url, token=False)
    assert [m.id for m in anonymous.list_models(search=name)] == [public]
    assert [m.id for m in api.list_models(author="nobody", search=name)] == []
