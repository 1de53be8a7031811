"""One family registry: every family declares its whole protocol, and the pieces that read REGISTRY (the engine,
the tier rules, the cross-host mappers) agree with it."""

from __future__ import annotations

import pytest

from hubport.crossmap.tiers import tier_needed
from hubport.engine.modules import FAMILIES, SUPPORTED, ModuleSpec
from hubport.errors import UnknownNameError
from hubport.families import REGISTRY, Family, detect_family, get_family
from hubport.hosts import host_from_config
from hubport.keys import parse_key

PROTOCOL = [name for name in Family.__dict__ if not name.startswith("_") and callable(Family.__dict__[name])]
SAVED = {  # one saved config per family and library, as the libraries write them
    ("lora", "peft"): {"peft_type": "LORA"},
    ("ia3", "peft"): {"peft_type": "IA3"},
    ("prefix_tuning", "peft"): {"peft_type": "PREFIX_TUNING"},
    ("prompt_tuning", "peft"): {"peft_type": "PROMPT_TUNING"},
    ("lora", "adapters"): {"architecture": "lora", "composition_mode": "add"},
    ("ia3", "adapters"): {"architecture": "lora", "composition_mode": "scale"},
    ("prefix_tuning", "adapters"): {"architecture": "prefix_tuning"},
    ("bottleneck", "adapters"): {"reduction_factor": 16, "phm_layer": False},
    ("compacter", "adapters"): {"reduction_factor": 16, "phm_layer": True},
}
HOST = {"model_type": "t5", "d_model": 64, "d_kv": 16, "d_ff": 128, "num_heads": 4, "num_layers": 2,
        "vocab_size": 256}


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_each_family_declares_the_whole_protocol(name):
    family = REGISTRY[name]
    assert family.NAME == name and set(family.LIBRARIES) <= {"peft", "adapters"}
    missing = [attr for attr in PROTOCOL if not callable(getattr(family, attr, None))]
    assert not missing, f"{name} lacks {missing}"


@pytest.mark.parametrize(("name", "library"), sorted(SAVED))
def test_detection_engine_and_registry_agree(name, library):
    assert detect_family(library, SAVED[name, library]) is REGISTRY[name]
    assert library in REGISTRY[name].LIBRARIES and name in SUPPORTED[library]
    assert ModuleSpec.of(name, library).family == name


def test_engine_families_are_the_registry():
    assert FAMILIES == tuple(REGISTRY)
    assert {(f, lib) for lib, names in SUPPORTED.items() for f in names} == set(SAVED)
    with pytest.raises(UnknownNameError, match="family 'lorra'") as caught:
        get_family("lorra")
    assert caught.value.hint == "did you mean 'lora'?"


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_tier_rules_come_from_the_family(name):
    relu, gated = host_from_config(HOST), host_from_config({**HOST, "feed_forward_proj": "gated-gelu"})
    key = "base_model.model.encoder.block.0.layer.1.DenseReluDense.wo.lora_A.weight"
    want = REGISTRY[name].tier(parse_key(key), relu, gated)
    assert tier_needed(key, name, relu, gated) == want in ("embed", "weights", "probe", "none")
    assert tier_needed(key, name, relu, relu, same_lineage=True) == "copy"
