"""Ports with estimated maps reproduce the module's function on a transformed host; naive ports do not.

Host B computes exactly what host A computes in other coordinates (tests/fixtures/transforms.py): rotated residual
with folded gains, permuted and reparametrised heads and neurons, and (growth) d 64 -> 96, 4 -> 6 heads, d_ff
128 -> 192, 2 -> 4 layers with inert extras. Every map is estimated from the hosts' weights alone.
"""

from __future__ import annotations

import json
import warnings

import pytest

from hubport.api import port
from hubport.crossmap.fam_prefix import peft_slots
from hubport.errors import IncompatibleError
from hubport.formats import load_tensors, read_module
from tests.fixtures.crossmods import effect, float64_copy, inputs, make_module, relative_error
from tests.fixtures.transforms import Growth, build_source, transform

EXACT, NAIVE = 1e-5, 0.5


@pytest.fixture(scope="module")
def hosts(tmp_path_factory):
    """Sources A (relu, gated) and their transforms: grown, same-size, shared maps, signed-permutation maps."""
    root = tmp_path_factory.mktemp("cross_hosts")
    out = {}
    for variant in ("relu", "gated"):
        a = out[variant] = build_source(variant, 0, root / variant)
        transform(a, root / f"{variant}-grow", seed=1, grow=Growth())
        transform(a, root / f"{variant}-same", seed=2)
        transform(a, root / f"{variant}-shared", seed=3, grow=Growth(), shared=True)
        transform(a, root / f"{variant}-signed", seed=4, grow=Growth(), within="signed_perm", blocks=4, shared=True)
        for kind in ("grow", "same", "shared", "signed"):
            out[f"{variant}-{kind}"] = root / f"{variant}-{kind}"
    return out


@pytest.fixture(scope="module")
def modules(tmp_path_factory):
    root = tmp_path_factory.mktemp("cross_modules")
    made: dict = {}

    def get(host, library: str, name: str):
        key = (str(host), library, name)
        if key not in made:
            made[key] = make_module(host, library, name, root / f"{len(made)}-{library}-{name}")
        return made[key]

    return get


CASES = [("peft", "lora"), ("adapters", "lora"), ("peft", "ia3_ffn"), ("adapters", "ia3_ffn"),
         ("adapters", "prefix"), ("adapters", "prefix_flat"), ("peft", "prompt"), ("adapters", "seq_bn"),
         ("adapters", "double_seq_bn")]


def _check(source, target, module, library, tmp_path, tier="weights", **kw):
    batch = inputs()
    want = effect(source, module, library, batch)
    report = port(module, target, tmp_path / f"out-{tier}", map=tier, **kw)
    return relative_error(effect(target, report.out, library, batch), want), report, want


@pytest.mark.parametrize(("library", "name"), CASES)
@pytest.mark.parametrize("pair", [("relu", "relu-grow"), ("gated", "gated-same")])
def test_mapped_port_reproduces_function_and_naive_does_not(library, name, pair, hosts, modules, tmp_path):
    source, target = hosts[pair[0]], hosts[pair[1]]
    module = modules(source, library, name)
    error, report, want = _check(source, target, module, library, tmp_path)
    assert error < EXACT, f"{library} {name}: mapped port off by {error:.2e}"
    assert not report.dropped and report.provenance["map"] == "weights"
    naive = port(module, target, tmp_path / "naive", map="naive:zero_pad")
    assert relative_error(effect(target, naive.out, library, inputs()), want) > NAIVE


@pytest.mark.parametrize("pair", [("relu", "relu-shared"), ("gated", "gated-shared")])
def test_peft_prefix_ports_exactly_by_the_virtual_residual_route(pair, hosts, modules, tmp_path):
    module = modules(hosts[pair[0]], "peft", "prefix")
    error, report, _ = _check(hosts[pair[0]], hosts[pair[1]], module, "peft", tmp_path)
    assert error < EXACT
    assert read_module(report.out).config["num_layers"] == 4


def test_peft_prefix_reports_slot_disagreement_when_layers_differ(hosts, modules, tmp_path):
    """peft feeds one stored entry to two decoder layers; per-layer maps that differ cannot both be met."""
    module = modules(hosts["relu"], "peft", "prefix")
    report = port(module, hosts["relu-grow"], tmp_path / "out", map="weights")
    assert report.provenance["crossmap"]["measures"]["prompt_embeddings.slot_disagreement"] > 1e-3
    assert any("one prefix entry" in n for n in report.plan.notes)


@pytest.mark.parametrize("library", ["peft", "adapters"])
def test_ia3_on_k_v_refused_under_dense_maps_exact_under_signed_permutations(library, hosts, modules, tmp_path):
    source = hosts["relu"]
    module = modules(source, library, "ia3_kv")
    with pytest.raises(IncompatibleError, match="off-diagonal residual") as info:
        port(module, hosts["relu-grow"], tmp_path / "dense", map="weights")
    assert all(".k." in k or ".v." in k for k in info.value.problems)
    assert not (tmp_path / "dense").exists()
    error, report, _ = _check(source, hosts["relu-signed"], module, library, tmp_path)
    assert error < EXACT and not report.dropped


