"""Hostile modules: broken safetensors headers, code-running pickles and configs their library would misbuild.

Every case runs through inspect, check and port and must end in one line naming the problem, with the exit code
of its error class (4: FormatError), nothing written and no pickle run.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from hubport.cli import app
from tests.fixtures.hostile import Sandbox, st_bytes, st_parts, write_evil_pickle
from tests.fixtures.hosts import RECIPES, train_module

WEIGHTS = "adapter_model.safetensors"


@pytest.fixture(scope="module")
def lora(hosts, tmp_path_factory) -> Path:
    _, folder = train_module(hosts["relu_a"], RECIPES["peft-lora-attn"], tmp_path_factory.mktemp("l") / "m")
    return folder


@pytest.fixture(scope="module")
def seq_bn(hosts, tmp_path_factory) -> Path:
    _, folder = train_module(hosts["relu_a"], RECIPES["adapters-seq-bn"], tmp_path_factory.mktemp("b") / "m")
    return folder


def _first_two(header: dict) -> tuple[str, str]:
    names = sorted((k for k in header if k != "__metadata__"), key=lambda k: header[k]["data_offsets"][0])
    return names[0], names[1]


def _edit(fn):
    """A case that rewrites the header (and maybe the data) of a good module's weights file."""

    def make(src: dict, data: bytes) -> bytes:
        header = json.loads(json.dumps(src))
        result = fn(header, data)
        return result if isinstance(result, bytes) else st_bytes(header, data)

    make.__name__ = fn.__name__
    return make


@_edit
def overlapping(h, d):
    b = _first_two(h)[1]
    h[b]["data_offsets"] = [h[b]["data_offsets"][0] - 4, h[b]["data_offsets"][1] - 4]


@_edit
def dtype_f128(h, d):
    h[_first_two(h)[0]]["dtype"] = "F128"


@_edit
def zero_dim(h, d):
    a = _first_two(h)[0]
    h[a]["shape"] = [h[a]["shape"][0], 0]


@_edit
def offsets_strings(h, d):
    a = _first_two(h)[0]
    h[a]["data_offsets"] = [str(o) for o in h[a]["data_offsets"]]


@_edit
def offsets_null(h, d):
    h[_first_two(h)[0]]["data_offsets"] = None


@_edit
def shape_strings(h, d):
    a = _first_two(h)[0]
    h[a]["shape"] = [str(s) for s in h[a]["shape"]]


@_edit
def shape_negative(h, d):
    a = _first_two(h)[0]
    h[a]["shape"] = [-h[a]["shape"][0], h[a]["shape"][1]]


@_edit
def shape_bool(h, d):
    a = _first_two(h)[0]
    h[a]["shape"] = [True, h[a]["shape"][1]]


@_edit
def shape_float(h, d):
    a = _first_two(h)[0]
    h[a]["shape"] = [float(h[a]["shape"][0]), h[a]["shape"][1]]


@_edit
def shape_too_many_dims(h, d):
    h[_first_two(h)[0]]["shape"] = [1] * 9


@_edit
def shape_size_mismatch(h, d):
    a = _first_two(h)[0]
    h[a]["shape"] = [h[a]["shape"][0] * 2, h[a]["shape"][1]]


@_edit
def offsets_reversed(h, d):
    a = _first_two(h)[0]
    h[a]["data_offsets"] = h[a]["data_offsets"][::-1]


@_edit
def offsets_three(h, d):
    h[_first_two(h)[0]]["data_offsets"].append(0)


@_edit
def offsets_past_end(h, d):
    last = max((k for k in h if k != "__metadata__"), key=lambda k: h[k]["data_offsets"][1])
    h[last]["data_offsets"][1] += 10**9


@_edit
def gap(h, d):
    for k, v in h.items():
        if k != "__metadata__":
            v["data_offsets"] = [o + 8 for o in v["data_offsets"]]
    return st_bytes(h, b"\0" * 8 + d)


@_edit
def trailing_bytes(h, d):
    return st_bytes(h, d + b"\0" * 16)


@_edit
def entry_missing_dtype(h, d):
    del h[_first_two(h)[0]]["dtype"]


