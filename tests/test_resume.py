"""Resume: `harness run` killed with SIGKILL at seeded random moments, then rerun, ends with the same records
as a run never interrupted: none lost, none duplicated, no half-written file, identical metrics (CPU)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from harness.grid.spec import expand, load_grid
from harness.runs.executors import run_grid
from harness.runs.io import read_json
from tests.fixtures.tiny import tiny_study, write_grid  # noqa: F401  (fixture)

REPO = Path(__file__).resolve().parents[1]


def comparable(out: Path) -> dict:
    """Every record's results without its timings: what must not change across interruptions."""
    out_records = {}
    for path in sorted((out / "runs").glob("*.json")):
        record = read_json(path)
        metrics = {b: {k: v for k, v in m.items() if not k.endswith("seconds")}
                   for b, m in record["metrics"].items()}
        origin = record["origin"] and {k: record["origin"][k] for k in ("accuracy", "loss", "key")}
        out_records[path.stem] = (record["status"], metrics, origin, record["pairing"])
    return out_records


def launch(grid: Path, out: Path, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "harness.cli", "run", str(grid), "--out", str(out)]
    with open(log, "ab") as errors:
        return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=errors,
                                env=os.environ.copy())


def finished(out: Path) -> int:
    return len(list((out / "runs").glob("*.json"))) if (out / "runs").exists() else 0


def kill_when(proc: subprocess.Popen, ready, pause: float, limit: float = 120.0) -> bool:
    """SIGKILL the process once `ready()` holds, after `pause` seconds; False if it ended by itself first."""
    began = time.monotonic()
    while not ready():
        if proc.poll() is not None or time.monotonic() - began > limit:
            return False
        time.sleep(0.02)
    time.sleep(pause)
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


def test_sigkill_at_random_moments_then_resume_gives_uninterrupted_records(tiny_study, tmp_path):  # noqa: F811
    import torch

    torch.set_num_threads(1)
    grid_file = write_grid(tmp_path / "grid.yaml", tiny_study, seeds=[0, 1])
    grid = load_grid(grid_file)
    specs = expand(grid)
    run_grid(specs, tmp_path / "reference", config=grid.to_dict(), command="reference")

    rng, out, log = random.Random(20240125), tmp_path / "killed", tmp_path / "harness.log"
    kills = 0
    proc = launch(grid_file, out, log)      # first kill: while an originating module is being trained
    kills += kill_when(proc, lambda: any((out / "origin").glob(".*.tmp-*")), rng.uniform(0.0, 0.3))
    for _ in range(2):                      # then while runs are being recorded
        proc = launch(grid_file, out, log)
        target = finished(out) + rng.randint(1, 5)
        kills += kill_when(proc, lambda target=target: finished(out) >= target, rng.uniform(0.0, 0.3))
    print(f"kills: {kills}, records before the last run: {finished(out)}, origin modules: "
          f"{len(list((out / 'origin').glob('*/origin.json')))}")
    assert kills >= 2, log.read_text()[-2000:]
    assert finished(out) < len(specs)        # the kills did interrupt the grid
    done = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(grid_file), "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, env=os.environ.copy())
    assert done.returncode == 0, done.stderr[-2000:]

    assert comparable(out) == comparable(tmp_path / "reference")
    assert len(comparable(out)) == len(specs)
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted(
        f"{s.run_id}{ext}" for s in specs for ext in (".json", ".examples.npz"))
    assert list((out / "failed").iterdir()) == []
    leftovers = [p for p in out.rglob(".*") if p.name != ".lock" and not p.name.endswith(".lock")]
    assert leftovers == []
    assert len(list((out / "origin").glob("*/origin.json"))) == 2
