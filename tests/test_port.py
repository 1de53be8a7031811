"""Porting is exact where it should be, refused where it must be, and reversible bit for bit."""

from __future__ import annotations

import shutil

import pytest
import torch
from transformers import T5ForConditionalGeneration

from hubport import api
from hubport.errors import IncompatibleError, LineageError, OutputExistsError
from hubport.formats import load_tensors, read_module
from tests.fixtures.hosts import RECIPES, batch, load_with_library, logits, train_module

MAX_DIFF = 1e-6
ALL = sorted(RECIPES)


@pytest.fixture(scope="session")
def modules(hosts, tmp_path_factory):
    """Every recipe trained 3 steps on relu_a; adapters ones in both file kinds (prefix: .bin only)."""
    root = tmp_path_factory.mktemp("modules")
    out = {}
    for name, recipe in RECIPES.items():
        kinds = [True] if recipe.library == "peft" else ([False] if "prefix" in name else [True, False])
        for st in kinds:
            model, folder = train_module(hosts["relu_a"], recipe, root / f"{name}-{st}", use_safetensors=st)
            out[name, st] = (model, folder)
    return out


def _variants(name: str) -> list[bool]:
    recipe = RECIPES[name]
    return [True] if recipe.library == "peft" else ([False] if "prefix" in name else [True, False])


CASES = [(n, st) for n in ALL for st in _variants(n)]


@pytest.mark.parametrize(("name", "st"), CASES)
def test_port_onto_related_host_equals_library_load(name, st, modules, hosts, tmp_path):
    model, folder = modules[name, st]
    report = api.port(folder, hosts["relu_a2"], tmp_path / "out")
    assert report.plan.full and report.plan.lineage.verdict == "same"
    x = batch()
    library = RECIPES[name].library
    expected = logits(load_with_library(hosts["relu_a2"], folder, library), x)
    got = logits(load_with_library(hosts["relu_a2"], report.out, library), x)
    assert (expected - got).abs().max().item() <= MAX_DIFF
    bare = logits(T5ForConditionalGeneration.from_pretrained(hosts["relu_a2"]).eval(), x)
    assert (got - bare).abs().max().item() > 1e-4  # the module is live, not silently dropped


@pytest.mark.parametrize(("name", "st"), CASES)
def test_port_onto_identical_copy_equals_trained_source(name, st, modules, hosts, tmp_path):
    model, folder = modules[name, st]
    twin = shutil.copytree(hosts["relu_a"], tmp_path / "twin")
    report = api.port(folder, twin, tmp_path / "out")
    x = batch()
    trained = logits(model, x)
    got = logits(load_with_library(twin, report.out, RECIPES[name].library), x)
    assert (trained - got).abs().max().item() <= MAX_DIFF
    assert read_module(report.out).kind == read_module(folder).kind


@pytest.mark.parametrize("name", ["peft-lora", "adapters-lora", "peft-ia3", "adapters-ia3"])
def test_gated_hosts_port_ffn_tensors_exactly(name, hosts, tmp_path):
    _, folder = train_module(hosts["gated_c"], RECIPES[name], tmp_path / "m")
    report = api.port(folder, hosts["gated_c2"], tmp_path / "out")
    assert report.plan.full
    library = RECIPES[name].library
    x = batch()
    expected = logits(load_with_library(hosts["gated_c2"], folder, library), x)
    got = logits(load_with_library(hosts["gated_c2"], report.out, library), x)
    assert (expected - got).abs().max().item() <= MAX_DIFF


