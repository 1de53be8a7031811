"""Bad input: one line that names the problem, a non-zero exit, nothing written, no traceback."""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hubport.cli import app
from tests.fixtures.hosts import RECIPES, train_module

runner = CliRunner()


@pytest.fixture(scope="module")
def good(hosts, tmp_path_factory) -> Path:
    _, folder = train_module(hosts["relu_a"], RECIPES["adapters-seq-bn"], tmp_path_factory.mktemp("g") / "m",
                             use_safetensors=True)
    return folder


class Evil:
    """A pickle that would create a file if it were ever fully unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _module_copy(good: Path, tmp: Path) -> Path:
    return Path(shutil.copytree(good, tmp / "mod"))


def _truncated(good: Path, tmp: Path) -> tuple[Path, str]:
    mod = _module_copy(good, tmp)
    weights = mod / "adapter.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    return mod, "truncated"


def _malformed_json(good: Path, tmp: Path) -> tuple[Path, str]:
    mod = _module_copy(good, tmp)
    (mod / "adapter_config.json").write_text('{"config": {')
    return mod, "not valid JSON"


def _foreign_json(good: Path, tmp: Path) -> tuple[Path, str]:
    mod = _module_copy(good, tmp)
    (mod / "adapter_config.json").write_text(json.dumps({"model_type": "t5", "d_model": 32}))
    return mod, "neither a peft nor an adapters module"


def _unknown_family(good: Path, tmp: Path) -> tuple[Path, str]:
    mod = tmp / "lohas"
    mod.mkdir()
    (mod / "adapter_config.json").write_text(json.dumps({"peft_type": "LOHAS", "r": 4}))
    (mod / "adapter_model.safetensors").write_bytes((good / "adapter.safetensors").read_bytes())
    return mod, "unknown peft method 'LOHAS'"


def _evil_pickle(good: Path, tmp: Path) -> tuple[Path, str]:
    mod = _module_copy(good, tmp)
    (mod / "adapter.safetensors").unlink()
    with open(mod / "pytorch_adapter.bin", "wb") as fh:
        pickle.dump({"x": Evil(tmp / "PWNED")}, fh)
    return mod, "holds objects other than tensors"


def _no_module(good: Path, tmp: Path) -> tuple[Path, str]:
    (tmp / "empty").mkdir()
    (tmp / "empty" / "notes.txt").write_text("hello")
    return tmp / "empty", "no adapter_config.json"


def _missing(good: Path, tmp: Path) -> tuple[Path, str]:
    return tmp / "does-not-exist", "does not exist"


BAD_SOURCES = [_truncated, _malformed_json, _foreign_json, _unknown_family, _evil_pickle, _no_module, _missing]


def _assert_one_line_failure(result, needle: str) -> None:
    text = result.output
    assert result.exit_code not in (0, 1), text
    assert "Traceback" not in text
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), text
    assert needle in text


@pytest.mark.parametrize("make", BAD_SOURCES, ids=lambda f: f.__name__.strip("_"))
@pytest.mark.parametrize("command", ["inspect", "check", "port"])
def test_bad_source(make, command, good, hosts, tmp_path):
    source, needle = make(good, tmp_path)
    args = {"inspect": ["inspect", str(source)],
            "check": ["check", str(source), "--to", str(hosts["relu_a2"])],
            "port": ["port", str(source), "--to", str(hosts["relu_a2"]), "--out", str(tmp_path / "out")]}[command]
    result = runner.invoke(app, args, env={"COLUMNS": "400"})
    _assert_one_line_failure(result, needle)
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "PWNED").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.hubport-")]


def _bert_target(tmp: Path) -> Path:
    target = tmp / "bert"
    target.mkdir()
    (target / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 32}))
    return target


@pytest.mark.parametrize("target", ["bert", "no-config", "missing"])
def test_bad_target(target, good, tmp_path):
    path = {"bert": lambda: _bert_target(tmp_path), "no-config": lambda: Path(shutil.copytree(good, tmp_path / "t")),
            "missing": lambda: tmp_path / "nowhere"}[target]()
    needle = {"bert": "not a T5-family host", "no-config": "no config.json", "missing": "does not exist"}[target]
    result = runner.invoke(app, ["port", str(good), "--to", str(path), "--out", str(tmp_path / "out")],
                           env={"COLUMNS": "400"})
    _assert_one_line_failure(result, needle)
    assert not (tmp_path / "out").exists()


def test_check_exit_codes_say_whether_a_full_port_is_possible(good, hosts):
    ok = runner.invoke(app, ["check", str(good), "--to", str(hosts["relu_a2"]), "--json"])
    assert ok.exit_code == 0 and json.loads(ok.output)["full_port_possible"] is True
    other = runner.invoke(app, ["check", str(good), "--to", str(hosts["relu_b"]), "--json"])
    assert other.exit_code == 1
    assert json.loads(other.output)["lineage"]["verdict"] == "different"


def test_debug_variable_shows_the_traceback(tmp_path):
    result = runner.invoke(app, ["inspect", str(tmp_path / "nothing")], env={"HUBPORT_DEBUG": "1"})
    assert result.exit_code != 0 and result.exception is not None
