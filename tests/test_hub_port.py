"""The Hub round trip against the project's own server: pull by repo id, port, push with a card, load back."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from hubport.cli import app
from tests.fixtures.hosts import RECIPES, batch, load_with_library, logits, train_module

runner = CliRunner()
OWNER = "hubport-e2e"


@pytest.fixture(scope="module")
def published(hub_server, hosts, tmp_path_factory):
    """Two related hosts, an unrelated one, and a peft and an adapters module, published to the server."""
    from huggingface_hub import HfApi

    api = HfApi(token=hub_server.write_token)
    root = tmp_path_factory.mktemp("publish")
    repos = {}
    for key, name in [("relu_a", "host-a"), ("relu_a2", "host-b"), ("relu_b", "host-x")]:
        repos[key] = f"{OWNER}/{name}"
        api.create_repo(repos[key], exist_ok=True)
        api.upload_folder(repo_id=repos[key], folder_path=str(hosts[key]))
    for recipe, st in [("peft-lora", True), ("adapters-seq-bn", False)]:
        _, folder = train_module(hosts["relu_a"], RECIPES[recipe], root / recipe, use_safetensors=st)
        config = json.loads((folder / "adapter_config.json").read_text())
        field = "base_model_name_or_path" if RECIPES[recipe].library == "peft" else "model_name"
        config[field] = repos["relu_a"]  # as if trained on the Hub host
        (folder / "adapter_config.json").write_text(json.dumps(config))
        repos[recipe] = f"{OWNER}/{recipe}"
        api.create_repo(repos[recipe], exist_ok=True)
        api.upload_folder(repo_id=repos[recipe], folder_path=str(folder))
        repos[recipe + ":local"] = folder
    return repos


def _invoke(args, token=None):
    env = {"HF_TOKEN": token} if token else {}
    return runner.invoke(app, args, env={**env, "COLUMNS": "300"})


@pytest.mark.parametrize("recipe", ["peft-lora", "adapters-seq-bn"])
def test_port_by_repo_id_and_push_with_card(recipe, published, hub_server, hosts, tmp_path):
    from huggingface_hub import HfApi, ModelCard

    target, pushed = published["relu_a2"], f"{OWNER}/{recipe}-b-{tmp_path.name[-6:]}"
    result = _invoke(["port", published[recipe], "--to", target, "--out", str(tmp_path / "local"),
                      "--push", pushed, "--json"], token=hub_server.write_token)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    api = HfApi(token=hub_server.read_token)
    assert summary["pushed"]["commit"] == api.model_info(pushed).sha
    local_files = {p.name for p in (tmp_path / "local").iterdir()}
    assert set(api.list_repo_files(pushed)) - {".gitattributes"} == local_files | {"README.md"}
    card = ModelCard.load(pushed, token=hub_server.read_token)
    library = RECIPES[recipe].library
    assert card.data.library_name == {"peft": "peft", "adapters": "adapter-transformers"}[library]
    assert card.data.base_model == target and card.data.base_model_relation == "adapter"
    assert f"base_model:adapter:{target}" in card.data.tags and "hubport" in card.data.tags
    source_sha = api.model_info(published[recipe]).sha
    assert source_sha in card.text and hub_server.write_token not in card.text
    provenance = json.loads((tmp_path / "local" / "hubport.json").read_text())
    assert provenance["source"]["commit"] == source_sha
    assert provenance["target"]["commit"] == api.model_info(target).sha
    assert provenance["lineage"]["verdict"] == "same" and provenance["lineage"]["level"] == "weights"
    assert hub_server.write_token not in json.dumps(provenance)
    # the pushed module, loaded from the server by its own library, equals the local port
    x = batch()
    from_hub = logits(_load_from_hub(hosts["relu_a2"], pushed, library, hub_server.read_token), x)
    local = logits(load_with_library(hosts["relu_a2"], tmp_path / "local", library), x)
    assert (from_hub - local).abs().max().item() <= 1e-6


def _load_from_hub(host_dir, repo, library, token):
    from transformers import T5ForConditionalGeneration

    model = T5ForConditionalGeneration.from_pretrained(host_dir)
    os.environ["HF_TOKEN"] = token
    try:
        if library == "peft":
            from peft import PeftModel

            return PeftModel.from_pretrained(model, repo).eval()
        import adapters

        adapters.init(model)
        model.set_active_adapters(model.load_adapter(repo, with_head=False))
        return model.eval()
    finally:
        os.environ.pop("HF_TOKEN", None)


def test_unrelated_hub_host_refused_from_range_reads(published, hub_server):
    result = _invoke(["check", published["peft-lora"], "--to", published["relu_b"], "--json"],
                     token=hub_server.read_token)
    assert result.exit_code == 1
    lineage = json.loads(result.output)["lineage"]
    assert lineage["verdict"] == "different" and lineage["level"] == "weights"
    assert 0 < lineage["bytes_read"] < 200_000  # a row sample, not the checkpoint


@pytest.mark.parametrize("token_kind", ["none", "read"])
def test_push_without_write_token_creates_nothing(token_kind, published, hub_server, tmp_path):
    from huggingface_hub import HfApi

    repo = f"{OWNER}/denied-{token_kind}"
    token = None if token_kind == "none" else hub_server.read_token
    result = _invoke(["port", published["peft-lora"], "--to", published["relu_a2"], "--out", str(tmp_path / "o"),
                      "--push", repo], token=token)
    assert result.exit_code == 7 and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not HfApi(token=hub_server.write_token).repo_exists(repo)


@pytest.mark.parametrize(("ref", "needle"), [(f"{OWNER}/no-such-module", "repo not found"),
                                             (f"{OWNER}/peft-lora@no-such-branch", "revision not found")])
def test_hub_errors_are_one_line(ref, needle, published, hub_server):
    result = _invoke(["inspect", ref], token=hub_server.read_token)
    assert result.exit_code == 3 and needle in result.output and "Traceback" not in result.output


def test_revision_pinned_module_and_offline_cache(published, hub_server, tmp_path):
    from huggingface_hub import HfApi

    sha = HfApi(token=hub_server.read_token).model_info(published["peft-lora"]).sha
    first = _invoke(["inspect", f"{published['peft-lora']}@{sha}", "--json"], token=hub_server.read_token)
    assert first.exit_code == 0 and json.loads(first.output)["commit"] == sha
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_TOKEN": hub_server.read_token}
    offline = subprocess.run([sys.executable, "-m", "hubport.cli", "inspect", f"{published['peft-lora']}@{sha}",
                              "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert offline.returncode == 0, offline.stderr
    assert json.loads(offline.stdout)["family"] == "lora"


def test_unreachable_hub_is_one_line_that_says_so(tmp_path):
    env = {**os.environ, "HF_ENDPOINT": "http://127.0.0.1:9", "HF_HOME": str(tmp_path / "hf")}
    result = subprocess.run([sys.executable, "-m", "hubport.cli", "inspect", "owner/module"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 7 and "Traceback" not in result.stderr
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot be reached" in lines[0]
