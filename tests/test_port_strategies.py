"""One port transaction for every strategy: --force, --verify, --evaluate (and so --train-steps, which runs inside
the evaluator) and --push act the same whichever --map tier carries the module, and a failure leaves nothing."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from hubport import api
from hubport.cli import app
from hubport.errors import LineageError, UnknownNameError
from hubport.formats import load_tensors, read_module
from hubport.port.strategies import STRATEGIES, get_strategy
from tests.fixtures.crossmods import make_module
from tests.fixtures.transforms import build_source, transform

runner = CliRunner()


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A host, the same function in rotated coordinates (another lineage to the lineage check), a bottleneck
    adapter (which every tier carries, embed included) and a LoRA."""
    root = tmp_path_factory.mktemp("strategy_hosts")
    a = build_source("relu", 0, root / "a")
    transform(a, root / "b", seed=1)
    return a, root / "b", make_module(a, "adapters", "seq_bn", root / "seq_bn"), make_module(a, "peft", "lora",
                                                                                             root / "lora")


def _trained_in_place(calls: list):
    """An evaluator that, like --train-steps, changes the module in its folder and reports on it."""
    def evaluate(folder, target_files) -> dict:
        from safetensors.torch import load_file, save_file

        path = next(folder.glob("*.safetensors"))
        tensors = {k: v + 1.0 for k, v in load_file(str(path)).items()}
        save_file(tensors, str(path), metadata={"format": "pt"})
        calls.append((folder.name, sorted(p.name for p in folder.iterdir()), sum(float(v.sum()) for v in
                                                                                  tensors.values())))
        return {"accuracy": 0.5, "train_steps": 1}
    return evaluate


@pytest.mark.parametrize("name", sorted(set(STRATEGIES) - {"distill"}))  # distill: tests/test_port_distill.py
def test_every_strategy_verifies_evaluates_and_forces_through_one_commit(name, pair, tmp_path):
    a, b, module, _ = pair
    calls: list = []
    report = api.port(module, b, tmp_path / "out", map=name, force=True, allow_partial=True, verify=True,
                      evaluate=_trained_in_place(calls), base=str(a), probe_tokens=512, command="test")
    record = json.loads((report.out / "hubport.json").read_text())
    assert record["map"] == name and record["command"] == "test"
    assert record["verification"]["forward_pass"] == "ok"
    assert record["evaluation"] == {"accuracy": 0.5, "train_steps": 1}
    # the evaluator ran once, in the temporary folder, on a complete module (weights, config, provenance)
    assert len(calls) == 1 and calls[0][0] != "out" and "hubport.json" in calls[0][1] and len(calls[0][1]) == 3
    # what appears at `out` is the module the evaluator left (trained in place), not the one before it
    written = load_tensors(read_module(report.out))
    assert sum(float(v.sum()) for v in written.values()) == pytest.approx(calls[0][2])
    assert record["forced"] == report.forced and report.forced == (name in ("copy", "naive:drop",
                                                                          "naive:zero_pad"))
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_failing_evaluator_leaves_no_folder_for_any_tier(pair, tmp_path):
    a, b, module, _ = pair

    def broken(folder, target_files) -> dict:
        raise RuntimeError("evaluation failed")

    for name in ("copy", "weights", "naive:zero_pad"):
        with pytest.raises(RuntimeError):
            api.port(module, b, tmp_path / name.replace(":", "-"), map=name, force=True, allow_partial=True,
                     evaluate=broken, base=str(a))
    assert list(tmp_path.iterdir()) == []


def test_copy_across_lineages_is_refused_without_force_and_unknown_names_get_a_suggestion(pair, tmp_path):
    a, b, module, _ = pair
    with pytest.raises(LineageError, match="refusing to copy"):
        api.port(module, b, tmp_path / "x", base=str(a))
    with pytest.raises(UnknownNameError, match="map tier 'wieghts'") as caught:
        get_strategy("wieghts")
    assert caught.value.hint == "did you mean 'weights'?"
    assert not (tmp_path / "x").exists()


def test_probe_refuses_before_its_probe_passes(tmp_path, monkeypatch):
    """Unrelated hosts: the residual map refuses from the embeddings alone; no forward pass runs."""
    import hubport.crossmap.probe as probe

    a, u = build_source("relu", 0, tmp_path / "a"), build_source("relu", 7, tmp_path / "u")
    module = make_module(a, "adapters", "seq_bn", tmp_path / "m")
    ran = []
    monkeypatch.setattr(probe, "collect", lambda *args, **kw: ran.append(args))
    with pytest.raises(LineageError, match="no residual map found"):
        api.port(module, u, tmp_path / "out", map="probe", base=str(a))
    assert ran == [] and not (tmp_path / "out").exists()


def test_cli_map_tier_with_verify_and_push(pair, hub_server, tmp_path):
    from huggingface_hub import HfApi

    a, b, _, module = pair
    repo = f"hubport-e2e/strategy-{tmp_path.name[-6:]}"
    result = runner.invoke(app, ["port", str(module), "--to", str(b), "--base", str(a), "--map", "weights",
                                 "--allow-partial", "--verify", "--out", str(tmp_path / "out"), "--push", repo,
                                 "--json"], env={"HF_TOKEN": hub_server.write_token, "COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["map"] == "weights" and summary["verification"]["forward_pass"] == "ok"
    pushed = HfApi(token=hub_server.read_token).hf_hub_download(repo, "hubport.json")
    assert json.loads(open(pushed).read())["verification"] == summary["verification"]
