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
MAX_DEPTH = 2   # Hub repos: modules up to two folders down
LOCAL_DEPTH = 1   # local folders: peft's save_pretrained puts each further adapter one folder down


def list_modules(root: Path, depth: int = MAX_DEPTH) -> list[str]:
    """Relative folders under `root` that hold a module config ('.' for the root itself), sorted."""
    root = Path(root)
    found, level = [], [root]
    for level_depth in range(depth + 1):   # a bounded walk: never the whole tree below a folder like /
        found += [(f.relative_to(root).as_posix() or ROOT) if level_depth else ROOT for f in level
                  if (f / CONFIG_FILE).is_file()]
        if level_depth < depth:
            level = [c for f in level for c in _subfolders(f)]
    return sorted(found, key=lambda s: (s != ROOT, s))


def _subfolders(folder: Path) -> list[Path]:
    try:
        return sorted(c for c in folder.iterdir() if c.is_dir() and not c.is_symlink() and not c.name.startswith("."))
    except OSError:   # unreadable: nothing to list there
        return []


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
            others = ", ".join(list_modules(root, MAX_DEPTH if hub else LOCAL_DEPTH)) or "none"
            raise NotFoundError(f"{where} has no module in subfolder '{subfolder}' (modules there: {others})",
                                "name one of those folders")
        return folder, subfolder
    modules = list_modules(root, MAX_DEPTH if hub else LOCAL_DEPTH)
    if subfolder == ROOT or modules in ([], [ROOT]):
        return root, None
    if len(modules) == 1:
        return root / modules[0], modules[0]
    raise AmbiguousModuleError(f"{where} holds {len(modules)} modules ({', '.join(modules)}), so which one is meant is "
                       "ambiguous", f"name one: {f'{where}:{modules[-1]} or ' if hub else ''}--subfolder "
                       f"{modules[-1]} (--subfolder . for the root); `hubport inspect {where}` describes them all", root, where, commit)
