"""Open a module and the two hosts around it: configs and safetensors headers only, no weights read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from hubport.errors import HubportError
from hubport.families import Family, detect_family
from hubport.formats import ModuleFiles, read_module
from hubport.hosts import HostSpec, host_from_config
from hubport.hubids import bare_ref, same_repo
from hubport.sources import HostSource, fetch_module_at, open_host


@dataclass(frozen=True)
class Resolved:
    """A module and the two hosts around it, opened but not loaded."""

    module: ModuleFiles
    module_ref: str
    module_commit: str | None
    family: Family
    base_ref: str | None
    base: HostSpec | None
    base_files: HostSource | None
    target_ref: str
    target: HostSpec
    target_files: HostSource
    notes: tuple[str, ...]
    module_subfolder: str | None = None


def resolve(source: str | Path, target: str | Path, *, base: str | None = None, revision: str | None = None,
            target_revision: str | None = None, hub: object | None = None,
            subfolder: str | None = None) -> Resolved:
    """Open the module, its base host (when reachable) and the target host. Ids are kept bare (no `@rev`)."""
    fetched = fetch_module_at(source, revision, hub, subfolder)
    module = read_module(fetched.folder)
    family = detect_family(module.library, module.method_config, generic_ok=True)
    target_files = open_host(target, target_revision, hub)
    target_spec = host_from_config(target_files.config(), f"{target}'s config.json")
    target = bare_ref(target)
    notes = []
    base_ref = bare_ref(base) if base else module.base
    base_files, base_spec = None, None
    if base_ref:
        try:
            base_files = open_host(base or base_ref, None if base else module.base_revision, hub)
            base_spec = host_from_config(base_files.config(), f"{base_ref}'s config.json")
        except HubportError as exc:
            notes.append(f"the module's base '{base_ref}' is not reachable ({exc.message}); pass --base")
            base_files = None
    else:
        notes.append("the module does not record the host it was trained on; pass --base to check lineage")
    if base_ref and not same_repo(str(base_ref), str(target)) and str(base_ref) != str(target):
        notes.append(f"base-model mismatch: trained on '{base_ref}', ported to '{target}'")
    return Resolved(module, fetched.ref, fetched.commit, family, base_ref and str(base_ref), base_spec, base_files,
                    str(target), target_spec, target_files, tuple(notes), fetched.subfolder)
