"""Every method peft and adapters save on T5 ports within its lineage by the generic rule: made and trained by its
library, ported onto a related host, loaded back by the same library with logits equal; or refused by name."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import T5ForConditionalGeneration

from hubport import api
from hubport.errors import IncompatibleError
from tests.fixtures.hosts import batch, load_with_library, logits

MAX_DIFF = 1e-5


def inputs() -> dict:
    """A batch without labels (peft's AdaLoRA adds its orthogonality loss to any loss, and needs training state)."""
    x = batch()
    return {"input_ids": x["input_ids"], "attention_mask": x["attention_mask"], "decoder_input_ids": x["labels"]}


def _peft(name: str):
    import peft

    seq = {"task_type": "SEQ_2_SEQ_LM"}
    return {
        "loha": lambda: peft.LoHaConfig(**seq, r=4, target_modules=["q", "v", "wo"]),
        "lokr": lambda: peft.LoKrConfig(**seq, r=4, target_modules=["q", "v"]),
        "adalora": lambda: peft.AdaLoraConfig(**seq, init_r=4, target_r=2, target_modules=["q", "v"], tinit=1,
                                              tfinal=1, deltaT=1, total_step=4),
        "vera": lambda: peft.VeraConfig(**seq, r=4, target_modules=["q", "v"]),
        "oft": lambda: peft.OFTConfig(**seq, r=4, oft_block_size=0, target_modules=["q", "v"]),
        "boft": lambda: peft.BOFTConfig(**seq, boft_block_size=4, target_modules=["q", "v"]),
        "p_tuning": lambda: peft.PromptEncoderConfig(**seq, num_virtual_tokens=4, encoder_hidden_size=16),
        "lora_modules_to_save": lambda: peft.LoraConfig(**seq, r=4, target_modules=["q", "v"],
                                                        modules_to_save=["lm_head"]),
        "lora_save_wo": lambda: peft.LoraConfig(**seq, r=4, target_modules=["q", "v"], modules_to_save=["wo"]),
    }[name]()


def _adapters(name: str):
    import adapters

    return {
        "mam": lambda: adapters.MAMConfig(prefix_tuning=adapters.PrefixTuningConfig(bottleneck_size=16,
                                                                                     prefix_length=4)),
        "unipelt": lambda: adapters.UniPELTConfig(),
        "loreft": lambda: adapters.LoReftConfig(),
        "seq_bn_inv": lambda: adapters.SeqBnInvConfig(reduction_factor=4),
    }[name]()


METHODS = [("peft", n) for n in ("loha", "lokr", "adalora", "vera", "oft", "boft", "p_tuning",
                                  "lora_modules_to_save")] + \
          [("adapters", n) for n in ("mam", "unipelt", "loreft", "seq_bn_inv")]


def make_module(host, library: str, name: str, out, steps: int = 3):
    """The library's own module on `host`, trained a few steps (so no tensor keeps its initial value), saved."""
    torch.manual_seed(0)
    model = T5ForConditionalGeneration.from_pretrained(host)
    if library == "peft":
        import peft

        model = peft.get_peft_model(model, _peft(name))
    else:
        import adapters

        adapters.init(model)
        model.add_adapter("m", config=_adapters(name))
        model.train_adapter("m")
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-2)
    model.train()
    for step in range(steps):
        model(**batch(seed=100 + step)).loss.backward()
        opt.step()
        if name == "adalora":
            model.base_model.update_and_allocate(step)  # the rank budget: rank_pattern lands in the config
        opt.zero_grad()
    model.eval()
    if library == "peft":
        model.save_pretrained(out)
    else:  # adapters cannot write prefix-tuning unions as safetensors (shared tensors): .bin, as users get
        model.save_adapter(str(out), "m", with_head=False, use_safetensors=name not in ("mam", "unipelt"))
    return out


@pytest.fixture(scope="module")
def made(hosts, tmp_path_factory):
    root = tmp_path_factory.mktemp("methods")
    return {m: make_module(hosts["relu_a"], *m, root / "-".join(m)) for m in METHODS}


@pytest.mark.parametrize(("library", "name"), METHODS)
def test_method_ports_within_its_lineage_and_loads_back_equal(library, name, made, hosts, tmp_path):
    folder = made[library, name]
    report = api.port(folder, hosts["relu_a2"], tmp_path / "out")
    assert report.plan.full and report.plan.lineage.verdict == "same"
    assert {t.rule for t in report.plan.tensors} & {"generic"}  # the generic rule decided something
    x = inputs()
    expected = logits(load_with_library(hosts["relu_a2"], folder, library), x)
    got = logits(load_with_library(hosts["relu_a2"], report.out, library), x)
    assert (expected - got).abs().max().item() <= MAX_DIFF
    bare = logits(T5ForConditionalGeneration.from_pretrained(hosts["relu_a2"]).eval(), x)
    assert (got - bare).abs().max().item() > 1e-4  # live, not silently dropped
    saved = json.loads((folder / "adapter_config.json").read_text())
    ported = json.loads((report.out / "adapter_config.json").read_text())
    method = "peft_type" if library == "peft" else "config"
    assert ported[method] == saved[method]  # AdaLoRA's rank_pattern, the union's members: kept as saved


