"""The cross-host conditions in the harness: ported:<tier>, zero_pad and drop; a port hubport
refuses is recorded as `refused` (a result: counted, not retried, not in the table); ported-like runs carry
the ported module's function fidelity, which tells a faithful map from a naive port."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from harness.analysis.tables import FIDELITY_COLUMNS, load_table, refusals
from harness.errors import ConfigError
from harness.grid.spec import expand, load_grid, narrow, parse_grid
from harness.runs.executors import run_grid
from harness.runs.io import read_json
from harness.runs.record import RunRecord
from harness.runs.rundir import RunDir
from tests.fixtures.tiny import build_hosts, tiny_study, write_grid  # noqa: F401  (fixture)

CROSS = Path(__file__).resolve().parents[1] / "configs" / "cross.yaml"
LORA = {"lora": {"library": "peft", "config": {"r": 2, "lora_alpha": 4, "target_modules": ["q", "v"]}}}


def test_a_misspelt_tier_names_the_closest_condition(tiny_study, tmp_path):  # noqa: F811
    for wrong, right in (("ported:weight", "ported:weights"), ("zeropad", "zero_pad"),
                         ("ported:probes", "ported:probe")):
        with pytest.raises(ConfigError) as err:
            load_grid(write_grid(tmp_path / "g.yaml", tiny_study, conditions=[wrong, "scratch"]))
        expected = f"unknown experiments.tiny.conditions[0] '{wrong}'. Did you mean '{right}'?"
        assert err.value.one_line() == expected


def test_cross_yaml_validates_and_plans_every_condition():
    grid = load_grid(CROSS)
    real = yaml.safe_load(CROSS.read_text())["defaults"]["conditions"]
    specs = expand(grid)   # Hub hosts: references stay Hub ids, nothing is fetched
    assert sorted({s.condition for s in specs}) == sorted(real)
    per = {c: sum(s.condition == c for s in specs) for c in real}
    assert len(set(per.values())) == 1 and len(specs) == len(real) * per["ported:embed"]
    assert len({s.run_id for s in specs}) == len(specs)
    narrowed = expand(narrow(grid, conditions="ported:embed,drop"))
    assert {s.condition for s in narrowed} == {"ported:embed", "drop"}


@pytest.fixture(scope="module")
def refused_run(tiny_study, tmp_path_factory):  # noqa: F811
    """ported:copy and zero_pad onto a host pretrained apart (same shapes, unrelated coordinates) and onto a
    related one."""
    import torch

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("refused")
    unrelated, _ = build_hosts(root / "hosts", seed=7)
    hosts = {"a": str(tiny_study.origin), "b": str(tiny_study.receiving), "u": str(unrelated)}
    grid = load_grid(write_grid(root / "grid.yaml", tiny_study, hosts=hosts, pairs=["a -> u", "a -> b"],
                                families=LORA, conditions=["ported:copy", "zero_pad"], seeds=[0],
                                budgets=[0, 2]))
    specs = expand(grid)
    summary = run_grid(specs, root / "out", config=grid.to_dict(), command="test")
    return root / "out", grid, specs, summary


def test_a_copy_across_lineages_is_recorded_as_refused_not_failed(refused_run):
    out, _, specs, summary = refused_run
    assert (summary.ok, summary.refused, summary.failed) == (3, 1, 0)
    assert list((out / "failed").iterdir()) == []
    [spec] = [s for s in specs if s.condition == "ported:copy" and s.receiving == "u"]
    record = read_json(out / "runs" / f"{spec.run_id}.json")
    assert record["status"] == "refused" and "refusing to copy" in record["reason"]
    assert "\n" not in record["reason"] and record["error"]["type"] == "LineageError"
    table = load_table(out)
    assert spec.run_id not in set(table.run_id) and len(table) == 3 * 2
    cached = [read_json(f) for f in (out / "ported").glob("*/port.json")]
    assert [c["refused"]["message"] for c in cached if "refused" in c] == [record["reason"]]   # cached
    listed = refusals(out)
    assert listed.run_id.tolist() == [spec.run_id] and listed.reason.iloc[0] == record["reason"]


def test_ported_like_rows_carry_fidelity_at_budget_zero_only(refused_run):
    out, *_ = refused_run
    table = load_table(out)
    zero = table[table.budget == 0]
    assert tuple(table.columns[-2:]) == FIDELITY_COLUMNS
    assert zero[list(FIDELITY_COLUMNS)].notna().all().all()
    assert table[table.budget > 0][list(FIDELITY_COLUMNS)].isna().all().all()
    copy = zero[(zero.condition == "ported:copy")].iloc[0]   # a -> b: related hosts, the copy carries most
    assert copy.effect_correlation > 0.5


def test_resume_skips_refused_runs_even_when_retrying_failures(refused_run):
    out, grid, specs, _ = refused_run
    before = {p.name: p.stat().st_mtime_ns for p in (out / "runs").iterdir()}
    for retry in (False, True):
        again = run_grid(specs, out, config=grid.to_dict(), command="test", retry_failed=retry)
        assert (again.already_done, again.ok, again.refused, again.failed) == (4, 0, 0, 0)
    assert {p.name: p.stat().st_mtime_ns for p in (out / "runs").iterdir()} == before
    rundir = RunDir(out)
    assert all(rundir.done(s.run_id, s.budgets) for s in specs)
    assert not rundir.done(specs[0].run_id, (0, 2, 5))   # a wider budget redoes it, refused or not


def test_load_table_fills_fidelity_with_nan_where_there_is_none(tmp_path):
    rundir = RunDir(tmp_path)
    rundir.prepare({}, "c")
    spec = {"experiment": "e", "family": {"name": "lora", "library": "peft"}, "origin": "a", "receiving": "b",
            "origin_data": "d", "receiving_data": "d", "seed": 0, "budgets": [0, 5]}
    metrics = {"0": {"accuracy": 0.5}, "5": {"accuracy": 0.75}}
    rows = (("s", "scratch", None), ("z", "zero_pad", {"effect_correlation": 0.25, "effect_carried": -0.5}),
            ("f", "drop", {"error": "ValueError: x", "budget": 0}))
    for run_id, condition, fidelity in rows:
        rundir.write(RunRecord.from_dict({"run_id": run_id, "status": "ok", "spec": {**spec, "condition": condition},
                                          "metrics": metrics, "fidelity": fidelity}))
    table = load_table(tmp_path).set_index(["run_id", "budget"])
    assert (table.loc[("z", 0), "effect_correlation"], table.loc[("z", 0), "effect_carried"]) == (0.25, -0.5)
    assert all(math.isnan(table.loc[(r, b), c]) for r, b in (("s", 0), ("z", 5), ("f", 0), ("f", 5))
               for c in FIDELITY_COLUMNS)
    assert str(table.effect_carried.dtype) == "float64"


@pytest.fixture(scope="module")
def cross_run(tmp_path_factory):
    """The tiny cross grid's small host onto an exact transform of it, wider (64 -> 96) at the same depth (the
    grid's own `big` is deeper too, which takes the weights tier), with one residual-space family."""
    import torch
    from transformers import AutoTokenizer

    from tests.fixtures.crossmods import tiny_cross_grid
    from tests.fixtures.transforms import Growth, transform

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("cross")
    raw = tiny_cross_grid(root)
    small = Path(raw["defaults"]["hosts"]["small"])
    transform(small, root / "wide", seed=1, grow=Growth(num_layers=2, blocks=(0, 1)))
    AutoTokenizer.from_pretrained(small).save_pretrained(root / "wide")
    raw["defaults"]["hosts"]["wide"] = str(root / "wide")
    raw["defaults"]["families"] = {"bottleneck": raw["defaults"]["families"]["bottleneck"]}
    raw["defaults"].update(conditions=["ported:embed", "zero_pad", "ported:copy", "sampled"], seeds=[0],
                           budgets=[0])
    raw["experiments"] = {"wider": {"pairs": ["small -> wide"]}}
    grid = parse_grid(raw, root)
    summary = run_grid(expand(grid), root / "out", config=grid.to_dict(), command="test")
    return root / "out", summary


