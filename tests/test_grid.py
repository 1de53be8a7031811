"""Grid files: errors that name the key and the closest valid one, narrowing, expansion, references."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from harness.cli import EXIT_CODES, app
from harness.errors import ConfigError
from harness.grid.spec import expand, load_grid, narrow, parse_grid, resolve_ref

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def base_grid() -> dict:
    return {"defaults": {
        "hosts": {"a": "/tmp/host-a", "b": "/tmp/host-b"},
        "datasets": {"toy": {"source": "/tmp/toy", "label_words": ["no", "yes"]}, "other": "owner/data"},
        "pairs": ["a -> b", ["b", "a"]],
        "data_pairs": ["toy", "toy -> other"],
        "families": {"lora": {"library": "peft", "config": {"r": 4}}, "bottleneck": {"library": "adapters"}},
        "conditions": ["ported", "scratch", "sampled", "host"],
        "budgets": [0, 5],
        "seeds": [0, 1, 2],
        "origin": {"seed": 0, "steps": 10},
        "train": {"lr": 1.0e-3, "batch_size": 4},
    }, "experiments": {"main": {}}}


def with_change(path: tuple, value) -> dict:
    raw = copy.deepcopy(base_grid())
    node = raw
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return raw


def error_of(raw: dict) -> str:
    with pytest.raises(ConfigError) as info:
        parse_grid(raw)
    return info.value.one_line()


def test_expansion_counts_pairs_data_families_conditions_seeds():
    specs = expand(parse_grid(base_grid()))
    assert len(specs) == 2 * 2 * 2 * 4 * 3
    assert len({s.run_id for s in specs}) == len(specs)
    assert {s.budgets for s in specs if s.condition == "host"} == {()}
    assert {s.budgets for s in specs if s.condition != "host"} == {(0, 5)}
    assert {(s.origin_data, s.receiving_data) for s in specs} == {("toy", "toy"), ("toy", "other")}


def test_run_ids_stable_and_independent_of_locations_and_budgets():
    first = [s.run_id for s in expand(parse_grid(base_grid()))]
    assert first == [s.run_id for s in expand(parse_grid(base_grid()))]
    moved = with_change(("defaults", "hosts"), {"a": "demo:a", "b": "demo:b"})
    moved_ids = [s.run_id for s in expand(parse_grid(moved), {"demo": lambda n: f"/else/{n}"})]
    assert moved_ids != first          # the reference as written changed
    again = [s.run_id for s in expand(parse_grid(moved), {"demo": lambda n: f"/elsewhere/{n}"})]
    assert again == moved_ids          # where it resolves to did not change the ids
    fewer = with_change(("defaults", "budgets"), [0, 5, 10])
    assert [s.run_id for s in expand(parse_grid(fewer))] == first
    lr = with_change(("defaults", "train", "lr"), 2e-3)
    assert set(s.run_id for s in expand(parse_grid(lr))).isdisjoint(first)


@pytest.mark.parametrize("path, value, expected", [
    (("defaults", "seedz"), [0], "Did you mean 'seeds'"),
    (("defaults", "train", "lrr"), 1e-3, "Did you mean 'lr'"),
    (("defaults", "datasets", "toy", "tempalte"), "x {text}", "Did you mean 'template'"),
    (("defaults", "families", "lroa"), {"library": "peft"}, "Did you mean 'lora'"),
    (("defaults", "conditions"), ["ported", "scrach"], "Did you mean 'scratch'"),
    (("defaults", "sampled"), {"granularity": "rows"}, "Did you mean 'row'"),
    (("experiments", "main", "budgest"), [1], "Did you mean 'budgets'"),
    (("defaults", "pairs"), ["a -> c"], "unknown name in experiments.main.pairs[0]: 'c'"),
])
def test_unknown_names_point_at_the_closest_valid_one(path, value, expected):
    assert expected in error_of(with_change(path, value))


@pytest.mark.parametrize("path, value, expected", [
    (("defaults", "budgets"), "0,5", "budgets must be a list"),
    (("defaults", "seeds"), [0, "one"], "seeds[1] must be an integer"),
    (("defaults", "budgets"), [0, -5], "budgets[1] must be at least 0"),
    (("defaults", "train", "lr"), "fast", "train.lr must be a number"),
    (("defaults", "train", "batch_size"), 4.5, "train.batch_size must be an integer"),
    (("defaults", "resources"), {"gpus": "half"}, "resources.gpus must be a number"),
    (("defaults", "origin", "seed"), "each", "origin.seed must be an integer or 'run'"),
    (("defaults", "families", "compacter"), {"library": "peft"}, "not available in library 'peft'"),
    (("defaults", "hosts"), ["a", "b"], "hosts must be a mapping"),
])
def test_wrong_types_are_named(path, value, expected):
    assert expected in error_of(with_change(path, value))


@pytest.mark.parametrize("axis", ["conditions", "budgets", "seeds", "pairs", "data_pairs"])
def test_empty_axes_are_refused(axis):
    assert f"{axis} is empty" in error_of(with_change(("defaults", axis), []))


def test_numbers_written_as_yaml_strings_are_read_as_numbers():
    grid = parse_grid(yaml.safe_load(yaml.safe_dump(base_grid()).replace("0.001", "1e-3")))
    assert dict(grid.experiments[0].train)["lr"] == pytest.approx(1e-3)


def test_overrides_replace_axes_and_merge_settings():
    raw = base_grid()
    short = {"budgets": [0], "train": {"batch_size": 2}, "origin": {"steps": 3}}
    raw["experiments"] = {"main": {}, "short": short}
    main, short = parse_grid(raw).experiments
    assert main.budgets == (0, 5) and short.budgets == (0,)
    assert dict(short.train) == {"lr": 1e-3, "batch_size": 2}
    assert (short.origin.steps, short.origin.seed) == (3, 0)


def test_narrowing_keeps_only_the_named_values():
    grid = narrow(parse_grid(base_grid()), families="lora", seeds="0,2", conditions=["ported", "host"],
                  budgets="5")
    specs = expand(grid)
    assert {s.family.name for s in specs} == {"lora"}
    assert {s.seed for s in specs} == {0, 2}
    assert {s.condition for s in specs} == {"ported", "host"}
    assert {s.budgets for s in specs if s.condition == "ported"} == {(5,)}
    with pytest.raises(ConfigError, match="unknown --families value 'lroa'") as info:
        narrow(parse_grid(base_grid()), families="lroa")
    assert "Did you mean 'lora'" in info.value.one_line()


def test_references_resolve_by_scheme_path_or_hub(tmp_path):
    (tmp_path / "data").mkdir()
    resolvers = {"demo": lambda name: tmp_path / name}
    assert resolve_ref("demo:origin", tmp_path, resolvers) == str(tmp_path / "origin")
    assert resolve_ref("./data", tmp_path, {}) == str(tmp_path / "data")
    assert resolve_ref("data", tmp_path, {}) == str(tmp_path / "data")
    assert resolve_ref("google/flan-t5-base", tmp_path, {}) == "google/flan-t5-base"
    assert resolve_ref("hub:google/flan-t5-base", tmp_path, {}) == "google/flan-t5-base"
    assert resolve_ref("rotten_tomatoes:default", tmp_path, {}, strict=False) == "rotten_tomatoes:default"
    with pytest.raises(ConfigError, match="no resolver for the reference 'demo:origin'"):
        resolve_ref("demo:origin", tmp_path, {})


def test_paper_config_reads_as_1440_evaluations():
    specs = expand(load_grid(CONFIGS / "paper.yaml"))
    counted = [s for s in specs if s.condition != "host"]
    assert sum(len(s.budgets) for s in counted) == 1440
    assert {s.family.name for s in specs} == {"lora", "prefix_tuning", "bottleneck", "compacter"}
    assert {(s.origin, s.receiving) for s in specs} == {("t5-base", "flan-base"), ("flan-base", "t5-base"),
                                                       ("t5-large", "flan-large"), ("flan-large", "t5-large")}
    assert len({s.origin_plan_key for s in counted if s.condition != "scratch"}) == 16


def test_demo_config_resolves_through_the_callers_resolver(tmp_path):
    seen = []
    specs = expand(load_grid(CONFIGS / "demo.yaml"), {"demo": lambda n: seen.append(n) or str(tmp_path / n)})
    assert specs and {"origin", "receiving", "independent", "task"} <= set(seen)
    assert all(s.host_location(s.receiving) == str(tmp_path / s.receiving) for s in specs)
    assert {s.receiving for s in specs} == {"receiving", "independent"}   # the related host, one pretrained apart


def test_yaml_is_inert(tmp_path):
    bad = tmp_path / "grid.yaml"
    bad.write_text("defaults: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_grid(bad)


def test_cli_reports_config_errors_in_one_line(tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump(with_change(("defaults", "seedz"), [0])))
    result = CliRunner().invoke(app, ["run", str(grid), "--out", str(tmp_path / "out")])
    assert result.exit_code == EXIT_CODES[ConfigError]
    assert "Did you mean 'seeds'" in result.output and "Traceback" not in result.output
    grid.write_text(yaml.safe_dump(base_grid()))
    result = CliRunner().invoke(app, ["run", str(grid), "--out", str(tmp_path / "out"), "--families", "lroa"])
    assert result.exit_code not in (0, 1) and "Did you mean 'lora'" in result.output
    assert not (tmp_path / "out").exists()


def test_origin_seeds_cross_the_conditions_that_use_the_module():
    raw = with_change(("defaults", "origin"), {"seeds": [0, 1, 2], "steps": 10})
    specs = expand(parse_grid(raw))
    per_cell = [s for s in specs if (s.family.name, s.origin, s.origin_data, s.receiving_data)
                == ("lora", "a", "toy", "toy")]
    by = {c: sorted((s.origin_seed, s.seed) for s in per_cell if s.condition == c) for c in ("ported", "scratch")}
    assert by["ported"] == [(o, s) for o in range(3) for s in range(3)] and by["scratch"] == [(0, s) for s in range(3)]
    single = {s.run_id for s in expand(parse_grid(base_grid()))}
    assert single <= {s.run_id for s in specs}  # origin seed 0 keeps the run ids of `seed: 0`
    assert {s.origin_seed for s in specs if s.condition == "sampled"} == {0, 1, 2}
    assert "both 'seed' and 'seeds'" in error_of(with_change(("defaults", "origin"), {"seed": 0, "seeds": [1]}))


def test_primary_family_is_declared_in_the_grid_file():
    raw = {**base_grid(), "analysis": {"primary": ["ported - scratch"]}}
    grid = parse_grid(raw)
    assert grid.primary == (("ported", "scratch"),) and grid.to_dict()["analysis"] == {"primary": ["ported - scratch"]}
    assert "analysis" not in parse_grid(base_grid()).to_dict()  # old manifests still match
    assert "must read 'a - b'" in error_of({**base_grid(), "analysis": {"primary": ["ported:scratch"]}})
    demo = load_grid(CONFIGS / "demo.yaml")
    assert demo.primary == (("ported", "scratch"), ("ported", "sampled"))
    assert demo.experiments[0].origin.seed == (0, 1, 2)