def test_adalora_rank_state_travels(made, hosts, tmp_path):
    folder = made["peft", "adalora"]
    saved = json.loads((folder / "adapter_config.json").read_text())
    assert saved.get("rank_pattern")  # the budget allocation ran, so there is rank state to carry
    report = api.port(folder, hosts["relu_a2"], tmp_path / "out")
    assert json.loads((report.out / "adapter_config.json").read_text())["rank_pattern"] == saved["rank_pattern"]
    singular = [t for t in report.plan.tensors if t.key.endswith("lora_E")]
    assert singular and all(t.status == "maps" for t in singular)


@pytest.mark.parametrize(("library", "name", "shared"), [("peft", "vera", "vera_A"),
                                                         ("peft", "lora_modules_to_save", "lm_head.weight"),
                                                         ("adapters", "seq_bn_inv", "invertible_adapters"),
                                                         ("adapters", "mam", "prefix_tuning.prefix_tunings")])
def test_inspect_and_check_describe_each_method(library, name, shared, made, hosts):
    info = api.inspect(made[library, name])
    plan = api.check(made[library, name], hosts["relu_a2"])
    generic = [t for t in plan.tensors if t.rule == "generic"]
    assert any(shared in t.key for t in generic) and all(t.status == "maps" for t in generic)
    assert info["family"] == plan.family
    if info["family"] == "generic":
        assert info["config"]["method"] and any("generic rule" in n for n in info["notes"])
    else:
        assert any("generic rule" in n for n in plan.notes)


def test_modules_to_save_of_another_shape_is_refused_by_name(hosts, tmp_path):
    """A copy of the FFN output (`modules_to_save=['wo']`) cannot land on a host whose d_ff differs."""
    from transformers import T5Config

    source = T5ForConditionalGeneration.from_pretrained(hosts["relu_a"])
    config = T5Config(**{**source.config.to_dict(), "d_ff": 48})
    target = T5ForConditionalGeneration(config)
    target.shared.weight.data.copy_(source.shared.weight.data)  # same vocabulary rows: the same lineage
    target.save_pretrained(tmp_path / "narrow")
    folder = make_module(hosts["relu_a"], "peft", "lora_save_wo", tmp_path / "module", steps=1)
    plan = api.check(folder, tmp_path / "narrow")
    refused = {t.key for t in plan.refused}
    assert plan.lineage.verdict == "same" and refused
    assert all(k.endswith("DenseReluDense.wo.weight") for k in refused)
    assert all("d_ff" in t.reason or "(in, out)" in t.reason for t in plan.refused)
    with pytest.raises(IncompatibleError, match=r"DenseReluDense\.wo\.weight \(shape_mismatch\)"):
        api.port(folder, tmp_path / "narrow", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    kept = api.port(folder, tmp_path / "narrow", tmp_path / "partial", allow_partial=True)
    assert set(kept.dropped) == refused and any(t.status == "maps" for t in kept.plan.tensors)


def test_map_tiers_refuse_a_generic_method_by_name_before_reading_weights(made, hosts, tmp_path):
    with pytest.raises(IncompatibleError, match="no cross-host mapper for peft LOHA"):
        api.port(made["peft", "loha"], hosts["gated_c"], tmp_path / "out", map="embed", base=str(hosts["relu_a"]))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("library", "name", "method"), [("peft", "loha", "LOHA"), ("adapters", "unipelt", "union")])
def test_cli_inspect_and_check_name_the_method_and_what_was_read(library, name, method, made, hosts):
    from typer.testing import CliRunner

    from hubport.cli import app

    runner, env = CliRunner(), {"COLUMNS": "300"}
    shown = runner.invoke(app, ["inspect", str(made[library, name])], env=env)
    assert shown.exit_code == 0, shown.output
    assert "generic" in shown.output and f"method={method}" in shown.output and "generic rule" in shown.output
    checked = runner.invoke(app, ["check", str(made[library, name]), "--to", str(hosts["relu_a2"])], env=env)
    assert checked.exit_code == 0, checked.output
    assert "a full port is possible" in checked.output
    assert "MB of host weights (bounded row samples; --deep reads all)" in checked.output
    if method == "union":
        assert "a ConfigUnion of" in checked.output and "each member's tensors ported" in checked.output


def test_the_generic_rule_declares_the_family_protocol_and_takes_only_known_methods():
    from hubport.errors import UnknownNameError
    from hubport.families import REGISTRY, Family, detect_family, generic, get_family

    protocol = [n for n in Family.__dict__ if not n.startswith("_") and callable(Family.__dict__[n])]
    assert all(callable(getattr(generic, n, None)) for n in protocol) and generic.NAME not in REGISTRY
    assert detect_family("peft", {"peft_type": "LOHA"}, generic_ok=True) is generic is get_family("generic")
    assert detect_family("adapters", {"architecture": "union"}, generic_ok=True) is generic
    with pytest.raises(UnknownNameError, match="peft method 'LOHA'"):
        detect_family("peft", {"peft_type": "LOHA"})  # the engine trains registry families only
    with pytest.raises(UnknownNameError, match="peft method 'LOHAS'"):
        detect_family("peft", {"peft_type": "LOHAS"}, generic_ok=True)  # not a method peft knows
