"""Runs on tiny hosts: determinism, pairing, the sampled baseline, zero-shot ported = the ported module
itself, originating modules trained once, failures recorded apart and retried on request."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from harness.analysis.tables import load_table
from harness.grid.conditions import prepare, sample_like
from harness.grid.spec import expand, load_grid
from harness.runs.executors import Job, run_grid, run_job
from harness.runs.io import read_json
from tests.fixtures.tiny import tiny_study, write_grid  # noqa: F401  (fixture)


@pytest.fixture(scope="module")
def grid_run(tiny_study, tmp_path_factory):  # noqa: F811
    """The tiny grid (2 families x 4 conditions x 2 budgets x 3 seeds) run once, locally, in this process."""
    import torch

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("grid_run")
    grid = load_grid(write_grid(root / "grid.yaml", tiny_study))
    specs = expand(grid)
    summary = run_grid(specs, root / "out", config=grid.to_dict(), command="test")
    return root / "out", specs, summary


def records(out: Path) -> dict[str, dict]:
    return {p.stem: read_json(p) for p in (out / "runs").glob("*.json")}


def test_grid_runs_every_run_once_and_resumes_to_nothing(grid_run):
    out, specs, summary = grid_run
    assert (summary.ok, summary.failed) == (24, 0)
    assert set(records(out)) == {s.run_id for s in specs}
    table = load_table(out)
    assert len(table) == 2 * 3 * (3 * 2 + 1)     # families x seeds x (3 conditions x 2 budgets + host)
    assert len(list((out / "origin").glob("*/origin.json"))) == 2   # one originating module per family
    again = run_grid(specs, out, config=read_json(out / "manifest.json")["config"], command="test")
    assert (again.already_done, again.ok) == (24, 0)


def test_the_same_seed_gives_the_same_metrics(grid_run, tmp_path):
    out, specs, _ = grid_run
    chosen = [s for s in specs if s.seed == 1 and s.family.name == "lora" and s.condition != "host"]
    for spec in chosen:
        fresh = run_job(Job("run", spec), str(tmp_path))["record"].to_dict()   # its own origin, retrained
        kept = records(out)[spec.run_id]
        assert fresh["status"] == "ok"
        assert fresh["metrics"] == {b: {**m, "eval_seconds": fresh["metrics"][b]["eval_seconds"],
                                        "train_seconds": fresh["metrics"][b]["train_seconds"]}
                                    for b, m in kept["metrics"].items()}


def test_parallel_local_processes_give_the_same_records(grid_run, tmp_path):
    out, specs, _ = grid_run
    some = [s for s in specs if s.family.name == "lora" and s.seed == 0]
    config = read_json(out / "manifest.json")["config"]
    summary = run_grid(some, tmp_path, config=config, command="test", jobs=2)
    assert (summary.ok, summary.failed) == (4, 0)
    mine, kept = records(tmp_path), records(out)
    for spec in some:
        assert {b: (m["accuracy"], m["predictions"]) for b, m in mine[spec.run_id]["metrics"].items()} == \
            {b: (m["accuracy"], m["predictions"]) for b, m in kept[spec.run_id]["metrics"].items()}


def test_conditions_of_a_cell_are_paired_by_seed(grid_run):
    out, specs, _ = grid_run
    recs = records(out)
    for family in ("lora", "bottleneck"):
        for seed in (0, 1, 2):
            cell = [recs[s.run_id] for s in specs if s.family.name == family and s.seed == seed]
            assert len({r["pairing"]["eval_set"] for r in cell}) == 1
            orders = {r["pairing"]["train_order"] for r in cell if r["spec"]["condition"] != "host"}
            assert len(orders) == 1 and None not in orders
    orders = {recs[s.run_id]["pairing"]["train_order"] for s in specs if s.condition == "ported"}
    assert len(orders) == 3                             # the seed, and only the seed, sets the order


def test_zero_shot_ported_is_the_ported_module_evaluated_directly(grid_run):
    from hubport.engine.data import DataSpec, load_task
    from hubport.engine.evaluation import evaluate
    from hubport.engine.modules import ModuleSpec, attach_saved, load_host

    out, specs, _ = grid_run
    for spec in [s for s in specs if s.condition == "ported" and s.seed == 0]:
        record = records(out)[spec.run_id]
        module_dir = out / "ported" / record["port"]["key"] / "module"
        model, tokenizer = load_host(spec.host_location(spec.receiving))
        model = attach_saved(model, ModuleSpec.of(spec.family.name, spec.family.library,
                                                  dict(spec.family.config)), module_dir)
        task = load_task(DataSpec(**spec.data_fields(spec.receiving_data)), tokenizer)
        direct = evaluate(model, task, batch_size=8)
        assert direct["accuracy"] == record["metrics"]["0"]["accuracy"]
        assert direct["predictions"] == record["metrics"]["0"]["predictions"]


def test_sampled_tensors_match_ported_moments_but_not_values(grid_run):
    import torch

    from hubport.engine.modules import ModuleSpec, load_host, module_tensors

    out, specs, _ = grid_run
    spec = next(s for s in specs if s.condition == "sampled" and s.family.name == "lora")
    module_dir = out / "ported" / records(out)[spec.run_id]["port"]["key"] / "module"
    module = ModuleSpec.of("lora", "peft", dict(spec.family.config))
    kwargs = dict(seed=3, ported_dir=module_dir)
    host = spec.host_location("b")
    ported = module_tensors(prepare(load_host(host)[0], "ported", module, **kwargs), module)
    sampled = module_tensors(prepare(load_host(host)[0], "sampled", module, **kwargs), module)
    assert sampled.keys() == ported.keys() and len(ported) == 24    # q, v x A, B x 6 attention blocks
    for name, ref in ported.items():
        new, n = sampled[name], ref.numel()
        assert new.shape == ref.shape and not torch.equal(new, ref)
        assert abs(float(new.mean() - ref.mean())) < 5 * float(ref.std()) / n ** 0.5
        assert abs(float(new.std() / ref.std()) - 1) < 5 / (2 * n) ** 0.5
        assert abs(float(torch.corrcoef(torch.stack([new.flatten(), ref.flatten()]))[0, 1])) < 0.5


@pytest.mark.parametrize("distribution", ["normal", "uniform"])
@pytest.mark.parametrize("granularity", ["tensor", "row", "module"])
def test_sample_like_matches_moments_at_each_granularity(distribution, granularity):
    import torch

    gen = torch.Generator().manual_seed(0)
    tensors = {"a": torch.randn(64, 400, generator=gen) * torch.linspace(0.1, 2, 64)[:, None] + 3,
               "b": torch.rand(4000, generator=gen) - 5}
    out = sample_like(tensors, seed=1, distribution=distribution, granularity=granularity)
    assert torch.equal(out["a"], sample_like(tensors, seed=1, distribution=distribution,
                                             granularity=granularity)["a"])
    assert not torch.equal(out["a"], sample_like(tensors, seed=2, distribution=distribution,
                                                 granularity=granularity)["a"])
    if granularity == "module":
        pooled = torch.cat([t.flatten() for t in tensors.values()])
        drawn = torch.cat([t.flatten() for t in out.values()])
        assert torch.allclose(drawn.mean(), pooled.mean(), atol=0.05)
        assert torch.allclose(drawn.std(), pooled.std(), rtol=0.03)
        return
    rows = granularity == "row"
    ref, new = tensors["a"], out["a"]
    dims = 1 if rows else None
    means = (ref.mean(dim=dims), new.mean(dim=dims)) if rows else (ref.mean(), new.mean())
    stds = (ref.std(dim=dims), new.std(dim=dims)) if rows else (ref.std(), new.std())
    assert torch.allclose(means[1], means[0], atol=0.3)
    assert torch.allclose(stds[1], stds[0], rtol=0.15)
    assert torch.allclose(out["b"].mean(), tensors["b"].mean(), atol=0.03)
    if distribution == "uniform" and not rows:    # bounded: mean +- sqrt(3) std
        assert float(new.max()) <= float(ref.mean() + 3 ** 0.5 * ref.std(unbiased=False)) + 1e-4
        assert float(new.min()) >= float(ref.mean() - 3 ** 0.5 * ref.std(unbiased=False)) - 1e-4


def test_a_ready_originating_module_is_ported_not_trained(grid_run, tiny_study, tmp_path):  # noqa: F811
    out, specs, _ = grid_run
    trained = next(s for s in specs if s.condition == "ported" and s.family.name == "lora" and s.seed == 0)
    kept = records(out)[trained.run_id]
    module = out / "origin" / kept["origin"]["key"] / "module"
    families = {"lora": {"library": "peft", "config": dict(trained.family.config)}}
    origin = {"seed": 0, "steps": 20, "modules": [{"family": "lora", "origin": "a", "data": "toy",
                                                   "module": str(module)}]}
    grid = load_grid(write_grid(tmp_path / "grid.yaml", tiny_study, families=families, origin=origin,
                                conditions=["ported"], seeds=[0]))
    (spec,) = expand(grid)
    summary = run_grid([spec], tmp_path / "out", config=grid.to_dict(), command="test")
    record = records(tmp_path / "out")[spec.run_id]
    assert summary.ok == 1 and record["origin"]["source"] == "reference"
    assert not list((tmp_path / "out" / "origin").glob("*/origin.json"))    # nothing trained
    assert record["metrics"]["0"]["predictions"] == kept["metrics"]["0"]["predictions"]


def test_failed_runs_are_recorded_apart_and_retried_on_request(tiny_study, tmp_path):  # noqa: F811
    missing = tmp_path / "host_not_yet_there"
    family = {"lora": {"library": "peft", "config": {"r": 2, "target_modules": ["q"]}}}
    hosts = {"a": str(tiny_study.origin), "b": str(missing)}
    grid = load_grid(write_grid(tmp_path / "grid.yaml", tiny_study, hosts=hosts, seeds=[0], families=family,
                                conditions=["scratch", "host"]))
    specs, out = expand(grid), tmp_path / "out"
    first = run_grid(specs, out, config=grid.to_dict(), command="test")
    assert (first.ok, first.failed) == (0, 2)
    failed = read_json(next((out / "failed").glob("*.json")))
    assert failed["error"]["type"] == "NotFoundError" and "Traceback" in failed["error"]["traceback"]
    assert list((out / "runs").iterdir()) == []
    again = run_grid(specs, out, config=grid.to_dict(), command="test")
    assert (again.skipped_failed, again.ok, again.failed) == (2, 0, 0)
    shutil.copytree(tiny_study.receiving, missing)
    retried = run_grid(specs, out, config=grid.to_dict(), command="test", retry_failed=True)
    assert (retried.ok, retried.failed) == (2, 0)
    assert list((out / "failed").iterdir()) == [] and len(list((out / "runs").glob("*.json"))) == 2
    assert len(list((out / "runs").glob("*.examples.npz"))) == 2   # each finished run's per-example file
