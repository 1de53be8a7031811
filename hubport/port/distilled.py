"""The distill strategy (`--map distill`): the source host + module teaches a student module on the target host
on unlabelled inputs (hubport.distill), which reaches hosts of another lineage where no map does.

The student starts from `--init`: a tier's port (copy|embed|weights|probe, carried by its own strategy and
written by the one commit path into a scratch folder), or a fresh module of the same config fitted to the
target (`fresh`, and `auto` where no tier carries the module). Everything happens in a scratch folder removed
on every exit path; the distilled tensors go back as a Carried, which hubport.port.commit writes like any other.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import fields
from pathlib import Path

from hubport.errors import ConfigError, HubportError, LineageError
from hubport.port.carried import Carried, PortOptions
from hubport.port.plan import MAPS, PortPlan, TensorPlan
from hubport.port.resolve import Resolved

FRESH = "fresh"
HELD_OUT_SHARE = 5  # at most one input in five is held out to measure agreement (200 at most)
NOT_CONFIG = ("base_model_name_or_path", "revision", "inference_mode")


def carry_distill(r: Resolved, options: PortOptions, init: Carried | None = None) -> Carried:
    """Distil the module onto the target, starting from `init` (a tier's Carried) or a fresh module."""
    from hubport.distill import distill_module, fresh_module, read_texts
    from hubport.formats import load_tensors, read_module
    from hubport.port.commit import commit

    if r.base_files is None or r.base is None:
        raise LineageError("--map distill needs the host the module was trained on (the teacher), and it is not "
                           "reachable", "pass --base with that host's folder or Hub id")
    settings = dict(options.settings)
    data, revision = data_ref(r, settings)
    texts, data_record = read_texts(data, revision=revision, text_field=settings.get("text_field", "auto"))
    config = distill_config(settings, len(texts), options.seed)
    with tempfile.TemporaryDirectory(prefix="hubport-distill-") as work:
        student = Path(work) / "student"
        target_dir = r.target_files.local_dir()
        if init is None:
            fresh_module(r.module.root, target_dir, student, seed=options.seed)
        else:
            commit(r, init, student, strategy=options.init or "init", command="(distill init)")
        result = distill_module(r.base_files.local_dir(), r.module.root, target_dir, student, texts,
                                config, progress=bool(settings.get("progress")), data=data_record)
        written = read_module(student)
        tensors = {k: v.detach().clone() for k, v in load_tensors(written).items()}
    record = {"distill": {**result.to_dict(), "init": options.init or FRESH, "labels": "labels not used"}}
    note = (f"distilled on the target host: {result.steps} steps on {result.inputs} unlabelled inputs of "
            f"{data_record['source']}, starting from {options.init or FRESH}; teacher agreement "
            f"{_share(result.agreement_before)} -> {_share(result.agreement_after)} on {result.held_out} "
            "held-out inputs")
    plan = distilled_plan(r, init, written, tensors)
    patch = {k: v for k, v in written.method_config.items() if k not in NOT_CONFIG}
    return Carried(plan, {k: k for k in tensors}, {}, tensors, patch, record, (note,),
                   forced=bool(init and init.forced))


def data_ref(r: Resolved, settings: dict) -> tuple[str, str | None]:
    """(data, revision): --data (a Hub id may end in @revision), else the dataset the module's hubport.json or
    card names; a one-line error where neither says."""
    data = settings.get("data") or named_data(r.module.root)
    if not data:
        raise ConfigError(f"--map distill needs inputs to distil on, and the module at {r.module.root} names no "
                          "dataset (in its hubport.json or model card)",
                          "pass --data with a JSON Lines file, a data folder or a Hub dataset id")
    data = str(data)
    if "@" in data and not Path(data).expanduser().exists():
        data, revision = data.rsplit("@", 1)
        return data, revision or None
    return data, settings.get("data_revision")


def named_data(folder: Path) -> str | None:
    """The dataset a module records: hubport.json's distillation data or evaluation, else its card's
    `datasets`."""
    provenance = folder / "hubport.json"
    if provenance.is_file():
        try:
            record = json.loads(provenance.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            record = {}
        named = ((record.get("distill") or {}).get("data") or {}).get("source") \
            or (record.get("evaluation") or {}).get("dataset")
        if named:
            return str(named)
    card = folder / "README.md"
    if card.is_file():
        from huggingface_hub import ModelCard

        try:
            datasets = ModelCard.load(card).data.datasets
        except (OSError, ValueError):
            datasets = None
        if datasets:
            return str(datasets[0] if isinstance(datasets, list) else datasets)
    return None


def distill_config(settings: dict, n: int, seed: int):
    """DistillConfig from the settings that name its fields; held-out inputs default to one in five (<= 200)."""
    from hubport.distill import DistillConfig

    known = {f.name for f in fields(DistillConfig)}
    chosen = {k: v for k, v in settings.items() if k in known and v is not None}
    chosen.setdefault("held_out", min(DistillConfig.held_out, n // HELD_OUT_SHARE))
    chosen.setdefault("seed", seed)
    return DistillConfig(**chosen)


def distilled_plan(r: Resolved, init: Carried | None, written, tensors: dict) -> PortPlan:
    """The port as a PortPlan: one row per student tensor (every one trained on the target), the lineage the
    starting point measured."""
    from hubport.port.plan import infer_variant, plan_for

    start = init.plan if init is not None else plan_for(r, weights=True, similarity=False)
    rows = tuple(TensorPlan(k, MAPS, tuple(written.tensors[k].shape), k, tuple(tensors[k].shape),
                            reason="distilled on the target") for k in sorted(tensors))
    return PortPlan(r.module.library, r.family.NAME, infer_variant(r.module, r.base), r.target, rows,
                    start.lineage, tuple(r.notes))


def auto_init(r: Resolved, options: PortOptions, carry) -> tuple[str, Carried | None]:
    """`--init auto`: the tier `check` says will run, carried by `carry(name, r, options)`; where none will (or
    it refuses after all), a fresh module."""
    from hubport.port.plan import plan_for

    tier = plan_for(r, weights=True, similarity=True).runs
    if tier is None:
        return FRESH, None
    try:
        return tier, carry(tier, r, options)
    except HubportError:
        return FRESH, None


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
