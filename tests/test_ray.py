"""The same grid locally and as Ray tasks on a local Ray instance gives the same records."""

from __future__ import annotations

import pytest

from harness.analysis.tables import load_table
from harness.grid.spec import expand, load_grid
from harness.runs.executors import run_grid
from harness.runs.io import read_json
from tests.fixtures.tiny import tiny_study, write_grid  # noqa: F401  (fixture)


@pytest.fixture
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def results(out) -> dict:
    out_records = {}
    for path in sorted((out / "runs").glob("*.json")):
        record = read_json(path)
        out_records[path.stem] = {b: (m["accuracy"], m["predictions"], m["loss"])
                                  for b, m in record["metrics"].items()}
    return out_records


def test_ray_and_local_give_the_same_records(tiny_study, tmp_path, local_ray):  # noqa: F811
    import torch

    torch.set_num_threads(1)
    grid = load_grid(write_grid(tmp_path / "grid.yaml", tiny_study, resources={"cpus": 1, "gpus": 0}))
    specs = expand(grid)
    assert len(specs) == 2 * 4 * 3
    local = run_grid(specs, tmp_path / "local", config=grid.to_dict(), command="local")
    remote = run_grid(specs, tmp_path / "ray", config=grid.to_dict(), command="ray", executor="ray")
    assert (local.ok, remote.ok, remote.failed) == (24, 24, 0)
    assert results(tmp_path / "ray") == results(tmp_path / "local")
    assert load_table(tmp_path / "ray").equals(load_table(tmp_path / "local"))
    pids = {read_json(p)["machine"]["hostname"] for p in (tmp_path / "ray" / "runs").glob("*.json")}
    assert pids and local_ray.is_initialized()      # the driver's own instance was used and left running
