"""Hostile target hosts: broken configs, NaN weights, pickle-only folders, sharded indexes that lie.

`check` and `port` read the target's config and (for the lineage check) a sample of its weights; each case must
end in one line naming the problem with its error class's exit code, and nothing written.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from hubport.cli import app
from tests.fixtures.hostile import Sandbox, st_bytes, st_parts, write_evil_pickle
from tests.fixtures.hosts import RECIPES, train_module

SINGLE = "model.safetensors"
INDEX = "model.safetensors.index.json"


@pytest.fixture(scope="module")
def lora(hosts, tmp_path_factory) -> Path:
    _, folder = train_module(hosts["relu_a"], RECIPES["peft-lora-attn"], tmp_path_factory.mktemp("l") / "m")
    return folder


def _config(**fields):
    def edit(host: Path) -> None:
        path = host / "config.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **fields}))

    edit.__name__ = "config_" + "_".join(f"{k}={v}" for k, v in fields.items())[:40]
    return edit


def config_not_json(host: Path) -> None:
    (host / "config.json").write_text("{model_type: t5")


def config_list(host: Path) -> None:
    (host / "config.json").write_text("[1, 2]")


def config_missing(host: Path) -> None:
    (host / "config.json").unlink()


def nan_embeddings(host: Path) -> None:
    header, data = st_parts(host / SINGLE)
    info = header["shared.weight"]
    begin, end = info["data_offsets"]
    nan = np.full((end - begin) // 4, np.nan, dtype="<f4").tobytes()
    (host / SINGLE).write_bytes(st_bytes(header, data[:begin] + nan + data[end:]))


def inf_embeddings(host: Path) -> None:
    header, data = st_parts(host / SINGLE)
    begin, end = header["shared.weight"]["data_offsets"]
    inf = np.full((end - begin) // 4, np.inf, dtype="<f4").tobytes()
    (host / SINGLE).write_bytes(st_bytes(header, data[:begin] + inf + data[end:]))


def only_a_pickle(host: Path) -> None:
    (host / SINGLE).unlink()
    write_evil_pickle(host / "pytorch_model.bin", host.parent / "PWNED")


def overlapping_host_header(host: Path) -> None:
    header, data = st_parts(host / SINGLE)
    name = sorted((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"][0])[1]
    header[name]["data_offsets"] = [o - 4 for o in header[name]["data_offsets"]]
    (host / SINGLE).write_bytes(st_bytes(header, data))


def embeddings_dtype_unknown(host: Path) -> None:
    header, data = st_parts(host / SINGLE)
    header["shared.weight"]["dtype"] = "F128"
    (host / SINGLE).write_bytes(st_bytes(header, data))


def truncated_host(host: Path) -> None:
    raw = (host / SINGLE).read_bytes()
    (host / SINGLE).write_bytes(raw[: len(raw) // 2])


def _sharded(host: Path) -> dict:
    header, _ = st_parts(host / SINGLE)
    (host / SINGLE).rename(host / "model-00001-of-00001.safetensors")
    return {"metadata": {}, "weight_map": {k: "model-00001-of-00001.safetensors" for k in header
                                           if k != "__metadata__"}}


def index_missing_shard(host: Path) -> None:
    index = _sharded(host)
    index["weight_map"]["shared.weight"] = "model-00009-of-00009.safetensors"
    (host / INDEX).write_text(json.dumps(index))


def index_weight_map_list(host: Path) -> None:
    index = _sharded(host)
    index["weight_map"] = list(index["weight_map"])
    (host / INDEX).write_text(json.dumps(index))


def index_not_json(host: Path) -> None:
    _sharded(host)
    (host / INDEX).write_text("{weight_map")


def index_shard_escapes(host: Path) -> None:
    index = _sharded(host)
    index["weight_map"]["shared.weight"] = "../../etc/passwd"
    (host / INDEX).write_text(json.dumps(index))


HOST_CASES = {
    _config(vocab_size=0): (4, "vocab_size"), _config(d_model="wide"): (4, "d_model"),
    _config(num_heads=0): (4, "num_heads"), _config(num_layers=-2): (4, "num_layers"),
    _config(d_kv=1e999): (4, "d_kv"), _config(model_type=None): (4, "not a T5-family host"),
    _config(model_type="bert"): (4, "not a T5-family host"), _config(feed_forward_proj=5): (4, "feed_forward_proj"),
    _config(d_ff=True): (4, "d_ff"), config_not_json: (4, "not valid JSON"), config_list: (4, "not a JSON object"),
    config_missing: (3, "no config.json"), nan_embeddings: (4, "not finite"), inf_embeddings: (4, "not finite"),
    overlapping_host_header: (4, "overlaps"),
    embeddings_dtype_unknown: (4, "unknown dtype"), truncated_host: (4, "truncated"),
    index_missing_shard: (4, "model-00009-of-00009.safetensors"), index_weight_map_list: (4, "weight_map"),
    index_not_json: (4, "not valid JSON"), index_shard_escapes: (4, "../../etc/passwd"),
}  # fmt: skip


@pytest.mark.parametrize("command", ["check", "port"])
@pytest.mark.parametrize("case", list(HOST_CASES), ids=lambda f: f.__name__)
def test_hostile_target(case, command, lora, hosts, tmp_path):
    target = Path(shutil.copytree(hosts["relu_a2"], tmp_path / "host"))
    case(target)
    box = Sandbox(tmp_path)
    args = ["check", lora, "--to", target] if command == "check" else \
        ["port", lora, "--to", target, "--out", tmp_path / "out"]
    code, needle = HOST_CASES[case]
    box.assert_refused(box.invoke(app, args), code, needle)


@pytest.mark.parametrize("command", ["check", "port", "verify"])
def test_a_pickle_only_host_never_runs_its_pickle(command, lora, hosts, tmp_path):
    """hubport reads host weights as safetensors only; a folder holding just a pickle is never unpickled (its
    lineage is unknown, which `check` reports and the port records; hubport.hub's lineage rule decides more)."""
    target = Path(shutil.copytree(hosts["relu_a2"], tmp_path / "host"))
    only_a_pickle(target)
    box = Sandbox(tmp_path)
    args = ["check", lora, "--to", target, "--json"] if command == "check" else \
        ["port", lora, "--to", target, "--out", tmp_path / "out", "--json"]
    result = box.invoke(app, args + (["--verify"] if command == "verify" else []))
    assert "Traceback" not in result.output and result.exit_code in (0, 1, 4, 5), result.output
    assert not (tmp_path / "PWNED").exists()
    if command == "verify":  # hubport's weights-only read (or transformers') refuses it; said in one line
        assert result.exit_code == 4 and ("--verify cannot load" in result.output
                                          or "never unpickles" in result.output), result.output
    if result.exit_code in (0, 1):
        assert json.loads(result.output)["lineage"]["verdict"] == "unknown"
    box.assert_clean(tmp_path / "out")


def test_header_prefix_is_read_little_endian(hosts, tmp_path):
    """The validator's 8-byte prefix: a big-endian length is an absurd header size, refused by name."""
    target = Path(shutil.copytree(hosts["relu_a2"], tmp_path / "host"))
    raw = (target / SINGLE).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    (target / SINGLE).write_bytes(struct.pack(">Q", n) + raw[8:])
    from hubport.errors import FormatError
    from hubport.tensors import read_local_header

    with pytest.raises(FormatError, match="truncated or not safetensors"):
        read_local_header(target / SINGLE)
