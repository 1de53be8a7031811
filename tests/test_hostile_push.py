"""Hostile pushes: links out of the folder, broken provenance, a module pushed over another, two pushes at once.

After every push the repo is at exactly the previous revision or exactly the new one: never a mix.
"""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest
from huggingface_hub import HfApi

from hubport.cli import app
from hubport.errors import HubError
from hubport.hub import push_module
from tests.fixtures.hostile import Sandbox
from tests.fixtures.hosts import RECIPES, train_module


@pytest.fixture(scope="module")
def ported(hosts, tmp_path_factory) -> dict[str, Path]:
    """The same LoRA ported twice: once written as safetensors, once as .bin; and an IA3 port."""
    root = tmp_path_factory.mktemp("ported")
    _, lora = train_module(hosts["relu_a"], RECIPES["peft-lora-attn"], root / "src-lora")
    _, ia3 = train_module(hosts["relu_a"], RECIPES["peft-ia3"], root / "src-ia3")
    out = {}
    for name, module, extra in [("st", lora, []), ("bin", lora, ["--no-safetensors"]), ("ia3", ia3, [])]:
        result = Sandbox(root).invoke(app, ["port", module, "--to", hosts["relu_a2"], "--out", root / name, *extra])
        assert result.exit_code == 0, result.output
        out[name] = root / name
    return out


def _files(api: HfApi, repo: str, revision: str | None = None) -> set[str]:
    return set(api.list_repo_files(repo, revision=revision))


def _module_files(folder: Path) -> set[str]:
    return {f.name for f in folder.iterdir() if f.is_file()} | {"README.md", ".gitattributes"}


def _copy(src: Path, tmp: Path) -> Path:
    return Path(shutil.copytree(src, tmp / "push"))


def _link_out(folder: Path, tmp: Path) -> None:
    secret = tmp / "private.txt"
    secret.write_text("my private notes")
    (folder / "notes.txt").symlink_to(secret)


def _link_weights(folder: Path, tmp: Path) -> None:
    weights = folder / "adapter_model.safetensors"
    weights.rename(tmp / "elsewhere.safetensors")
    weights.symlink_to(tmp / "elsewhere.safetensors")


def _link_dir(folder: Path, tmp: Path) -> None:
    (folder / "etc").symlink_to("/etc")


def _provenance_not_json(folder: Path, tmp: Path) -> None:
    (folder / "hubport.json").write_text("{not json")


def _provenance_no_source(folder: Path, tmp: Path) -> None:
    data = json.loads((folder / "hubport.json").read_text())
    del data["source"]
    (folder / "hubport.json").write_text(json.dumps(data))


def _provenance_list(folder: Path, tmp: Path) -> None:
    (folder / "hubport.json").write_text("[]")


def _provenance_bad_counts(folder: Path, tmp: Path) -> None:
    data = json.loads((folder / "hubport.json").read_text())
    data["slot_map"]["counts"] = [1]
    (folder / "hubport.json").write_text(json.dumps(data))


def _no_config(folder: Path, tmp: Path) -> None:
    (folder / "adapter_config.json").unlink()


