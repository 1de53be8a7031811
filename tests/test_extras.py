"""The core install (`pip install hubport`) runs without the extras: `hubport --help` and the core commands'
help import none of the harness's or server's libraries, and pyproject's core dependencies list none."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = ("matplotlib", "pingouin", "statsmodels", "starlette", "uvicorn", "seaborn", "pandas")
BLOCKER = f"""
import sys
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {EXTRAS!r}:
            raise ImportError("blocked extra: " + name)
sys.meta_path.insert(0, Blocker())
import hubport.cli
sys.argv = ["hubport", *sys.argv[1:]]
hubport.cli.main()
"""


@pytest.mark.parametrize("args", [["--help"], ["port", "--help"], ["check", "--help"], ["inspect", "--help"],
                                  ["push", "--help"]])
def test_core_commands_import_no_extra(args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", BLOCKER, *args], capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Usage" in result.stdout and "blocked extra" not in result.stderr


def test_blocker_blocks():   # the check above would pass vacuously if the blocker did not work
    result = subprocess.run([sys.executable, "-c", BLOCKER.replace("import hubport.cli", "import pandas")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "blocked extra: pandas" in result.stderr


def test_core_dependencies_leave_the_extras_to_the_extras():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {d.split(">")[0].split("=")[0].split("~")[0].split("<")[0].lower() for d in project["dependencies"]}
    assert not core & set(EXTRAS)
    extras = project["optional-dependencies"]
    assert {"pingouin", "matplotlib", "seaborn", "pandas"} <= {d.split(">")[0].split("<")[0] for d in extras["harness"]}
    assert {"starlette", "uvicorn"} <= {d.split(">")[0] for d in extras["server"]}
    assert extras["all"] == ["hubport[harness,server]"]
