"""Maps estimated from weights alone recover what the transform drew; the lineage check tells copy from map."""

from __future__ import annotations

import numpy as np
import pytest

from hubport.crossmap import residual_lineage, tier_needed
from hubport.crossmap.hostread import HostWeights
from hubport.crossmap.layers import linear_cka
from hubport.crossmap.maps import MapBook, NeedsTier
from hubport.crossmap.probe import collect
from hubport.hosts import host_from_config
from hubport.sources import open_host
from tests.fixtures.hosts import perturb_host
from tests.fixtures.transforms import Growth, build_source, transform


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A gated source, its grown transform (with the truth) and an unrelated host of the same config."""
    root = tmp_path_factory.mktemp("maps")
    a = build_source("gated", 0, root / "a")
    truth = transform(a, root / "b", seed=5, grow=Growth())
    same_truth = transform(a, root / "c", seed=6)
    return {"a": a, "b": root / "b", "c": root / "c", "truth": truth, "same_truth": same_truth,
            "unrelated": build_source("gated", 9, root / "u"), "finetune": perturb_host(a, root / "f", rel=0.02)}


def book(src, tgt, tier="weights", probe=None) -> MapBook:
    s, t = open_host(src), open_host(tgt)
    ss, ts = host_from_config(s.config()), host_from_config(t.config())
    return MapBook(HostWeights(s, ss, "source"), HostWeights(t, ts, "target"), tier, probe)


def test_residual_map_recovered_from_embeddings(pair):
    maps = book(pair["a"], pair["b"], "embed")
    assert np.abs(maps.residual.M - pair["truth"].M).max() < 1e-10
    assert maps.residual.r2 > 1 - 1e-12 and abs(maps.residual.scale - 1) < 1e-12
    assert maps.residual.verdict == "mapped"


def test_heads_and_within_head_maps_recovered(pair):
    maps, truth = book(pair["a"], pair["b"]), pair["truth"]
    for stack, kind in (("encoder", "self"), ("decoder", "self"), ("decoder", "cross")):
        for block in range(2):
            am = maps.attention(stack, block, kind)
            perm = truth.head_perm[stack, block, kind]
            assert dict(am.pairs) == {a: int(perm[a]) for a in range(4)}
            R = truth.within[stack, block, kind][0][1]
            assert np.abs(am.P["q"][perm[1] * 16:(perm[1] + 1) * 16, 16:32] - R).max() < 1e-8
            assert am.residual < 1e-8


def test_neurons_recovered_with_their_scales(pair):
    maps, truth = book(pair["a"], pair["b"]), pair["truth"]
    for stack in ("encoder", "decoder"):
        nm = maps.neurons(stack, 1)
        perm, scale = truth.neurons[stack, 1]
        assert np.array_equal(nm.perm, perm) and np.abs(nm.scale - scale).max() < 1e-8 and nm.residual < 1e-8


def test_layer_map_right_where_representation_similarity_ties(pair):
    """Target block 1 is inert, so its input equals block 2's: CKA ties exactly; the weights score does not."""
    maps = book(pair["a"], pair["b"])
    data = collect(pair["a"], pair["b"], maps.src.spec, maps.tgt.spec, tokens=512)
    src_in = data.hidden["s", "encoder", 1]
    ties = [linear_cka(src_in, data.hidden["t", "encoder", t]) for t in (1, 2)]
    assert ties[0] > 0.999 and abs(ties[0] - ties[1]) < 1e-6
    assert maps.layer_map("encoder") == (0, 2) and maps.layer_map("decoder") == (0, 2)
    scores = maps.layer_scores("encoder")
    assert scores[1, 2] > scores[1, 1] + 0.5


def test_lineage_says_copy_map_or_nothing(pair):
    def verdict(src, tgt):
        s, t = open_host(src), open_host(tgt)
        return residual_lineage(s, t, host_from_config(s.config()), host_from_config(t.config()))

    same = verdict(pair["a"], pair["finetune"])
    assert same["verdict"] == "same" and same["copy_is_right"] and "copy is right" in same["message"]
    mapped = verdict(pair["a"], pair["c"])
    assert mapped["verdict"] == "mapped" and "use --map" in mapped["message"] and mapped["r2_copy"] < 0.5
    assert mapped["bytes_read"] >= 2 * 256 * 64 * 8
    none = verdict(pair["a"], pair["unrelated"])
    assert none["verdict"] == "none" and none["r2_heldout"] < 0.5


def test_lineage_reads_only_the_rows_it_asks_for(pair):
    s, t = open_host(pair["a"]), open_host(pair["c"])
    ss, ts = host_from_config(s.config()), host_from_config(t.config())
    few = residual_lineage(s, t, ss, ts, rows=64)
    s, t = open_host(pair["a"]), open_host(pair["c"])
    full = residual_lineage(s, t, ss, ts, rows=None)
    assert few["rows"] < full["rows"] and few["bytes_read"] < full["bytes_read"]


def test_maps_above_the_tier_are_refused_by_name(pair):
    maps = book(pair["a"], pair["b"], "embed")
    with pytest.raises(NeedsTier) as info:
        maps.attention("encoder", 0, "self")
    assert info.value.tier == "weights"
    with pytest.raises(NeedsTier, match="layer map"):
        maps.block("encoder", 1)


@pytest.mark.parametrize(("key", "family", "variants", "depth", "want"), [
    ("base_model.model.encoder.block.0.layer.0.SelfAttention.q.lora_A.weight", "lora", "same", False, "embed"),
    ("base_model.model.encoder.block.0.layer.0.SelfAttention.q.lora_B.weight", "lora", "same", False, "weights"),
    ("base_model.model.encoder.block.0.layer.0.SelfAttention.o.lora_B.weight", "lora", "same", True, "weights"),
    ("base_model.model.encoder.block.0.layer.1.DenseReluDense.wi.lora_B.weight", "lora", "cross", False, "probe"),
    ("base_model.model.encoder.block.0.layer.1.DenseReluDense.wo.ia3_l", "ia3", "same", False, "weights"),
    ("base_model.model.encoder.block.0.layer.0.SelfAttention.o.ia3_l", "ia3", "same", False, "none"),
    ("prompt_embeddings", "prompt_tuning", "cross", True, "embed"),
    ("encoder.block.0.layer.1.adapters.m.adapter_up.weight", "bottleneck", "same", False, "embed"),
    ("encoder.block.0.layer.1.adapters.m.adapter_up.weight", "bottleneck", "same", True, "weights"),
])
def test_tier_needed(key, family, variants, depth, want, pair):
    src = host_from_config(open_host(pair["a"]).config())
    tgt = host_from_config(open_host(pair["b" if depth else "c"]).config())
    if variants == "cross":
        tgt = host_from_config({**open_host(pair["c"]).config(), "feed_forward_proj": "relu"})
    assert tier_needed(key, family, src, tgt) == want
    assert tier_needed(key, family, src, src, same_lineage=True) == "copy"