@pytest.mark.parametrize("name", ALL)
def test_unrelated_host_of_same_shapes_is_refused(name, modules, hosts, tmp_path):
    _, folder = modules[name, _variants(name)[0]]
    with pytest.raises(LineageError, match="embedding rows are unrelated"):
        api.port(folder, hosts["relu_b"], tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name", ALL)
def test_round_trip_gives_original_tensors_bit_for_bit(name, modules, hosts, tmp_path):
    _, folder = modules[name, _variants(name)[-1]]
    there = api.port(folder, hosts["relu_a2"], tmp_path / "there").out
    back = api.port(there, hosts["relu_a"], tmp_path / "back").out
    original, returned = load_tensors(read_module(folder)), load_tensors(read_module(back))
    assert sorted(original) == sorted(returned)
    assert all(torch.equal(original[k], returned[k]) for k in original)


def test_v10_to_v11_refused_then_forced_then_partial(modules, hosts, tmp_path):
    _, folder = modules["peft-lora", True]
    with pytest.raises(LineageError, match="FFN relu vs gated-gelu"):
        api.port(folder, hosts["gated_c"], tmp_path / "a")
    with pytest.raises(IncompatibleError) as info:
        api.port(folder, hosts["gated_c"], tmp_path / "b", force=True)
    refused = set(info.value.problems)
    assert refused and all(".DenseReluDense.w" in k for k in refused)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    report = api.port(folder, hosts["gated_c"], tmp_path / "c", force=True, allow_partial=True)
    assert set(report.dropped) == refused and report.forced
    ported = load_tensors(read_module(report.out))
    original = load_tensors(read_module(folder))
    assert not any(".DenseReluDense." in k for k in ported)
    assert all(torch.equal(ported[k], original[k]) for k in ported)
    assert read_module(report.out).config["target_modules"] == ["o", "q", "v"]
    x = batch()
    live = logits(load_with_library(hosts["gated_c"], report.out, "peft"), x)
    bare = logits(T5ForConditionalGeneration.from_pretrained(hosts["gated_c"]).eval(), x)
    assert (live - bare).abs().max().item() > 1e-4  # the kept attention LoRA loads and acts on the gated host


def test_adapters_v10_to_v11_partial_turns_off_ffn_lora(modules, hosts, tmp_path):
    _, folder = modules["adapters-lora", False]
    report = api.port(folder, hosts["gated_c"], tmp_path / "out", force=True, allow_partial=True)
    config = read_module(report.out).method_config
    assert config["intermediate_lora"] is False and config["output_lora"] is False
    assert len(report.dropped) == 16


def test_output_folder_is_never_overwritten(modules, hosts, tmp_path):
    _, folder = modules["peft-lora", True]
    (tmp_path / "out").mkdir()
    with pytest.raises(OutputExistsError):
        api.port(folder, hosts["relu_a2"], tmp_path / "out")


def test_safetensors_flag_converts_bin_module(modules, hosts, tmp_path):
    _, folder = modules["adapters-seq-bn", False]
    report = api.port(folder, hosts["relu_a2"], tmp_path / "out", safetensors=True)
    assert read_module(report.out).kind == "safetensors"
    x = batch()
    expected = logits(load_with_library(hosts["relu_a2"], folder, "adapters"), x)
    assert (expected - logits(load_with_library(hosts["relu_a2"], report.out, "adapters"), x)).abs().max() <= MAX_DIFF


def test_provenance_records_source_target_and_slot_map(modules, hosts, tmp_path):
    import json

    _, folder = modules["adapters-compacter", True]
    report = api.port(folder, hosts["relu_a2"], tmp_path / "out", command="hubport port x --to y")
    record = json.loads((report.out / "hubport.json").read_text())
    assert record["source"]["family"] == "compacter" and record["target"]["ref"] == str(hosts["relu_a2"])
    assert record["slot_map"]["kept"] == len(read_module(folder).tensors)
    assert record["command"] == "hubport port x --to y" and record["lineage"]["verdict"] == "same"
    config = json.loads((report.out / "adapter_config.json").read_text())
    assert config["model_name"] == str(hosts["relu_a2"])


def test_compacter_with_shared_rule_is_flagged(hosts, tmp_path):
    from tests.fixtures.hosts import Recipe

    _, folder = train_module(hosts["relu_a"], Recipe("c", "adapters", "compacter", "compacter_shared"), tmp_path / "m")
    info = api.inspect(folder)
    assert any("shared_phm_rule" in n for n in info["notes"])
    assert api.inspect(tmp_path / "m")["family"] == "compacter"


def test_check_reports_the_residual_map_and_the_tier_each_tensor_needs(modules, hosts):
    _, folder = modules["peft-lora", True]
    related = api.check(folder, hosts["relu_a2"])
    assert related.lineage.residual["verdict"] == "same"
    assert {t.tier for t in related.tensors} == {"copy"}
    other = api.check(folder, hosts["gated_c"])
    assert other.lineage.verdict == "different" and other.lineage.residual["verdict"] != "same"
    tiers = {t.tier for t in other.tensors}
    assert "copy" not in tiers and tiers <= {"embed", "weights", "probe", "none"}
    ffn = {t.tier for t in other.tensors if ".DenseReluDense." in t.key}
    assert ffn and ffn <= {"weights", "probe", "none"}  # the FFN interior needs neuron maps at least


@pytest.mark.parametrize("name", ["peft-lora", "adapters-seq-bn"])
def test_verify_runs_the_port_with_its_library_and_records_the_effect(name, modules, hosts, tmp_path):
    import json

    _, folder = modules[name, _variants(name)[0]]
    report = api.port(folder, hosts["relu_a2"], tmp_path / "out", verify=True)
    verification = json.loads((report.out / "hubport.json").read_text())["verification"]
    assert verification["forward_pass"] == "ok"
    assert verification["module_effect_max_abs_logit"] > 1e-4  # the loaded module changes the host's output