def test_compacter_exact_when_map_is_block_structured_and_reports_residual_otherwise(hosts, modules, tmp_path):
    source = hosts["gated"]
    module = modules(source, "adapters", "compacter")
    error, report, _ = _check(source, hosts["gated-signed"], module, "adapters", tmp_path)
    measures = report.provenance["crossmap"]["measures"]
    assert error < EXACT and max(measures.values()) < 1e-8
    general = port(module, hosts["gated-same"], tmp_path / "general", map="weights")
    assert min(general.provenance["crossmap"]["measures"].values()) > 0.1


@pytest.mark.parametrize(("library", "name"), [("adapters", "seq_bn"), ("peft", "prompt")])
def test_embed_tier_carries_residual_modules_and_reads_less(library, name, hosts, modules, tmp_path):
    source = hosts["gated"]
    module = modules(source, library, name)
    error, report, _ = _check(source, hosts["gated-same"], module, library, tmp_path, tier="embed")
    assert error < EXACT
    weights = port(module, hosts["gated-same"], tmp_path / "w", map="weights")
    assert report.provenance["crossmap"]["bytes_read"] <= weights.provenance["crossmap"]["bytes_read"]
    names = set(json.loads((report.out / "hubport.json").read_text())["crossmap"])
    assert "residual" in names and "attn" not in names


def test_embed_tier_refuses_head_space_tensors_by_name(hosts, modules, tmp_path):
    """Every LoRA pair has one factor in head or neuron space, so `embed` carries none and says which tier would."""
    module = modules(hosts["relu"], "peft", "lora")
    with pytest.raises(IncompatibleError, match="needs --map weights") as info:
        port(module, hosts["relu-same"], tmp_path / "out", map="embed")
    assert len(info.value.problems) == len(read_module(module).tensors)
    with pytest.raises(IncompatibleError, match="no tensor of this module can be carried"):
        port(module, hosts["relu-same"], tmp_path / "partial", map="embed", allow_partial=True)
    assert not list(tmp_path.iterdir())


def test_depth_change_needs_the_weights_tier(hosts, modules, tmp_path):
    module = modules(hosts["relu"], "adapters", "seq_bn")
    with pytest.raises(IncompatibleError, match="layer map"):
        port(module, hosts["relu-grow"], tmp_path / "out", map="embed")


@pytest.mark.parametrize(("library", "name"), [("peft", "lora"), ("adapters", "lora"), ("peft", "ia3_kv"),
                                               ("adapters", "ia3_ffn"), ("adapters", "seq_bn"),
                                               ("adapters", "compacter"), ("peft", "prefix"),
                                               ("adapters", "prefix"), ("peft", "prompt")])
def test_round_trip_returns_the_original_tensors(library, name, hosts, modules, tmp_path):
    """A -> B (grown, signed, block-structured) -> A with maps estimated both ways; rank is unchanged."""
    source = hosts["gated"]
    module = float64_copy(modules(source, library, name), tmp_path / "m64")
    original = load_tensors(read_module(module))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        there = port(module, hosts["gated-signed"], tmp_path / "there", map="weights").out
        back = port(there, source, tmp_path / "back", map="weights").out
    returned = load_tensors(read_module(back))
    assert sorted(returned) == sorted(original)
    if name == "prefix" and library == "peft":  # entries no attention slot reads carry nothing and come back 0
        used = sorted(peft_slots(2, 2))
        original = {k: v.view(v.shape[0], 4, -1)[:, used] for k, v in original.items()}
        returned = {k: v.view(v.shape[0], 4, -1)[:, used] for k, v in returned.items()}
    errs = {k: float((returned[k] - original[k]).abs().max()) for k in original}
    assert max(errs.values()) < 1e-10, sorted(errs.items(), key=lambda kv: -kv[1])[:3]
    assert all(returned[k].shape == original[k].shape for k in original)  # LoRA rank and all widths kept


def test_shrinking_depth_merges_peft_lora_layers_and_refuses_adapters(hosts, modules, tmp_path):
    """B (4 layers) -> A (2): B's blocks 1 and 3 have no counterpart; their LoRA joins the neighbour's (rank 2r,
    alpha/r kept), so the target holds the sum of both mapped updates. adapters' one-rank LoRA cannot."""
    import numpy as np

    from hubport.verify import load_ported

    source, target = hosts["gated-grow"], hosts["gated"]
    module = modules(source, "peft", "lora")
    report = port(module, target, tmp_path / "out", map="weights")
    config = read_module(report.out).config
    path = "encoder.block.0.layer.0.SelfAttention.q"
    assert config["rank_pattern"][path] == 4 and config["alpha_pattern"][path] == pytest.approx(8.0)
    ported = load_tensors(read_module(report.out))
    A, B = (ported[f"base_model.model.{path}.lora_{x}.weight"].double().numpy() for x in "AB")
    assert A.shape == (4, 64) and B.shape == (64, 4)
    assert any("merged into target block 0" in n for n in report.plan.notes)
    load_ported(target, report.out, "peft")  # rank_pattern lets peft build rank 4 there
    with pytest.raises(IncompatibleError, match="one-rank LoRA"):
        port(modules(source, "adapters", "lora"), target, tmp_path / "a", map="weights")
    assert np.linalg.matrix_rank(B @ A) == 4
