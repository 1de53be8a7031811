"""The one write path for every strategy: temporary folder -> weights + config -> provenance -> verify ->
evaluate -> atomic rename. Nothing half-written ever appears at `out`; a failure anywhere removes the folder.

Pushing stays with the caller (the CLI pushes the folder this returns), so a push always sends what was verified
and evaluated.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from hubport import __version__
from hubport.errors import OutputError, OutputExistsError
from hubport.formats import CONFIG_FILE, write_json, write_weights
from hubport.hostsource import HostSource
from hubport.keys import parse_key
from hubport.port.carried import Carried
from hubport.port.plan import PortPlan
from hubport.port.resolve import Resolved

Evaluator = Callable[[Path, HostSource], dict]
"""evaluate(module folder, target host files) -> the provenance's `evaluation` (it may train the module in place)."""


@dataclass(frozen=True)
class PortReport:
    """What `port` did: where the module went, what was kept and dropped, and the provenance written."""

    out: Path
    plan: PortPlan
    dropped: tuple[str, ...]
    forced: bool
    provenance: dict

    def to_dict(self) -> dict:
        return {"out": str(self.out), "dropped": list(self.dropped), "forced": self.forced, **self.provenance}


def commit(r: Resolved, carried: Carried, out: Path, *, strategy: str, safetensors: bool | None = None,
           command: str | None = None, verify: bool = False, evaluate: Evaluator | None = None) -> PortReport:
    """Write `carried` to `out` (which must not exist) atomically and return what was done."""
    kind = r.module.kind if safetensors is None else ("safetensors" if safetensors else "bin")
    dropped = sorted(carried.dropped)
    with staged(Path(out)) as tmp:
        write_weights(r.module, dict(carried.kept) if carried.tensors is None else {k: k for k in carried.tensors},
                      tmp, kind, tensors=None if carried.tensors is None else dict(carried.tensors))
        write_json(tmp / CONFIG_FILE, retarget_config(r, carried.kept, dropped, carried.config_patch))
        provenance = provenance_record(r, carried, dropped, command=command, kind=kind, strategy=strategy)
        write_json(tmp / "hubport.json", provenance, indent=None)
        if verify:
            from hubport.verify import verify_port

            provenance["verification"] = verify_port(r.target_files.local_dir(), tmp, r.module.library,
                                                     r.target.vocab_size)
        if evaluate is not None:
            provenance["evaluation"] = evaluate(tmp, r.target_files)
        if verify or evaluate is not None:
            write_json(tmp / "hubport.json", provenance, indent=None)
    return PortReport(Path(out), carried.plan, tuple(dropped), carried.forced, provenance)


def check_out(out: Path) -> Path:
    """Refuse an --out that exists (a dangling link counts) or cannot be created, before any work is done."""
    out = Path(out)
    if out.is_symlink() and not out.exists():
        raise OutputExistsError(f"{out} is a symbolic link to {os.readlink(out)}, which does not exist")
    if out.exists():
        raise OutputExistsError(f"{out} already exists")
    above = next(p for p in out.absolute().parents if p.exists())
    if not above.is_dir():
        raise OutputError(f"cannot create {out}: {above} is a file, not a folder")
    if not os.access(above, os.W_OK | os.X_OK):
        raise OutputError(f"cannot create {out}: {above} is not writable")
    return out


@contextlib.contextmanager
def staged(out: Path) -> Iterator[Path]:
    """A fresh folder beside `out`, renamed into place only when the block succeeds, removed otherwise."""
    out = check_out(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.hubport-", dir=out.parent))
    except OSError as exc:
        raise OutputError(f"cannot create {out}: {exc.strerror or exc}") from None
    try:
        yield tmp
        os.rename(tmp, out)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.filename is not None and Path(str(exc.filename)) in (tmp, out):
            raise OutputError(f"cannot move the module into {out}: {exc.strerror or exc}") from None
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _projs(keys: Iterable[str]) -> set[str]:
    return {p for p in (parse_key(k).slot.proj if parse_key(k).slot else None for k in keys) if p}


def retarget_config(r: Resolved, kept: dict[str, str], dropped: list[str], patch: dict | None = None) -> dict:
    """The module config for the target: its base recorded, host-derived fields updated, dropped slots removed,
    then the strategy's patch applied to the method config."""
    config = dict(r.module.config)
    method = r.family.retarget(r.module.library, r.module.method_config, _projs(dropped), _projs(kept))
    if r.module.library == "peft":
        config.update(method)
        config["base_model_name_or_path"] = r.target_ref
        config["revision"] = getattr(r.target_files, "revision", None)
        config.update(r.family.target_fields(r.target))
        config.update(patch or {})
    else:
        config["config"] = {**method, **(patch or {})}
        config["model_name"] = r.target_ref
        config["hidden_size"] = r.target.d_model
    return config


def provenance_record(r: Resolved, carried: Carried, dropped: list[str], *, command: str | None, kind: str,
                      strategy: str) -> dict:
    """Where the module came from and what happened to every tensor (never any token)."""
    plan, kept = carried.plan, carried.kept
    return {
        "hubport_version": __version__,
        "command": command if command is not None else shlex.join(["hubport", *sys.argv[1:]]),
        "map": strategy,
        "source": {"ref": r.module_ref, "commit": r.module_commit, "library": r.module.library,
                   "family": r.family.NAME, "format": r.module.kind, "base": r.base_ref,
                   "base_revision": r.module.base_revision, "subfolder": r.module_subfolder},
        "target": {"ref": r.target_ref, "commit": getattr(r.target_files, "revision", None),
                   "config_hash": r.target.config_hash, "host": r.target.describe()},
        "lineage": plan.lineage.to_dict(),
        "forced": carried.forced,
        "written_format": kind,
        "slot_map": {"counts": plan.counts(), "kept": len(kept), "dropped": len(dropped),
                     "tensors": [{"key": t.key, "status": t.status, "target_key": kept.get(t.key),
                                  "reason": t.reason} for t in plan.tensors]},
        "dropped": dropped,
        "notes": list(plan.notes) + [n for n in carried.notes if n not in plan.notes],
        "evaluation": None,
        **carried.record,
    }
