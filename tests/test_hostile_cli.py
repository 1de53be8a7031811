"""Hostile command lines: outputs that cannot be written, Hub ids that are not ids, terminal escapes in configs,
tokens that must never be shown, and the temporary folder of `port --push`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import requests
from huggingface_hub import HfApi

from hubport.cli import app
from tests.fixtures.hostile import Sandbox
from tests.fixtures.hosts import RECIPES, train_module

SECRET = "hf_very_secret_token_value_1234"


@pytest.fixture(scope="module")
def lora(hosts, tmp_path_factory) -> Path:
    _, folder = train_module(hosts["relu_a"], RECIPES["peft-lora-attn"], tmp_path_factory.mktemp("l") / "m")
    return folder


def below_a_file(tmp: Path) -> tuple[Path, str]:
    (tmp / "plain.txt").write_text("x")
    return tmp / "plain.txt" / "out", "cannot create"


def in_a_system_folder(tmp: Path) -> tuple[Path, str]:
    return Path("/proc/hubport-cannot-write-here/out"), "cannot create"


def dangling_link(tmp: Path) -> tuple[Path, str]:
    (tmp / "link").symlink_to(tmp / "nowhere")
    return tmp / "link", "symbolic link"


def existing_folder(tmp: Path) -> tuple[Path, str]:
    (tmp / "there").mkdir()
    return tmp / "there", "already exists"


def existing_file(tmp: Path) -> tuple[Path, str]:
    (tmp / "file.bin").write_bytes(b"x")
    return tmp / "file.bin", "already exists"


OUT_CASES = [below_a_file, in_a_system_folder, dangling_link, existing_folder, existing_file]


@pytest.mark.parametrize("case,map_tier", [(c, t) for c in OUT_CASES for t in ("copy", "embed")
                                           if not (c is in_a_system_folder and t == "embed")],
                         ids=lambda x: getattr(x, "__name__", x))
def test_unwritable_out(case, map_tier, lora, hosts, tmp_path):
    """Refused before any work, whatever the tier (the embed port here would fail for its own reasons later);
    a folder only the kernel refuses (/proc, for root) shows itself only when created, so copy only."""
    out, needle = case(tmp_path)
    box = Sandbox(tmp_path)
    result = box.invoke(app, ["port", lora, "--to", hosts["relu_a2"], "--out", out, "--map", map_tier])
    box.assert_refused(result, 6, needle)


IS_NO_ID = "valid Hub repo id"
BAD_IDS = {"owner name/repo": IS_NO_ID, "owner/re po": IS_NO_ID, "owner/..": IS_NO_ID, "../etc": "does not exist",
           "owner/repo--x..y": IS_NO_ID, "owner/": IS_NO_ID, "owner/repo\x1b[31m": IS_NO_ID,
           "owner/.repo": IS_NO_ID, "/": "no adapter_config.json"}


@pytest.mark.parametrize("command", ["inspect", "check", "port"])
@pytest.mark.parametrize("ref", list(BAD_IDS), ids=range(len(BAD_IDS)))
def test_bad_hub_ids_as_module(ref, command, hosts, tmp_path):
    box = Sandbox(tmp_path)
    args = {"inspect": ["inspect", ref], "check": ["check", ref, "--to", hosts["relu_a2"]],
            "port": ["port", ref, "--to", hosts["relu_a2"], "--out", tmp_path / "out"]}[command]
    line = box.assert_refused(box.invoke(app, args), 3 if ref != "/" else 4, BAD_IDS[ref])
    assert "\x1b" not in line


@pytest.mark.parametrize("ref", ["owner/re po", "owner/..", "bad id/x"], ids=range(3))
def test_bad_hub_ids_as_target(ref, lora, tmp_path):
    box = Sandbox(tmp_path)
    result = box.invoke(app, ["port", lora, "--to", ref, "--out", tmp_path / "out"])
    box.assert_refused(result, 3, IS_NO_ID)


@pytest.mark.parametrize("repo", ["bad id/x", "owner/..", "owner/a b"], ids=range(3))
def test_bad_hub_ids_as_push_repo(repo, lora, hosts, tmp_path):
    ported = tmp_path / "ported"
    assert Sandbox(tmp_path).invoke(app, ["port", lora, "--to", hosts["relu_a2"], "--out", ported]).exit_code == 0
    box = Sandbox(tmp_path)
    box.assert_refused(box.invoke(app, ["push", ported, repo]), 3, IS_NO_ID)


def _escape_config(field: str, value: str):
    def make(module: Path) -> None:
        path = module / "adapter_config.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), field: value}))

    return make


ESCAPES = {
    "base-esc": _escape_config("base_model_name_or_path", "\x1b]0;pwned\x07\x1b[2Jhost"),
    "base-c1": _escape_config("base_model_name_or_path", "host\x9b31m\x85"),
    "base-markup": _escape_config("base_model_name_or_path", "[blink]host[/blink]"),
    "peft-type-esc": _escape_config("peft_type", "LORA\x1b[31m"),
    "revision-cr": _escape_config("revision", "main\rOVERWRITTEN"),
}


@pytest.mark.parametrize("case", list(ESCAPES), ids=list(ESCAPES))
@pytest.mark.parametrize("command", ["inspect", "check"])
def test_control_characters_never_reach_the_terminal(case, command, lora, hosts, tmp_path):
    module = Path(shutil.copytree(lora, tmp_path / "mod"))
    ESCAPES[case](module)
    box = Sandbox(tmp_path)
    args = ["inspect", module] if command == "inspect" else ["check", module, "--to", hosts["relu_a2"]]
    result = box.invoke(app, args)
    assert result.exit_code in (0, 1, 4), result.output
    assert "Traceback" not in result.output
    for bad in ("\x1b", "\x07", "\x9b", "\x85", "\r"):
        assert bad not in result.output, repr(result.output)
    if case == "base-markup" and result.exit_code in (0, 1):
        assert "[blink]host[/blink]" in result.output  # shown literally, not read as markup
    if case == "peft-type-esc":
        assert result.exit_code == 4 and "\\x1b" in result.output


@pytest.mark.parametrize("line", [f"read:{SECRET} extra", f"{SECRET} {SECRET}", "write:", f"read: {SECRET}x y"],
                         ids=range(4))
def test_token_file_errors_never_print_the_token(line, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# tokens\n{line}\n")
    box = Sandbox(tmp_path, tokens=(SECRET,))
    box.snapshot()
    result = box.invoke(app, ["serve", "--root", tmp_path / "hub", "--token-file", tokens])
    text = box.assert_refused(result, 7, "bad line 2 in token file")
    assert SECRET not in text


def test_environment_token_is_scrubbed_from_messages(tmp_path):
    box = Sandbox(tmp_path, tokens=(SECRET,))
    result = box.invoke(app, ["inspect", tmp_path / SECRET / "module"], env={"HF_TOKEN": SECRET})
    line = box.assert_refused(result, 3, "does not exist")
    assert "***" in line


@pytest.mark.parametrize("port", ["99999", "-1", "65536"])
def test_serve_port_out_of_range(port, tmp_path):
    box = Sandbox(tmp_path)
    result = box.invoke(app, ["serve", "--root", tmp_path / "hub", "--port", port])
    box.assert_refused(result, 7, "is not a TCP port", allowed=tmp_path / "hub")


def test_port_push_without_out_keeps_nothing_and_says_so(lora, hosts, hub_server, hub_repo_id, tmp_path):
    before = set(os.listdir(tempfile.gettempdir()))
    box = Sandbox(tmp_path, tokens=(hub_server.write_token,))
    result = box.invoke(app, ["port", lora, "--to", hosts["relu_a2"], "--push", hub_repo_id],
                        env={"HF_TOKEN": hub_server.write_token})
    assert result.exit_code == 0, result.output
    assert "not kept locally" in result.output and "hubport-port-" not in result.output
    assert {n for n in set(os.listdir(tempfile.gettempdir())) - before if n.startswith("hubport-port-")} == set()
    box.assert_clean()
    api = HfApi(token=hub_server.read_token)
    for name in api.list_repo_files(hub_repo_id):  # nothing pushed carries the token either
        url = f"{hub_server.url}/{hub_repo_id}/resolve/main/{name}"
        assert hub_server.write_token.encode() not in requests.get(url, timeout=10).content, name


def test_port_push_that_fails_removes_its_temporary_folder(lora, hosts, hub_server, hub_repo_id, tmp_path):
    box = Sandbox(tmp_path)
    result = box.invoke(app, ["port", lora, "--to", hosts["relu_a2"], "--push", hub_repo_id],
                        env={"HF_TOKEN": hub_server.read_token})
    box.assert_refused(result, 7, "refused the token")