PUSH_CASES = {
    _link_out: (4, "notes.txt"), _link_weights: (4, "adapter_model.safetensors"), _link_dir: (4, "etc"),
    _provenance_not_json: (4, "hubport.json is not valid JSON"), _provenance_no_source: (4, "lacks 'source'"),
    _provenance_list: (4, "not a JSON object"), _provenance_bad_counts: (4, "slot_map.counts"),
    _no_config: (4, "no adapter_config.json"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(PUSH_CASES), ids=lambda f: f.__name__.strip("_"))
def test_refused_push_leaves_the_repo_at_its_revision(case, ported, hub_server, hub_repo_id, tmp_path):
    api = HfApi(token=hub_server.write_token)
    first = push_module(ported["st"], hub_repo_id, api=api)
    folder = _copy(ported["ia3"], tmp_path)
    case(folder, tmp_path)
    box = Sandbox(tmp_path, tokens=(hub_server.write_token,))
    code, needle = PUSH_CASES[case]
    result = box.invoke(app, ["push", folder, hub_repo_id], env={"HF_TOKEN": hub_server.write_token})
    box.assert_refused(result, code, needle)
    assert api.model_info(hub_repo_id).sha == first["commit"]
    assert "notes.txt" not in _files(api, hub_repo_id)


def test_refused_first_push_leaves_no_repo(ported, hub_server, hub_repo_id, tmp_path):
    folder = _copy(ported["st"], tmp_path)
    _link_out(folder, tmp_path)
    box = Sandbox(tmp_path)
    box.assert_refused(box.invoke(app, ["push", folder, hub_repo_id], env={"HF_TOKEN": hub_server.write_token}),
                       4, "symbolic link")
    assert not HfApi(token=hub_server.write_token).repo_exists(hub_repo_id)


def test_a_push_over_another_module_makes_the_head_exactly_the_new_one(ported, hub_server, hub_repo_id):
    api = HfApi(token=hub_server.write_token)
    push_module(ported["st"], hub_repo_id, api=api)
    assert "adapter_model.safetensors" in _files(api, hub_repo_id)
    second = push_module(ported["bin"], hub_repo_id, api=api)
    assert _files(api, hub_repo_id) == _module_files(ported["bin"])
    assert "adapter_model.safetensors" not in _files(api, hub_repo_id)
    assert any("removed 1 file" in n and "adapter_model.safetensors" in n for n in second["notes"])
    assert api.model_info(hub_repo_id).sha == second["commit"]


def test_a_readme_the_user_wrote_is_kept_and_said(ported, hub_server, hub_repo_id):
    api = HfApi(token=hub_server.write_token)
    api.create_repo(hub_repo_id)
    api.upload_file(path_or_fileobj=b"# My own card\n", path_in_repo="README.md", repo_id=hub_repo_id)
    api.upload_file(path_or_fileobj=b"old", path_in_repo="old_weights.bin", repo_id=hub_repo_id)
    result = push_module(ported["st"], hub_repo_id, api=api)
    readme = Path(api.hf_hub_download(hub_repo_id, "README.md", revision=result["commit"])).read_text()
    assert readme == "# My own card\n"
    assert any("kept README.md" in n for n in result["notes"])
    assert "old_weights.bin" not in _files(api, hub_repo_id)


def test_a_hubport_card_is_replaced(ported, hub_server, hub_repo_id):
    api = HfApi(token=hub_server.write_token)
    push_module(ported["st"], hub_repo_id, api=api)
    result = push_module(ported["ia3"], hub_repo_id, api=api)
    readme = Path(api.hf_hub_download(hub_repo_id, "README.md", revision=result["commit"])).read_text()
    assert "**ia3**" in readme and not any("kept README" in n for n in result["notes"])


class _Racing(HfApi):
    """A client that waits at a barrier before committing, so that two pushes read the same head."""

    def __init__(self, barrier: threading.Barrier, **kwargs) -> None:
        super().__init__(**kwargs)
        self.barrier = barrier

    def create_commit(self, *args, **kwargs):
        self.barrier.wait(timeout=30)
        return super().create_commit(*args, **kwargs)


@pytest.mark.parametrize("rounds", [0, 1, 2])
def test_concurrent_pushes_never_mix(rounds, ported, hub_server, hub_repo_id):
    api = HfApi(token=hub_server.write_token)
    first = push_module(ported["st"], hub_repo_id, api=api)
    barrier = threading.Barrier(2)
    outcome: dict[str, object] = {}

    def push(name: str) -> None:
        try:
            outcome[name] = push_module(ported[name], hub_repo_id,
                                        api=_Racing(barrier, token=hub_server.write_token))
        except HubError as exc:
            outcome[name] = exc

    threads = [threading.Thread(target=push, args=(n,)) for n in ("bin", "ia3")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    won = [n for n, v in outcome.items() if isinstance(v, dict)]
    lost = [v for v in outcome.values() if isinstance(v, HubError)]
    assert len(won) == 1 and len(lost) == 1, outcome
    assert "another push committed first" in lost[0].one_line()
    head = api.model_info(hub_repo_id).sha
    assert head == outcome[won[0]]["commit"] != first["commit"]
    assert _files(api, hub_repo_id) == _module_files(ported[won[0]])


def test_server_killed_mid_upload_is_one_line_and_the_repo_keeps_its_revision(ported, tmp_path, monkeypatch):
    import huggingface_hub.constants
    import huggingface_hub.lfs

    from hubport.server import spawn_server

    token = "hf_killed_mid_upload"
    server = spawn_server(tmp_path / "hub", write_tokens=[token])
    try:
        monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", server.url)
        first = push_module(ported["st"], "user/killed", api=HfApi(endpoint=server.url, token=token))

        def kill_instead(operation, upload_url):
            server.kill()
            raise ConnectionError("server killed during the LFS upload")

        monkeypatch.setattr(huggingface_hub.lfs, "_upload_single_part", kill_instead)
        box = Sandbox(tmp_path, tokens=(token,))
        result = box.invoke(app, ["push", ported["ia3"], "user/killed"], env={"HF_TOKEN": token})
        box.assert_refused(result, 7, "the upload was cut off", allowed=tmp_path / "hub")
        monkeypatch.undo()
        server.stop()
        server = spawn_server(tmp_path / "hub", write_tokens=[token])
        api = HfApi(endpoint=server.url, token=token)
        assert api.model_info("user/killed").sha == first["commit"]
        assert _files(api, "user/killed") == _module_files(ported["st"])
    finally:
        server.stop()
