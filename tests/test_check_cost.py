"""`check` costs what `port` costs whatever the host's size: bounded row samples by default, the full read with
--deep, and it says what it read."""

from __future__ import annotations

import numpy as np
import pytest

from hubport import api
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
    assert deep.read["deep"] is True and deep.read["bytes"] > 2 * SMALL["vocab_size"] * SMALL["d_model"] * 4
    assert deep.lineage.residual["rows"] == SMALL["vocab_size"] > sampled.lineage.residual["rows"]
    assert sampled.read["bytes"] < deep.read["bytes"] / 4
    assert deep.lineage.residual["verdict"] == sampled.lineage.residual["verdict"] == "same"
    assert set(deep.similarity) == set(sampled.similarity)
