"""The naive baselines a mapped port is judged against, for the harness.

    zero_pad  every tensor cut or zero-padded, axis by axis and by index, to the shape its library builds on the
              target; layers and heads by index; ReLU `wi` lands on gated `wi_1` (and back), `wi_0` is dropped.
    drop      what fits by shape is copied, everything else dropped (a forced, partial copy port).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from hubport.errors import IncompatibleError, UnknownNameError
from hubport.keys import ModuleKey, Slot, parse_key

HOWS = ("zero_pad", "drop")
RENAME = {("relu", "gated"): {"wi": "wi_1", "wi_0": None}, ("gated", "relu"): {"wi_1": "wi", "wi_0": None}}


def fit_shape(x, shape: tuple[int, ...]):
    """x cut or zero-padded to `shape`, by index along every axis (ranks must agree)."""
    import torch

    if x.dim() != len(shape):
        raise IncompatibleError(f"cannot pad a {x.dim()}-d tensor to {list(shape)}", "use a map tier instead")
    out = torch.zeros(shape, dtype=x.dtype)
    common = tuple(slice(0, min(a, b)) for a, b in zip(x.shape, shape))
    out[common] = x[common]
    return out


def _target_key(key: str, variant_s: str, variant_t: str, layers) -> str | None:
    parsed = parse_key(key)
    slot = parsed.slot
    if slot is None:
        return key
    if slot.block >= layers(slot.stack):
        return None
    proj = RENAME.get((variant_s, variant_t), {}).get(slot.proj, slot.proj) if slot.proj else None
    if slot.proj and proj is None:
        return None
    return ModuleKey(parsed.prefix, Slot(slot.stack, slot.block, slot.layer, slot.sublayer, proj), parsed.tail).render()


def zero_padded(r) -> tuple[dict, dict[str, str], list[str]]:
    """(target tensors, source -> target key, dropped keys) for the zero_pad baseline."""
    from hubport.formats import load_tensors

    tensors, kept, dropped = {}, {}, []
    variant_s = r.base.variant if r.base else r.target.variant
    for key, x in sorted(load_tensors(r.module).items()):
        new = _target_key(key, variant_s, r.target.variant, r.target.layers)
        shape = r.family.expected_shape(parse_key(new), tuple(x.shape), r.module.method_config, r.target) \
            if new else None
        if shape is None:
            dropped.append(key)
            continue
        tensors[new], kept[key] = fit_shape(x, tuple(int(d) for d in shape)), new
    return tensors, kept, dropped


def _config(r, kept: dict[str, str], dropped: list[str]) -> dict:
    from hubport.write import retarget_config

    config = retarget_config(r, kept, dropped)
    if r.module.library != "peft" and r.family.NAME != "prefix_tuning":
        used = {(parse_key(k).slot.stack, parse_key(k).slot.block) for k in kept.values() if parse_key(k).slot}
        spec = r.target
        config["config"]["leave_out"] = sorted(b if s == "encoder" else spec.num_layers + b
                                               for s in ("encoder", "decoder") for b in range(spec.layers(s))
                                               if (s, b) not in used) if used else []
    elif isinstance(config.get("target_modules"), list):
        projs = {parse_key(k).slot.proj for k in kept.values() if parse_key(k).slot}
        renamed = {new: old for pair in RENAME.values() for old, new in pair.items() if new}
        old_ff = set(r.module.method_config.get("feedforward_modules") or [])
        config["target_modules"] = sorted(projs)
        if "feedforward_modules" in config:
            config["feedforward_modules"] = sorted(p for p in projs if p in old_ff or renamed.get(p) in old_ff)
    return config


def naive_port(source: str | Path, target: str | Path, out: str | Path, how: str = "zero_pad", *,
               base: str | None = None, hub: object | None = None, command: str | None = None):
    """Write a naive port of `source` onto `target` into `out` (atomically); returns a PortReport."""
    from hubport import api
    from hubport.formats import CONFIG_FILE, write_json, write_weights
    from hubport.lineage import check_lineage
    from hubport.plan import plan_port
    from hubport.write import provenance_record

    if how not in HOWS:
        raise UnknownNameError("naive port", how, HOWS)
    if how == "drop":
        return api.port(source, target, out, force=True, allow_partial=True, base=base, hub=hub, command=command)
    out = Path(out)
    r = api.resolve(source, target, base=base, hub=hub)
    tensors, kept, dropped = zero_padded(r)
    if not tensors:
        raise IncompatibleError("no tensor of this module has a counterpart on the target", "use drop or a map")
    lineage = check_lineage(r.base, r.target, r.base_files, r.target_files, read_weights=False)
    plan = plan_port(r.module, r.family, r.base, r.target, lineage, list(r.notes))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.hubport-", dir=out.parent))
    try:
        write_weights(r.module, {k: k for k in tensors}, tmp, r.module.kind, tensors=tensors)
        write_json(tmp / CONFIG_FILE, _config(r, kept, dropped))
        record = provenance_record(r, plan, kept, dropped, forced=True, command=command, kind=r.module.kind,
                                   map_tier=f"naive:{how}")
        write_json(tmp / "hubport.json", record)
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return api.PortReport(out, plan, tuple(dropped), True, record)
