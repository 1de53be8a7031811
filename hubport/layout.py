"""Where modules sit in a repo or folder: at the root, in subfolders, or both.

peft saves every adapter but `default` in a folder of its own name, and Hub repos often hold one module per task
in folders; `PeftModel.from_pretrained(..., subfolder=...)` loads one of them. hubport finds them all, so that no
command works on one module while silently ignoring the others.
"""

from __future__ import annotations

from pathlib import Path

from hubport.errors import AmbiguousModuleError, NotFoundError
from hubport.formats import CONFIG_FILE

ROOT = "."
MAX_DEPTH = 4


def list_modules(root: Path) -> list[str]:
    """Relative folders under `root` that hold a module config ('.' for the root itself), sorted."""
    root = Path(root)
    found = []
    for config in root.rglob(CONFIG_FILE):
        rel = config.parent.relative_to(root)
        if len(rel.parts) <= MAX_DEPTH and not any(p.startswith(".") for p in rel.parts):
            found.append(rel.as_posix() if rel.parts else ROOT)
    return sorted(found, key=lambda s: (s != ROOT, s))


def pick_module(root: Path, subfolder: str | None, where: str, hub: bool = False,
                commit: str | None = None) -> tuple[Path, str | None]:
    """(module folder, its subfolder or None): the one named, the only one there, or an error listing them."""
    root = Path(root)
    if not root.is_dir():
        raise NotFoundError(f"module folder {root} does not exist", "give a folder written by save_pretrained/"
                            "save_adapter, or a Hub repo id owner/name")
    if subfolder not in (None, ROOT):
        folder = root / subfolder
        if not (folder / CONFIG_FILE).is_file():
            others = ", ".join(list_modules(root)) or "none"
            raise NotFoundError(f"{where} has no module in subfolder '{subfolder}' (modules there: {others})",
                                "name one of those folders")
        return folder, subfolder
    modules = list_modules(root)
    if subfolder == ROOT or modules in ([], [ROOT]):
        return root, None
    if len(modules) == 1:
        return root / modules[0], modules[0]
    raise AmbiguousModuleError(f"{where} holds {len(modules)} modules ({', '.join(modules)}), so which one is meant is "
                       "ambiguous", f"name one: {f'{where}:{modules[-1]} or ' if hub else ''}--subfolder "
                       f"{modules[-1]} (--subfolder . for the root); `hubport inspect {where}` describes them all", root, where, commit)