@_edit
def entry_not_object(h, d):
    h[_first_two(h)[0]] = [1, 2, 3]


@_edit
def metadata_not_strings(h, d):
    h["__metadata__"] = {"format": 5}


@_edit
def header_is_list(h, d):
    return st_bytes([1, 2], d)


@_edit
def header_nested_deep(h, d):
    return st_bytes(None, d, raw_header=b'{"a":' + b"[" * 200_000 + b"]" * 200_000 + b"}")


@_edit
def header_not_utf8(h, d):
    return st_bytes(None, d, raw_header=b'{"\xff\xfe": 1}')


@_edit
def header_not_json(h, d):
    return st_bytes(None, d, raw_header=b"{'not': json")


@_edit
def header_length_huge(h, d):
    return (2**62).to_bytes(8, "little") + d


@_edit
def file_too_short(h, d):
    return b"\x01\x02"


@_edit
def file_empty(h, d):
    return b""


HEADER_CASES = {
    overlapping: "overlaps", dtype_f128: "unknown dtype", zero_dim: "zero-size", offsets_strings: "data_offsets",
    offsets_null: "data_offsets", shape_strings: "shape", shape_negative: "shape", shape_bool: "shape",
    shape_float: "shape", shape_too_many_dims: "shape", shape_size_mismatch: "its shape needs",
    offsets_reversed: "before it begins", offsets_three: "data_offsets", offsets_past_end: "truncated",
    gap: "gap", trailing_bytes: "belong to none", entry_missing_dtype: "needs dtype", entry_not_object: "needs dtype",
    metadata_not_strings: "__metadata__", header_is_list: "not a JSON object", header_nested_deep: "nested too deep",
    header_not_utf8: "corrupt", header_not_json: "corrupt", header_length_huge: "truncated or not safetensors",
    file_too_short: "truncated", file_empty: "truncated",
}  # fmt: skip


def _args(command: str, module: Path, hosts: dict, out: Path) -> list:
    return {"inspect": ["inspect", module],
            "check": ["check", module, "--to", hosts["relu_a2"]],
            "port": ["port", module, "--to", hosts["relu_a2"], "--out", out]}[command]


@pytest.mark.parametrize("command", ["inspect", "check", "port"])
@pytest.mark.parametrize("case", list(HEADER_CASES), ids=lambda f: f.__name__)
def test_broken_safetensors_header(case, command, lora, hosts, tmp_path):
    module = Path(shutil.copytree(lora, tmp_path / "mod"))
    header, data = st_parts(module / WEIGHTS)
    (module / WEIGHTS).write_bytes(case(header, data))
    box = Sandbox(tmp_path)
    result = box.invoke(app, _args(command, module, hosts, tmp_path / "out"))
    line = box.assert_refused(result, 4, HEADER_CASES[case])
    assert WEIGHTS in line or "safetensors" in line


def test_evil_pickle_is_never_run(lora, hosts, tmp_path):
    module = Path(shutil.copytree(lora, tmp_path / "mod"))
    (module / WEIGHTS).unlink()
    write_evil_pickle(module / "adapter_model.bin", tmp_path / "PWNED")
    box = Sandbox(tmp_path)
    for command in ("inspect", "check", "port"):
        result = box.invoke(app, _args(command, module, hosts, tmp_path / "out"))
        box.assert_refused(result, 4, "holds objects other than tensors")


def _peft(**fields):
    def edit(config: dict) -> dict:
        return {**config, **fields}

    edit.__name__ = "_".join(f"{k}={v}" for k, v in fields.items())[:40]
    return edit


def _raw(name: str, old: str, new: str):
    """Edit the config's JSON text itself (for 1e999, NaN: values json.dumps would not write)."""

    def edit(text: str) -> str:
        assert old in text
        return text.replace(old, new, 1)

    edit.__name__ = name
    return edit


