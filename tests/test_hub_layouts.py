"""Real Hub layouts: unknown bases refused, legacy ids, pins, .bin hosts, subfolders, offline lineage (issue 15)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from hubport import api
from hubport.cli import app
from hubport.errors import LineageError
from hubport.hubids import bare_ref, canonical_id, legacy_name, parse_ref, same_repo
from tests.fixtures.hosts import RECIPES, batch, load_with_library, logits, train_module

runner = CliRunner()
OWNER = "hubport-layouts"
BASE_FIELD = "base_model_name_or_path"


def _invoke(args, token=None):
    env = {"HF_TOKEN": token} if token else {}
    return runner.invoke(app, args, env={**env, "COLUMNS": "300"})


def _with_base(folder, tmp_path, base):
    """A copy of a peft module whose adapter_config.json records `base` as its host."""
    out = shutil.copytree(folder, tmp_path / f"module-{abs(hash(str(base)))}")
    config = json.loads((out / "adapter_config.json").read_text())
    config[BASE_FIELD] = base
    (out / "adapter_config.json").write_text(json.dumps(config))
    return out


@pytest.fixture(scope="module")
def lora(hosts, tmp_path_factory):
    return train_module(hosts["relu_a"], RECIPES["peft-lora"], tmp_path_factory.mktemp("lora") / "m")[1]


@pytest.fixture(scope="module")
def hub(hub_server, hosts, lora, tmp_path_factory):
    """Hosts (safetensors, .bin-only, tagged), a module, and a repo holding two modules, on the server."""
    from huggingface_hub import HfApi
    from transformers import T5ForConditionalGeneration

    client = HfApi(token=hub_server.write_token)
    root = tmp_path_factory.mktemp("layouts")
    repos = {"a": f"{OWNER}/host-a", "a2": f"{OWNER}/host-a2", "bin": f"{OWNER}/host-a2-bin",
             "legacy": "google-t5/t5-small"}
    bin_dir, shard_dir = root / "bin", root / "shards"
    T5ForConditionalGeneration.from_pretrained(hosts["relu_a2"]).save_pretrained(bin_dir, safe_serialization=False)
    T5ForConditionalGeneration.from_pretrained(hosts["relu_a2"]).bfloat16().save_pretrained(
        shard_dir, max_shard_size="40KB")
    repos["shards"] = f"{OWNER}/host-a2-bf16-shards"
    for key, folder in [("a", hosts["relu_a"]), ("a2", hosts["relu_a2"]), ("bin", bin_dir),
                        ("legacy", hosts["relu_a"]), ("shards", shard_dir)]:
        client.create_repo(repos[key], exist_ok=True)
        client.upload_folder(repo_id=repos[key], folder_path=str(folder))
    client.create_tag(repos["a2"], tag="stable")
    module = _with_base(lora, root, repos["a"])
    repos["module"] = f"{OWNER}/lora"
    client.create_repo(repos["module"], exist_ok=True)
    client.upload_folder(repo_id=repos["module"], folder_path=str(module))
    repos["multi"] = f"{OWNER}/two-modules"
    client.create_repo(repos["multi"], exist_ok=True)
    for sub in ("sst2", "rt"):
        client.upload_folder(repo_id=repos["multi"], folder_path=str(module), path_in_repo=sub)
    repos["bin_dir"] = bin_dir
    return repos


def test_ids_parse_into_repo_pin_and_subfolder():
    assert parse_ref("o/n@v1:sub/x") == parse_ref("o/n:sub/x@v1")
    got = parse_ref("o/n@v1:sub/x")
    assert (got.repo, got.revision, got.subfolder) == ("o/n", "v1", "sub/x")
    assert parse_ref("o/n@v1", revision="v2").revision == "v2"
    assert canonical_id("t5-base") == "google-t5/t5-base" and canonical_id("o/n") == "o/n"
    assert same_repo("t5-3b", "google-t5/t5-3b") and not same_repo("t5-base", "google/flan-t5-base")
    assert legacy_name("/content/t5-large/") == "t5-large" and legacy_name("o/n") is None
    assert bare_ref("google/flan-t5-base@stable") == "google/flan-t5-base"


@pytest.mark.parametrize("recorded", ["t5-base", "/content/t5-base", "/content/my-host", None])
def test_unknown_or_legacy_base_is_refused_then_ported_with_base_or_force(recorded, lora, hosts, hub_server,
                                                                          tmp_path):
    module = _with_base(lora, tmp_path, recorded)
    plan = api.check(module, hosts["relu_a2"])
    assert not plan.lineage.copy_is_right
    # the tiny host's vocabulary is not the legacy T5's: that alone proves another lineage; else it is unknown
    assert plan.lineage.verdict == ("different" if "t5-base" in str(recorded) else "unknown")
    result = _invoke(["check", str(module), "--to", str(hosts["relu_a2"])])
    assert result.exit_code == 1 and "a full port is possible" not in result.output
    with pytest.raises(LineageError) as refused:
        api.port(module, hosts["relu_a2"], tmp_path / "refused")
    assert "--base" in refused.value.one_line() and "--force" in refused.value.one_line()
    assert not (tmp_path / "refused").exists()
    measured = api.port(module, hosts["relu_a2"], tmp_path / "based", base=str(hosts["relu_a"]))
    assert measured.plan.lineage.verdict == "same" and measured.provenance["forced"] is False
    forced = api.port(module, hosts["relu_a2"], tmp_path / "forced", force=True)
    assert forced.provenance["forced"] is True and forced.forced
    assert json.loads((tmp_path / "forced" / "hubport.json").read_text())["forced"] is True


def test_base_that_is_the_target_itself_is_same_lineage_by_id(lora, hosts, tmp_path):
    plan = api.check(_with_base(lora, tmp_path, str(hosts["relu_a"])), hosts["relu_a"], weights=False)
    assert plan.lineage.verdict == "same" and plan.lineage.level == "id"


def test_server_redirects_legacy_and_moved_ids(hub, hub_server):
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import RepositoryNotFoundError

    client = HfApi(token=hub_server.write_token)
    assert client.model_info("t5-small").id == "google-t5/t5-small"
    with open(hf_hub_download("t5-small", "config.json")) as fh:
        assert json.load(fh)["d_model"] == 32
    with pytest.raises(RepositoryNotFoundError):
        client.model_info("no-such-legacy-name")
    answered = _invoke(["check", "no-such-legacy-name", "--to", "t5-small"], token=hub_server.read_token)
    assert answered.exit_code == 3 and "not found" in answered.output and "cannot be reached" not in answered.output
    client.create_repo(f"{OWNER}/old-name")
    client.upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id=f"{OWNER}/old-name")
    client.move_repo(f"{OWNER}/old-name", f"{OWNER}/new-name")
    assert client.model_info(f"{OWNER}/old-name").id == f"{OWNER}/new-name"
    assert hf_hub_download(f"{OWNER}/old-name", "config.json", token=hub_server.read_token)


def test_legacy_base_id_is_the_same_host_as_its_new_name(lora, hub, hub_server, tmp_path):
    module = _with_base(lora, tmp_path, "t5-small")
    result = _invoke(["check", str(module), "--to", "google-t5/t5-small", "--json"], token=hub_server.read_token)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["lineage"]["verdict"] == "same"
    assert not any("mismatch" in n for n in report["notes"])


def test_model_info_with_files_metadata(hub, hub_server):
    from huggingface_hub import HfApi

    info = HfApi(token=hub_server.read_token).model_info(hub["a"], files_metadata=True)
    weights = next(s for s in info.siblings if s.rfilename == "model.safetensors")
    assert weights.lfs is not None and len(weights.lfs.sha256) == 64 and weights.lfs.size == weights.size
    assert weights.lfs.pointer_size > 0


def test_pinned_target_writes_bare_ids_and_loads_with_peft(hub, hub_server, hosts, tmp_path):
    from huggingface_hub import HfApi
    from peft import AutoPeftModelForSeq2SeqLM, PeftModel
    from transformers import T5ForConditionalGeneration

    target = f"{hub['a2']}@stable"
    report = api.port(hub["module"], target, tmp_path / "out", hub=HfApi(token=hub_server.read_token))
    sha = HfApi(token=hub_server.read_token).model_info(hub["a2"], revision="stable").sha
    config = json.loads((tmp_path / "out" / "adapter_config.json").read_text())
    assert config[BASE_FIELD] == hub["a2"] and config["revision"] == sha
    assert report.provenance["target"]["ref"] == hub["a2"] and report.provenance["target"]["commit"] == sha
    from hubport.card import build_card
    from hubport.formats import read_module

    card = build_card(read_module(tmp_path / "out"), f"{OWNER}/ported", report.provenance)
    assert card.data.base_model == hub["a2"] and "@" not in "".join(card.data.tags)
    x = batch()
    host = T5ForConditionalGeneration.from_pretrained(hub["a2"], revision="stable")
    by_peft = logits(PeftModel.from_pretrained(host, tmp_path / "out").eval(), x)
    auto = logits(AutoPeftModelForSeq2SeqLM.from_pretrained(tmp_path / "out").eval(), x)
    local = logits(load_with_library(hosts["relu_a2"], tmp_path / "out", "peft"), x)
    assert (by_peft - local).abs().max().item() <= 1e-6 and (auto - local).abs().max().item() <= 1e-6


def test_bin_only_host_checked_and_ported(hub, hub_server, lora, hosts, tmp_path):
    local = api.check(_with_base(lora, tmp_path, str(hosts["relu_a"])), hub["bin_dir"])
    assert local.lineage.verdict == "same" and local.lineage.level == "weights"
    module = _with_base(lora, tmp_path, hub["a"])
    result = _invoke(["port", str(module), "--to", hub["bin"], "--out", str(tmp_path / "out"), "--verify",
                      "--json"], token=hub_server.read_token)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["lineage"]["verdict"] == "same" and summary["verification"]["forward_pass"]
    assert any("pytorch_model.bin" in n and "in full" in n for n in summary["notes"])


def test_subfolder_module_and_two_module_repo(hub, hub_server, hosts, tmp_path):
    token = hub_server.read_token
    listed = _invoke(["inspect", hub["multi"], "--json"], token=token)
    assert listed.exit_code == 0 and sorted(json.loads(listed.output)["modules"]) == ["rt", "sst2"]
    ambiguous = _invoke(["port", hub["multi"], "--to", hub["a2"], "--out", str(tmp_path / "x")], token=token)
    assert ambiguous.exit_code != 0 and "rt" in ambiguous.output and "sst2" in ambiguous.output
    assert not (tmp_path / "x").exists()
    for args, sub in ([f"{hub['multi']}:rt"], "rt"), ([hub["multi"], "--subfolder", "sst2"], "sst2"):
        out = tmp_path / sub
        result = _invoke(["port", *args, "--to", hub["a2"], "--out", str(out), "--json"], token=token)
        assert result.exit_code == 0, result.output
        source = json.loads(result.output)["source"]
        assert source["ref"] == hub["multi"] and source["subfolder"] == sub
    from huggingface_hub import HfApi

    from hubport.hub import push_module

    shutil.copytree(tmp_path / "rt", tmp_path / "sst2" / "rt")  # a folder with a second module inside
    pushed = f"{OWNER}/pushed-two-{tmp_path.name[-6:]}"
    push_module(tmp_path / "sst2", pushed, api=HfApi(token=hub_server.write_token))
    files = set(HfApi(token=token).list_repo_files(pushed))
    assert {"adapter_config.json", "rt/adapter_config.json", "rt/adapter_model.safetensors"} <= files


def test_offline_lineage_from_the_cache_equals_online(hub, hub_server):
    args = [sys.executable, "-m", "hubport.cli", "check", hub["module"], "--to", hub["a2"], "--json"]
    env = {**os.environ, "HF_TOKEN": hub_server.read_token}
    online = subprocess.run(args, env=env, capture_output=True, text=True, check=False, timeout=180)
    offline = subprocess.run(args, env={**env, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, check=False, timeout=180)
    assert online.returncode == 0 and offline.returncode == 0, offline.stdout + offline.stderr
    on, off = (json.loads(r.stdout)["lineage"] for r in (online, offline))
    assert on["verdict"] == off["verdict"] == "same" and on["level"] == off["level"] == "weights"
    assert on["cosine"] == off["cosine"] and on["rows"] == off["rows"]


@pytest.fixture(scope="module")
def mapped_pairs(tmp_path_factory):
    """A source host and transforms of it (same size; grown) that only a map carries a module onto."""
    from tests.fixtures.crossmods import make_module
    from tests.fixtures.transforms import Growth, build_source, transform

    root = tmp_path_factory.mktemp("agree")
    source = build_source("relu", 0, root / "relu")
    transform(source, root / "same", seed=2)
    transform(source, root / "grow", seed=1, grow=Growth())
    targets = {"same": root / "same", "grow": root / "grow"}
    return source, targets, make_module(source, "peft", "lora", root / "lora")


@pytest.mark.parametrize("kind", ["same", "grow"])
def test_check_and_port_agree_on_tier_and_residual(kind, mapped_pairs, tmp_path):
    from hubport.api import port as port_with_map
    from hubport.errors import IncompatibleError

    _, targets, module = mapped_pairs
    plan = api.check(module, targets[kind])
    tiers = {t.key: t.tier for t in plan.tensors}
    assert plan.lineage.verdict == "different" and None not in tiers.values()
    needed = max(tiers.values(), key=("copy", "embed", "weights", "probe").index)
    report = port_with_map(module, targets[kind], tmp_path / "ok", map=needed)
    assert report.provenance["crossmap"]["residual"]["r2_heldout"] == plan.lineage.residual["r2_heldout"]
    assert not report.provenance["crossmap"]["refused"]
    lower = [t for t in ("embed", "weights") if ("copy", "embed", "weights", "probe").index(t) <
             ("copy", "embed", "weights", "probe").index(needed)]
    for tier in lower:  # every tensor check says needs more is refused by port at this tier, and only those
        above = {k for k, t in tiers.items() if ("copy", "embed", "weights", "probe").index(t) >
                 ("copy", "embed", "weights", "probe").index(tier)}
        with pytest.raises(IncompatibleError) as refused:
            port_with_map(module, targets[kind], tmp_path / tier, map=tier)
        assert set(refused.value.problems) == above
        if above == set(tiers):
            assert "--allow-partial" not in refused.value.one_line() and f"--map {needed}" in refused.value.one_line()


def test_offline_map_names_the_missing_file_then_works_from_the_cache(hub, hub_server, tmp_path):
    from huggingface_hub import snapshot_download

    env = {**os.environ, "HF_TOKEN": hub_server.read_token, "HF_HUB_OFFLINE": "1"}
    # a fresh hubport cache: nothing sampled yet, and the hosts' weights are not in the huggingface_hub cache
    env["HUBPORT_CACHE"] = str(tmp_path / "cache")
    # --force: run the map itself (on one lineage an unforced map carries the copy, which needs no weights)
    args = [sys.executable, "-m", "hubport.cli", "port", hub["module"], "--to", hub["a2"], "--map", "weights",
            "--force", "--json"]
    online_check = subprocess.run([sys.executable, "-m", "hubport.cli", "check", hub["module"], "--to", hub["a2"]],
                                  env={**env, "HF_HUB_OFFLINE": "0"}, capture_output=True, text=True, check=False, timeout=180)
    assert online_check.returncode == 0, online_check.stderr
    missing = subprocess.run([*args, "--out", str(tmp_path / "a")], env=env, capture_output=True, text=True, check=False,
                             timeout=180)
    assert missing.returncode == 7 and "Traceback" not in missing.stderr
    assert "model.safetensors" in missing.stderr and "huggingface-cli download" in missing.stderr
    for repo in (hub["a"], hub["a2"]):
        snapshot_download(repo, token=hub_server.read_token)
    cached = subprocess.run([*args, "--out", str(tmp_path / "b")], env=env, capture_output=True, text=True, check=False,
                            timeout=180)
    assert cached.returncode == 0, cached.stderr
    assert json.loads(cached.stdout)["map"] == "weights" and (tmp_path / "b" / "adapter_model.safetensors").is_file()


def test_sharded_bf16_host_is_measured_by_range(hub, hub_server):
    from huggingface_hub import HfApi

    files = HfApi(token=hub_server.read_token).list_repo_files(hub["shards"])
    assert "model.safetensors.index.json" in files and sum(f.endswith(".safetensors") for f in files) > 1
    result = _invoke(["check", hub["module"], "--to", hub["shards"], "--json"], token=hub_server.read_token)
    assert result.exit_code == 0, result.output
    lineage = json.loads(result.output)["lineage"]
    assert lineage["verdict"] == "same" and lineage["level"] == "weights" and lineage["cosine"] > 0.9


@pytest.mark.parametrize("target", ["relu_b", "gated_c"])
def test_check_and_port_agree_when_no_residual_map_exists(target, lora, hosts, tmp_path):
    from hubport.api import port as port_with_map

    plan = api.check(lora, hosts[target])
    assert plan.lineage.verdict == "different" and plan.lineage.residual["verdict"] == "none"
    with pytest.raises(LineageError, match="refusing to map") as refused:
        port_with_map(lora, hosts[target], tmp_path / "out", map="weights")
    assert f"{plan.lineage.residual['r2_heldout']:.2f}" in refused.value.message
