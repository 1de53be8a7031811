"""`check` costs what `port` costs whatever the host's size: bounded row samples by default, the full read with
--deep, and it says what it read."""

from __future__ import annotations

import numpy as np
import pytest

from hubport import api
from hubport.similarity import SAMPLE_SLOTS
from tests.fixtures.sparse import SHAPES, write_host, write_lora

LIMIT = 16 * 1024 * 1024
SMALL = {"d_model": 256, "d_kv": 32, "d_ff": 512, "num_heads": 8, "num_layers": 2, "vocab_size": 32128}


def related_pair(root, shape: dict):
    """Two related sparse hosts of `shape` and a q,v LoRA whose recorded base is the first."""
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((shape["vocab_size"], shape["d_model"]), dtype=np.float32)
    write_host(root / "a", shape, emb)
    write_host(root / "b", shape, emb + 0.05 * rng.standard_normal(emb.shape, dtype=np.float32))
    write_lora(root / "lora", shape, str(root / "a"), rng)
    return root


@pytest.fixture(scope="module")
def huge(tmp_path_factory):
    """Two related t5-11b-shaped hosts (45 GB sparse weight files each) and a q,v LoRA trained on the first."""
    return related_pair(tmp_path_factory.mktemp("huge"), SHAPES["t5-11b"])


def test_check_on_a_40_gb_host_reads_under_16_mb(huge):
    assert (huge / "b" / "model.safetensors").stat().st_size > 40e9
    plan = api.check(huge / "lora", huge / "b")
    assert plan.lineage.verdict == "same" and plan.lineage.residual["verdict"] == "same"
    assert plan.similarity and plan.full
    assert 0 < plan.read["bytes"] < LIMIT and plan.read["deep"] is False
    assert plan.to_dict()["read"] == plan.read
    assert plan.lineage.residual["sampled"] is True


def test_deep_check_reads_whole_matrices_and_every_row(tmp_path):
    root = related_pair(tmp_path, SMALL)
    sampled, deep = api.check(root / "lora", root / "b"), api.check(root / "lora", root / "b", deep=True)
    from hubport.crossmap.residual import anchor_count, anchor_rows
    from hubport.hosts import host_from_config
    from hubport.sources import open_host

    spec = host_from_config(open_host(root / "b").config(), "b")
    port_rows = len(anchor_rows(spec, spec, anchor_count(spec, spec)))
    assert deep.lineage.residual["rows"] == port_rows > sampled.lineage.residual["rows"]  # port's rows, refit
    assert deep.read["deep"] is True and deep.read["bytes"] > 2 * port_rows * SMALL["d_model"] * 4
    assert sampled.read["bytes"] < deep.read["bytes"] / 4
    assert deep.lineage.residual["verdict"] == sampled.lineage.residual["verdict"] == "same"
    assert set(sampled.similarity) < set(deep.similarity)  # a spread of slots by default, every slot with --deep
    assert len(sampled.similarity) == SAMPLE_SLOTS and len(deep.similarity) == 12


def test_map_tiers_refuse_unrelated_hosts_from_the_sample_before_reading_weights(tmp_path, monkeypatch):
    """Hosts with unrelated embeddings: the bounded residual fit (port's rows, within check's budget) refuses;
    no tier opens the hosts' weights."""
    from hubport.errors import LineageError
    from hubport.port import mapped

    rng = np.random.default_rng(1)
    for name in ("a", "u"):
        write_host(tmp_path / name, SMALL, rng.standard_normal((SMALL["vocab_size"], SMALL["d_model"]),
                                                               dtype=np.float32))
    write_lora(tmp_path / "lora", SMALL, str(tmp_path / "a"), rng)
    opened = []
    monkeypatch.setattr(mapped, "MapBook", lambda *args, **kw: opened.append(args))
    with pytest.raises(LineageError, match=r"no residual map found"):
        api.port(tmp_path / "lora", tmp_path / "u", tmp_path / "out", map="embed")
    assert opened == [] and not (tmp_path / "out").exists()


def test_a_weak_fit_on_a_sample_is_uncertain_and_the_full_fit_decides(tmp_path):
    """Rotated embeddings under heavy noise (R2 about 0.35): the sample cannot refuse; `--map` fits every row."""
    from hubport.errors import LineageError

    rng = np.random.default_rng(2)
    d = SMALL["d_model"]
    emb = rng.standard_normal((SMALL["vocab_size"], d), dtype=np.float32)
    rotation, _ = np.linalg.qr(rng.standard_normal((d, d)))
    write_host(tmp_path / "a", SMALL, emb)
    write_host(tmp_path / "u", SMALL, emb @ rotation.astype(np.float32) + 1.36 * rng.standard_normal(emb.shape,
                                                                                                  dtype=np.float32))
    write_lora(tmp_path / "lora", SMALL, str(tmp_path / "a"), rng)
    from hubport.crossmap.residual import residual_lineage
    from hubport.hosts import host_from_config
    from hubport.sources import open_host

    a, u = open_host(tmp_path / "a"), open_host(tmp_path / "u")
    spec = host_from_config(a.config(), "a")
    residual = residual_lineage(a, u, spec, spec, budget=4 * 1024 * 1024)   # a budget that binds at this size
    assert residual["sampled"] and residual["verdict"] == "uncertain" and 0.25 <= residual["r2_heldout"] < 0.5
    assert "check --deep" in residual["message"]
    default = api.check(tmp_path / "lora", tmp_path / "u").lineage.residual   # fits port's rows: no sample here
    assert default["verdict"] == "none" and not default["sampled"]
    deep = api.check(tmp_path / "lora", tmp_path / "u", deep=True).lineage.residual
    assert deep["verdict"] == "none" and not deep["sampled"]
    with pytest.raises(LineageError, match="no residual map found") as caught:
        api.port(tmp_path / "lora", tmp_path / "u", tmp_path / "out", map="embed")
    assert "a sample of" not in caught.value.message  # refused by the full fit, not the sample
