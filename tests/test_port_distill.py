"""`hubport port --map distill` through the one commit transaction (tiny hosts, CPU, seconds): the record and
card, --verify/--evaluate/--force, the data default, --init, a killed distillation leaving nothing; and the
tier mends of issue 10 (the no-map hint, which tier `check` says will run, maps never worse than the copy)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hubport import api
from hubport.cli import app
from hubport.errors import ConfigError, LineageError, UnknownNameError
from hubport.formats import load_tensors, read_module
from tests.fixtures import tiny
from tests.fixtures.tiny import tiny_study  # noqa: F401  (fixture)
from tests.test_distill import teacher  # noqa: F401  (fixture)

runner = CliRunner()
CFG = {"template": "sentiment: {text}", "max_new_tokens": 3, "batch_size": 8, "lr": 1e-2}


@pytest.fixture(scope="module")
def unrelated(tmp_path_factory) -> Path:
    """Another lineage (other seed, same tokenizer): the copy and every map tier are refused onto it."""
    return tiny.build_hosts(tmp_path_factory.mktemp("unrelated-port"), seed=7)[0]


def _settings(study, steps: int = 30, **more) -> dict:
    return {"data": str(study.data), "steps": steps, **CFG, **more}


def test_distill_port_records_verifies_and_evaluates(tiny_study, teacher, unrelated, tmp_path):  # noqa: F811
    from hubport.card import build_card

    calls = []

    def evaluate(folder, target_files) -> dict:
        calls.append(sorted(p.name for p in folder.iterdir()))
        return {"accuracy": 0.5, "train_steps": 2}

    report = api.port(teacher, unrelated, tmp_path / "out", map="distill", verify=True, evaluate=evaluate,
                      command="test", settings=_settings(tiny_study))
    record = json.loads((report.out / "hubport.json").read_text())
    d = record["distill"]
    assert record["map"] == "distill" and d["init"] == "fresh"  # check finds no tier onto this host
    assert d["labels"] == "labels not used" and d["labels_used"] is False and d["steps"] == 30
    assert d["data"]["sha256"] and d["data"]["source"] == str(tiny_study.data) and d["inputs"] + d["held_out"] == 96
    assert d["agreement_after"] > d["agreement_before"] and d["kl_after"] < d["kl_before"]
    assert record["verification"]["forward_pass"] == "ok" and record["evaluation"]["accuracy"] == 0.5
    assert calls and "hubport.json" in calls[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    # the written module is the distilled one, not the fresh start nor the teacher
    written = load_tensors(read_module(report.out))
    source = load_tensors(read_module(teacher))
    assert set(written) == set(source) and any(not (written[k] == source[k]).all() for k in written)
    card = build_card(read_module(report.out), "me/distilled", record)
    assert "distilled" in card.data.tags and card.data.base_model_relation == "adapter"
    assert "teacher agreement" in str(card)


def test_without_data_the_module_named_data_is_used_else_one_line(tiny_study, teacher, unrelated,  # noqa: F811
                                                                   tmp_path):
    result = runner.invoke(app, ["port", str(teacher), "--to", str(unrelated), "--map", "distill",
                                 "--out", str(tmp_path / "out")])
    assert result.exit_code == 8 and "pass --data" in result.output.lower() and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
    named = shutil.copytree(teacher, tmp_path / "named")
    (named / "hubport.json").write_text(json.dumps({"evaluation": {"dataset": str(tiny_study.data)}}))
    settings = _settings(tiny_study, steps=0)
    del settings["data"]
    report = api.port(named, unrelated, tmp_path / "named-out", map="distill", settings=settings)
    assert report.provenance["distill"]["data"]["source"] == str(tiny_study.data)


def test_init_tiers_refuse_like_their_own_port_and_unknown_init_is_named(tiny_study, teacher,  # noqa: F811
                                                                         unrelated, tmp_path):
    with pytest.raises(LineageError):
        api.port(teacher, unrelated, tmp_path / "a", map="distill", init="copy", settings=_settings(tiny_study))
    with pytest.raises(UnknownNameError) as unknown:
        api.port(teacher, unrelated, tmp_path / "b", map="distill", init="frsh", settings=_settings(tiny_study))
    assert "did you mean 'fresh'" in unknown.value.one_line().lower()
    report = api.port(teacher, unrelated, tmp_path / "c", map="distill", init="copy", force=True,
                      settings=_settings(tiny_study, steps=5))
    assert report.provenance["distill"]["init"] == "copy" and report.forced
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]


def test_on_the_same_lineage_auto_starts_from_the_copy(tiny_study, teacher, tmp_path):  # noqa: F811
    report = api.port(teacher, tiny_study.receiving, tmp_path / "out", map="distill",
                      settings=_settings(tiny_study, steps=5))
    assert report.provenance["distill"]["init"] == "copy"
    assert report.provenance["distill"]["agreement_before"] >= 0.5  # a fresh start agrees on none


def test_a_killed_distillation_leaves_no_folder(tiny_study, teacher, unrelated, tmp_path,  # noqa: F811
                                                 monkeypatch):
    from hubport.distill import kd

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    calls, real = [], kd.kd_loss

    def killed(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(kd, "kd_loss", killed)
    result = runner.invoke(app, ["port", str(teacher), "--to", str(unrelated), "--map", "distill", "--data",
                                 str(tiny_study.data), "--distill-steps", "20", "--out", str(tmp_path / "out")])
    assert len(calls) == 3 and result.exit_code == 130 and "nothing was written" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scratch"] and list(scratch.iterdir()) == []


def test_check_says_which_tier_runs_and_the_no_map_hint_fits(tiny_study, teacher, unrelated,  # noqa: F811
                                                             tmp_path):
    same = runner.invoke(app, ["check", str(teacher), "--to", str(tiny_study.receiving), "--json"])
    other = runner.invoke(app, ["check", str(teacher), "--to", str(unrelated), "--json"])
    assert json.loads(same.output)["runs"] == "copy" and json.loads(other.output)["runs"] is None
    text = runner.invoke(app, ["check", str(teacher), "--to", str(unrelated)], env={"COLUMNS": "300"})
    assert "port will run: no tier" in text.output and "--map distill" in text.output
    with pytest.raises(LineageError) as refused:
        api.port(teacher, unrelated, tmp_path / "out", map="weights")
    line = refused.value.one_line()
    assert "share the vocabulary" in line and "--map distill" in line and "must share" not in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("tier", ["embed", "weights", "probe"])
def test_maps_on_one_lineage_never_do_worse_than_the_copy(tiny_study, tier, tmp_path):  # noqa: F811
    """Prefix tuning mapped on a related pair reversed its effect; where the copy is right, the tiers carry it."""
    from tests.fixtures.crossmods import make_module

    module = make_module(tiny_study.origin, "peft", "prefix", tmp_path / "prefix")
    copied = api.port(module, tiny_study.receiving, tmp_path / "copy")
    mapped = api.port(module, tiny_study.receiving, tmp_path / tier, map=tier, probe_tokens=256)
    a, b = load_tensors(read_module(copied.out)), load_tensors(read_module(mapped.out))
    assert set(a) == set(b) and all((a[k] == b[k]).all() for k in a)
    assert mapped.provenance["crossmap"]["carried"] == "copy" and mapped.provenance["map"] == tier
    if tier != "embed":  # embed cannot carry prefix tuning's projections; --force runs the map itself
        forced = api.port(module, tiny_study.receiving, tmp_path / "forced", map=tier, force=True,
                          probe_tokens=256)
        assert "carried" not in forced.provenance["crossmap"]


def test_a_bad_distill_setting_is_one_line(tiny_study, teacher, unrelated, tmp_path):  # noqa: F811
    with pytest.raises(ConfigError, match="template"):
        api.port(teacher, unrelated, tmp_path / "out", map="distill",
                 settings=_settings(tiny_study, template="no field"))
    assert not (tmp_path / "out").exists()


def test_cli_distill_with_evaluate_train_steps_and_push(tiny_study, teacher, unrelated, hub_server,  # noqa: F811
                                                        tmp_path):
    """--evaluate with --train-steps and --push act on the distilled module; the pushed card says so."""
    from huggingface_hub import HfApi, ModelCard

    repo = f"hubport-e2e/distill-{tmp_path.name[-6:]}"
    result = runner.invoke(app, ["port", str(teacher), "--to", str(unrelated), "--map", "distill", "--data",
                                 str(tiny_study.data), "--distill-steps", "20", "--evaluate", str(tiny_study.data),
                                 "--template", "sentiment: {text}", "--labels", "negative,positive",
                                 "--train-steps", "2", "--push", repo, "--json"],
                           env={"HF_TOKEN": hub_server.write_token, "COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["out"] is None and summary["distill"]["steps"] == 20
    assert summary["evaluation"]["train_steps"] == 2
    api_ = HfApi(token=hub_server.read_token)
    pushed = json.loads(Path(api_.hf_hub_download(repo, "hubport.json")).read_text())
    assert pushed["distill"] == summary["distill"] and pushed["evaluation"] == summary["evaluation"]
    card = ModelCard.load(api_.hf_hub_download(repo, "README.md"))
    assert "distilled" in card.data.tags and card.data.base_model_relation == "adapter"


def test_hub_data_ids_name_their_config_and_pin_their_revision(monkeypatch):
    """`--data glue/sst2` is the glue dataset's sst2 config (as for --evaluate); `owner/name@rev` pins it."""
    import datasets

    from hubport.distill import data as ddata
    from hubport.port.distilled import data_ref

    seen = []

    def load_dataset(name, config=None, *, split, revision=None):
        seen.append((name, config, split, revision))
        return datasets.Dataset.from_dict({"sentence": ["a b", "c"], "label": [0, 1]})

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.setattr("hubport.hub.dataset_commit", lambda repo, rev=None: None)   # offline: the pin stays
    texts, record = ddata.read_texts("glue/sst2", revision="abc")
    assert texts == ["a b", "c"] and seen == [("glue", "sst2", "train", "abc")] and record["revision"] == "abc"
    assert record["text_field"] == "sentence" and record["kind"] == "hub"

    class R:
        module = type("M", (), {"root": Path("nowhere")})()

    assert data_ref(R(), {"data": "owner/name@v1"}) == ("owner/name", "v1")
    assert data_ref(R(), {"data": "owner/name"}) == ("owner/name", None)


