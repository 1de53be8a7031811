"""Naive baselines and function fidelity for the harness; the port's contract (tiers, refusals, provenance)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import yaml

from hubport import api
from hubport.api import port
from hubport.crossmap import TIERS
from hubport.crossmap.fidelity import function_fidelity
from hubport.errors import LineageError, UnknownNameError
from hubport.formats import read_module
from hubport.verify import load_ported
from tests.fixtures.crossmods import make_module
from tests.fixtures.transforms import Growth, build_source, transform

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "cross.yaml"


@pytest.fixture(scope="module")
def hosts(tmp_path_factory):
    root = tmp_path_factory.mktemp("baseline_hosts")
    a = build_source("relu", 0, root / "a")
    transform(a, root / "b", seed=1, grow=Growth())
    return {"a": a, "b": root / "b", "gated": build_source("gated", 5, root / "g"),
            "unrelated": build_source("relu", 7, root / "u")}


def _ids(n: int = 16) -> list[list[int]]:
    rng = random.Random(0)
    return [[rng.randrange(3, 256) for _ in range(rng.randrange(5, 12))] for _ in range(n)]


def test_fidelity_of_a_module_with_itself_is_perfect(hosts, tmp_path):
    module = make_module(hosts["a"], "peft", "lora", tmp_path / "m")
    for labels in (None, (5, 9)):
        f = function_fidelity(hosts["a"], module, hosts["a"], module, _ids(), label_ids=labels)
        assert f["effect_carried"] == pytest.approx(1.0) and f["effect_correlation"] == pytest.approx(1.0)
        assert f["kl_carried"] == pytest.approx(1.0) and f["n"] == 16 and f["source_effect_rms"] > 0


def test_fidelity_separates_mapped_from_naive(hosts, tmp_path):
    module = make_module(hosts["a"], "adapters", "seq_bn", tmp_path / "m")
    mapped = port(module, hosts["b"], tmp_path / "mapped", map="weights")
    naive = port(module, hosts["b"], tmp_path / "naive", map="naive:zero_pad")
    good = function_fidelity(hosts["a"], module, hosts["b"], mapped.out, _ids(), label_ids=(5, 9))
    bad = function_fidelity(hosts["a"], module, hosts["b"], naive.out, _ids(), label_ids=(5, 9))
    assert good["effect_carried"] > 0.999 and good["effect_correlation"] > 0.999
    assert bad["effect_carried"] < 0.5


@pytest.mark.parametrize(("library", "name"), [("peft", "lora"), ("peft", "ia3_ffn"), ("peft", "prefix"),
                                               ("adapters", "lora"), ("adapters", "prefix"),
                                               ("adapters", "compacter")])
def test_zero_pad_writes_what_the_library_loads_on_a_bigger_gated_host(library, name, hosts, tmp_path):
    """relu 64/4 heads/2 layers onto gated 64 -> the grown relu host is 96 wide; here onto gated (FFN renamed)."""
    module = make_module(hosts["a"], library, name, tmp_path / "m")
    report = port(module, hosts["gated"], tmp_path / "out", map="naive:zero_pad")
    assert report.provenance["map"] == "naive:zero_pad"
    keys = read_module(report.out).tensors
    assert not any(".wi." in k for k in keys)
    load_ported(hosts["gated"], report.out, library)  # loads without a shape error


def test_drop_keeps_what_fits_and_drops_the_rest(hosts, tmp_path):
    module = make_module(hosts["a"], "peft", "lora", tmp_path / "m")
    report = port(module, hosts["gated"], tmp_path / "out", map="naive:drop")
    assert report.dropped and all(".DenseReluDense." in k for k in report.dropped)
    with pytest.raises(UnknownNameError, match="map tier"):
        port(module, hosts["gated"], tmp_path / "x", map="naive:pad")


def test_port_through_the_api_records_tier_bytes_and_refusals(hosts, tmp_path):
    module = make_module(hosts["a"], "peft", "ia3", tmp_path / "m")
    report = api.port(module, hosts["b"], tmp_path / "out", map="weights", allow_partial=True, command="c")
    record = json.loads((report.out / "hubport.json").read_text())
    assert record["map"] == "weights" and record["crossmap"]["bytes_read"] > 0
    assert set(record["crossmap"]["refused"]) == set(report.dropped) and len(report.dropped) == 12
    assert read_module(report.out).config["target_modules"] == ["wo"]
    assert all("off-diagonal residual" in why for why in record["crossmap"]["refused"].values())
    assert record["crossmap"]["layer_map"] == {"decoder": [0, 2], "encoder": [0, 2]}


def test_unknown_tier_and_unrelated_hosts_are_refused(hosts, tmp_path):
    module = make_module(hosts["a"], "adapters", "seq_bn", tmp_path / "m")
    with pytest.raises(UnknownNameError, match="map tier"):
        port(module, hosts["b"], tmp_path / "x", map="embeddings")
    with pytest.raises(LineageError, match="no residual map found"):
        port(module, hosts["unrelated"], tmp_path / "y", map="embed")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_cross_config_names_valid_tiers_and_defined_hosts():
    grid = yaml.safe_load(CONFIG.read_text())
    defaults = grid["defaults"]
    conditions = set(defaults["conditions"])
    tiers = {c.split(":", 1)[1] for c in conditions if c.startswith("ported:")}
    assert tiers and tiers <= set(TIERS) and {"zero_pad", "drop", "scratch", "sampled", "host"} <= conditions
    for exp in grid["experiments"].values():
        for pair in exp.get("pairs", defaults.get("pairs", [])):
            origin, receiving = (p.strip() for p in pair.split("->"))
            assert origin in defaults["hosts"] and receiving in defaults["hosts"]
        names = [tuple(p.strip() for p in pair.split("->")) for pair in exp.get("pairs", [])]
        assert all((b, a) in names for a, b in names)  # both directions


def test_tiny_offline_cross_grid_mirrors_the_real_one(tmp_path):
    from tests.fixtures.crossmods import tiny_cross_grid

    tiny, real = tiny_cross_grid(tmp_path), yaml.safe_load(CONFIG.read_text())
    assert set(tiny["defaults"]) == set(real["defaults"])
    assert tiny["defaults"]["conditions"] == real["defaults"]["conditions"]
    module = make_module(Path(tiny["defaults"]["hosts"]["small"]), "adapters", "seq_bn", tmp_path / "m")
    report = port(module, tiny["defaults"]["hosts"]["big"], tmp_path / "out", map="weights")
    assert report.provenance["crossmap"]["residual"]["r2_heldout"] > 0.999
    from harness.grid.spec import expand, parse_grid

    grid = parse_grid(tiny, tmp_path)
    assert {c for e in grid.experiments for c in e.conditions} == set(real["defaults"]["conditions"])
    specs = expand(grid)
    assert {(s.origin, s.receiving) for s in specs} == {("small", "big"), ("big", "small")}
    assert len({s.run_id for s in specs}) == len(specs)


def test_embed_tier_over_the_hub_reads_only_embeddings_and_gains(hub_server, tmp_path):
    """Hosts by repo id: safetensors range reads of the embedding rows and the RMSNorm gains, nothing else."""
    import uuid

    from huggingface_hub import HfApi

    a = build_source("relu", 0, tmp_path / "a")
    transform(a, tmp_path / "b", seed=2)
    writer, tag = HfApi(token=hub_server.write_token), uuid.uuid4().hex[:8]
    repos = {}
    for name in ("a", "b"):
        repos[name] = f"hubport-cross/{name}-{tag}"
        writer.create_repo(repos[name], exist_ok=True)
        writer.upload_folder(repo_id=repos[name], folder_path=str(tmp_path / name))
    module = make_module(a, "adapters", "seq_bn", tmp_path / "m")
    config = json.loads((module / "adapter_config.json").read_text())
    local = port(module, tmp_path / "b", tmp_path / "local", map="embed")
    (module / "adapter_config.json").write_text(json.dumps({**config, "model_name": repos["a"]}))
    report = port(module, repos["b"], tmp_path / "hub", map="embed",
                           hub=HfApi(token=hub_server.read_token))
    spent = report.provenance["crossmap"]["bytes_read"]
    whole = sum((tmp_path / n / "model.safetensors").stat().st_size for n in ("a", "b"))
    assert 2 * 256 * 64 * 8 <= spent < whole / 3
    from hubport.formats import load_tensors

    ours, theirs = load_tensors(read_module(report.out)), load_tensors(read_module(local.out))
    assert all(float((ours[k] - theirs[k]).abs().max()) == 0.0 for k in theirs)
