"""The README's layout (Development section) against the tree: every module and subpackage of hubport/ and
harness/ is named, and everything named exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def layout() -> dict[str, str]:
    """The layout block's text per top-level folder ("hubport", "harness", ...)."""
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index("## Development"):].split("```")[1]
    parts, current = {}, None
    for line in block.strip().splitlines():
        head = re.match(r"^(\w+)/\s", line)
        if head:
            current = head[1]
        parts[current] = parts.get(current, "") + " " + line[16:]
    return parts


def tree(package: str) -> tuple[set[str], set[str]]:
    """The package's own modules (name.py) and subfolders (name/) that are packages or data folders."""
    root = ROOT / package
    modules = {p.name for p in root.glob("*.py") if p.name != "__init__.py"}
    folders = {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))}
    return modules, folders


def test_every_module_and_folder_is_named_and_nothing_named_is_missing():
    parts = layout()
    for package in ("hubport", "harness"):
        text = parts[package]
        named_modules = set(re.findall(r"\b(\w+\.py)\b", text))
        named_folders = set(re.findall(r"\b(\w+)/", text))
        modules, folders = tree(package)
        assert named_modules == modules, f"{package}: README vs tree differ in {named_modules ^ modules}"
        assert named_folders == folders, f"{package}: README vs tree differ in {named_folders ^ folders}"


def test_the_harness_layers_list_their_modules_exactly():
    for folder, listed in re.findall(r"\b(\w+)/\s*\(([^)]*)\)", layout()["harness"]):
        named = {name.strip() for name in listed.split(",")}
        present = {p.stem for p in (ROOT / "harness" / folder).glob("*.py") if p.name != "__init__.py"}
        assert named == present, f"harness/{folder}/: README vs tree differ in {named ^ present}"