def test_a_mapped_start_is_written_by_the_commit_and_distilled_from(tiny_study, teacher, tmp_path):  # noqa: F811
    """--init weights (forced past the same-lineage copy, so the map itself runs) gives the student its tensors."""
    report = api.port(teacher, tiny_study.receiving, tmp_path / "out", map="distill", init="weights", force=True,
                      settings=_settings(tiny_study, steps=0))
    d = report.provenance["distill"]
    assert d["init"] == "weights" and d["steps"] == 0
    fresh = api.port(teacher, tiny_study.receiving, tmp_path / "fresh", map="distill", init="fresh",
                     settings=_settings(tiny_study, steps=0))
    assert d["agreement_before"] > fresh.provenance["distill"]["agreement_before"] + 0.3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh", "out"]


def test_a_target_with_another_tokenizer_is_one_line_and_leaves_nothing(tiny_study, teacher, unrelated,  # noqa: F811
                                                                        tmp_path):
    from hubport.demo.tokenizer import build_tokenizer

    host = shutil.copytree(unrelated, tmp_path / "other-vocab")
    for f in host.glob("tokenizer*"):
        f.unlink()
    build_tokenizer(["other", "words", "entirely"]).save_pretrained(host)
    result = runner.invoke(app, ["port", str(teacher), "--to", str(host), "--map", "distill", "--data",
                                 str(tiny_study.data), "--distill-steps", "2", "--out", str(tmp_path / "out")])
    assert result.exit_code == 5 and "different tokenizers" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other-vocab"]