PEFT_CASES = [
    (_peft(r=-1), "'r' is -1"), (_peft(r=0), "'r' is 0"), (_peft(r="four"), "'r' is 'four'"),
    (_peft(r=2.5), "'r' is 2.5"), (_peft(r=True), "'r' is True"), (_peft(r=8), "r is 8 but tensor"),
    (_peft(r=None), "'r' is None"), (_peft(target_modules=[]), "'target_modules' is empty"),
    (_peft(target_modules=5), "'target_modules' is 5"), (_peft(target_modules=[1, 2]), "'target_modules'"),
    (_peft(lora_alpha=None), "'lora_alpha' is None"), (_peft(lora_alpha="x"), "'lora_alpha'"),
    (_peft(lora_dropout=2.0), "'lora_dropout' is 2.0"), (_peft(lora_dropout=-0.1), "'lora_dropout'"),
    (_peft(base_model_name_or_path=5), "'base_model_name_or_path' is 5"),
    (_peft(bias=7), "'bias' is 7"), (_peft(use_dora="yes"), "'use_dora' is 'yes'"),
    (_peft(layers_to_transform="all"), "'layers_to_transform'"), (_peft(rank_pattern=[1]), "'rank_pattern'"),
    (_raw("r_1e999", '"r": 4', '"r": 1e999'), "'r' is inf"),
    (_raw("alpha_nan", '"lora_alpha": 8', '"lora_alpha": NaN'), "'lora_alpha' is nan"),
    (_raw("alpha_inf", '"lora_alpha": 8', '"lora_alpha": -Infinity'), "'lora_alpha' is -inf"),
]


@pytest.mark.parametrize("command", ["inspect", "port"])
@pytest.mark.parametrize("edit,needle", PEFT_CASES, ids=lambda x: getattr(x, "__name__", ""))
def test_bad_peft_config(edit, needle, command, lora, hosts, tmp_path):
    module = Path(shutil.copytree(lora, tmp_path / "mod"))
    path = module / "adapter_config.json"
    if edit.__name__ in ("r_1e999", "alpha_nan", "alpha_inf"):
        path.write_text(edit(json.dumps(json.loads(path.read_text()))))
    else:
        path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    box = Sandbox(tmp_path)
    result = box.invoke(app, _args(command, module, hosts, tmp_path / "out"))
    line = box.assert_refused(result, 4, needle)
    assert "adapter_config.json" in line


ADAPTERS_CASES = [
    ({"reduction_factor": 0}, "'reduction_factor' is 0"), ({"reduction_factor": "big"}, "'reduction_factor'"),
    ({"mh_adapter": "no"}, "'mh_adapter' is 'no'"), ({"non_linearity": 3}, "'non_linearity' is 3"),
    ({"leave_out": "none"}, "'leave_out'"), ({"dropout": 5}, "'dropout' is 5"),
]


@pytest.mark.parametrize("fields,needle", ADAPTERS_CASES, ids=lambda x: str(x)[:30])
def test_bad_adapters_config(fields, needle, seq_bn, hosts, tmp_path):
    module = Path(shutil.copytree(seq_bn, tmp_path / "mod"))
    path = module / "adapter_config.json"
    config = json.loads(path.read_text())
    config["config"].update(fields)
    path.write_text(json.dumps(config))
    box = Sandbox(tmp_path)
    result = box.invoke(app, _args("port", module, hosts, tmp_path / "out"))
    box.assert_refused(result, 4, needle)


@pytest.mark.parametrize("wrapper,needle", [({"config": [1]}, "neither a peft nor"),
                                            ({"hidden_size": "x"}, "'hidden_size' is 'x'"),
                                            ({"hidden_size": -4}, "'hidden_size' is -4")],
                         ids=["config-list", "hidden-str", "hidden-neg"])
def test_bad_adapters_wrapper(wrapper, needle, seq_bn, hosts, tmp_path):
    module = Path(shutil.copytree(seq_bn, tmp_path / "mod"))
    path = module / "adapter_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **wrapper}))
    box = Sandbox(tmp_path)
    box.assert_refused(box.invoke(app, ["inspect", module]), 4, needle)


def test_good_modules_still_pass_the_validators(lora, seq_bn, hosts, tmp_path):
    for module in (lora, seq_bn):
        result = Sandbox(tmp_path).invoke(app, ["port", module, "--to", hosts["relu_a2"], "--out",
                                                tmp_path / module.parent.name])
        assert result.exit_code == 0, result.output