def test_embed_map_carries_the_module_and_zero_pad_does_not(cross_run):
    out, summary = cross_run
    assert (summary.ok, summary.refused, summary.failed) == (3, 1, 0)   # a copy onto a wider host: refused
    table = load_table(out).set_index("condition")
    embed, naive = table.loc["ported:embed"], table.loc["zero_pad"]
    assert embed.effect_carried > 0.99 and embed.effect_correlation > 0.99
    assert naive.effect_carried < 0.5 and naive.effect_correlation < embed.effect_correlation - 0.2
    records = [read_json(p) for p in (out / "runs").glob("*.json")]
    fid = next(r["fidelity"] for r in records if r["spec"]["condition"] == "ported:embed")
    assert fid["source_effect_rms"] > 0 and fid["inputs"] == fid["n"] > 0 and len(fid["label_ids"]) == 2


def test_sampled_falls_back_to_the_weights_map_where_the_copy_is_refused(cross_run):
    out, _ = cross_run
    records = {r["spec"]["condition"]: r for r in (read_json(p) for p in (out / "runs").glob("*.json"))}
    sampled = records["sampled"]
    assert sampled["status"] == "ok" and sampled["port"]["method"] == ["map", "weights"]
    assert sampled["fidelity"] is None and records["ported:embed"]["port"]["method"] == ["map", "embed"]


def test_the_report_lists_refused_ports_with_their_reason(refused_run):
    from harness.report.report import _refused, to_markdown

    out, _, specs, _ = refused_run
    text = to_markdown(_refused(out))  # the section write_report appends
    assert "## Refused ports" in text
    section = text.split("## Refused ports", 1)[1]
    assert "ported:copy" in section and "refusing to copy" in section
