"""The run record: what one run of the grid was, what came out of it, and where and with what it ran.

A RunRecord is frozen and typed; on disk it is one flat, sorted JSON object (the three parts' fields side by
side, plus "format"), so that a record stays readable with `jq` and records written before the type existed
(format 0: no "format" key) still load. Paths in a record are final paths, never a temporary folder.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import RecordError
from harness.runs.identity import git_commit, versions
from harness.runs.io import from_jsonable, read_json, to_jsonable

RECORD_FORMAT = 1   # bump when a field changes meaning; add an upgrade from the previous format to _UPGRADES
STATUSES = ("ok", "refused", "failed")
FINISHED = ("ok", "refused")   # statuses of a run that is done (a rerun skips it)


@dataclass(frozen=True)
class RunInfo:
    """Which run: its id, its outcome and its full specification (RunSpec.to_dict())."""

    run_id: str
    status: str
    spec: dict[str, Any]
    started: str | None = None    # ISO 8601, UTC; None for a run that failed before it started
    finished: str | None = None


@dataclass(frozen=True)
class Budget:
    """The evaluation after training to one budget (cumulative steps)."""

    accuracy: float
    n: int | None = None                       # evaluation examples
    predictions: tuple[int, ...] | None = None  # predicted label index per evaluation example
    loss: float = math.nan                     # mean training loss since the previous budget; NaN: none trained
    train_seconds: float = 0.0
    eval_seconds: float = math.nan


@dataclass(frozen=True)
class ResultInfo:
    """What came out: metrics per budget, the port and its fidelity, or why there are none."""

    metrics: dict[str, Budget] = field(default_factory=dict)   # by budget, as a string ("0", "10", ...)
    fidelity: dict[str, Any] | None = None   # function fidelity of the ported module at budget 0
    origin: dict[str, Any] | None = None     # the originating module: trained (key, accuracy...) or referenced
    port: dict[str, Any] | None = None       # the cached port: key, method and hubport's report
    pairing: dict[str, Any] | None = None    # digests of the evaluation set and the training order
    seeds: dict[str, Any] | None = None
    timings: dict[str, float] | None = None  # seconds per phase
    reason: str | None = None                # refused: hubport's one-line reason
    error: dict[str, Any] | None = None      # refused or failed: type, message (and traceback)
    seconds: float = math.nan                # failed: time until the failure
    examples: dict[str, Any] | None = None   # the per-example sidecar: file, sha256, rows (harness.runs.examples)
    distill: dict[str, Any] | None = None    # ported:distill: its unlabelled steps, seconds, agreement, KL, data;
    # scratch:matched: the labelled steps (as many) trained before budget 0 and their seconds


@dataclass(frozen=True)
class MetaInfo:
    """Where and with what it ran."""

    versions: dict[str, str | None] | None = None
    git_commit: str | None = None
    machine: dict[str, Any] | None = None
    identities: dict[str, Any] | None = None   # content hashes / Hub revisions of the receiving host and data

    @classmethod
    def here(cls, **kwargs: Any) -> MetaInfo:
        """The installed stack and git commit of this process, plus the given fields."""
        return cls(versions=versions(), git_commit=git_commit(), **kwargs)


_PARTS = {"run_info": RunInfo, "result_info": ResultInfo, "meta_info": MetaInfo}


@dataclass(frozen=True)
class RunRecord:
    run_info: RunInfo
    result_info: ResultInfo = field(default_factory=ResultInfo)
    meta_info: MetaInfo = field(default_factory=MetaInfo)

    def __post_init__(self) -> None:
        if self.run_info.status not in STATUSES:
            raise RecordError(f"run {self.run_info.run_id} has status '{self.run_info.status}'",
                              f"a record's status is one of {', '.join(STATUSES)}")

    @property
    def run_id(self) -> str:
        return self.run_info.run_id

    @property
    def status(self) -> str:
        return self.run_info.status

    @property
    def spec(self) -> dict[str, Any]:
        return self.run_info.spec

    @property
    def finished(self) -> bool:
        """A run that is done: a rerun skips it (a failed one is retried only on request)."""
        return self.status in FINISHED

    def budgets(self) -> set[int]:
        """The budgets the run was asked for."""
        return {int(b) for b in self.spec.get("budgets", [])}

    def to_dict(self) -> dict[str, Any]:
        """The flat JSON-ready form (NaN as null, see harness.runs.io)."""
        flat: dict[str, Any] = {"format": RECORD_FORMAT}
        for name in _PARTS:
            flat.update(to_jsonable(getattr(self, name)))
        return flat

    @classmethod
    def from_dict(cls, data: Any, where: str = "record") -> RunRecord:
        """Read the flat form of any format up to RECORD_FORMAT; refuse anything else in one line."""
        if not isinstance(data, dict) or not {"run_id", "status", "spec"} <= set(data):
            raise RecordError(f"{where} is not a run record (it lacks run_id, status or spec)")
        version = data.get("format", 0)
        if not isinstance(version, int) or not 0 <= version <= RECORD_FORMAT:
            raise RecordError(f"{where} is a run record of format {version!r}; this harness reads formats 0 to "
                              f"{RECORD_FORMAT}", "upgrade hubport to the version that wrote it")
        _check_fields(data, where)
        for upgrade in _UPGRADES[version:]:
            data = upgrade(data)
        known = {f.name for part in _PARTS.values() for f in dataclasses.fields(part)} | {"format"}
        extra = sorted(set(data) - known)
        if extra:
            raise RecordError(f"{where} has field(s) this harness does not know: {', '.join(extra)}",
                              "read it with the harness version that wrote it")
        parts = {name: from_jsonable(tp, {f.name: data[f.name] for f in dataclasses.fields(tp) if f.name in data})
                 for name, tp in _PARTS.items()}
        return cls(**parts)

    @classmethod
    def load(cls, path: Path) -> RunRecord | None:
        """The record in path; None when the file is missing or torn (a record is either whole or absent)."""
        data = read_json(path)
        return None if data is None else cls.from_dict(data, where=str(path))


SPEC_FIELDS = {"experiment": str, "origin": str, "receiving": str, "origin_data": str, "receiving_data": str,
               "condition": str, "seed": int, "family": dict}


def _check_fields(data: dict, where: str) -> None:
    """The fields the analysis reads, with their types: a RecordError names the file and the field."""
    if data["status"] not in STATUSES:
        raise RecordError(f"{where} has status {str(data['status'])[:30]!r}, not one of {', '.join(STATUSES)}")
    spec = data["spec"]
    if not isinstance(data["run_id"], str) or not isinstance(spec, dict):
        raise RecordError(f"{where}: a record needs a string 'run_id' and an object 'spec'")
    for name, kind in SPEC_FIELDS.items():
        if not isinstance(spec.get(name), kind) or isinstance(spec.get(name), bool):
            raise RecordError(f"{where}: spec.{name} must be {kind.__name__}, not {str(spec.get(name))[:30]!r}")
    if not all(isinstance(spec["family"].get(k), str) for k in ("name", "library")):
        raise RecordError(f"{where}: spec.family needs string 'name' and 'library'")
    if data["status"] == "refused" and not isinstance(data.get("reason"), str):
        raise RecordError(f"{where}: a refused run needs its 'reason'")
    if data["status"] != "ok":
        return
    metrics = data.get("metrics")
    if not isinstance(metrics, dict) or not metrics:
        raise RecordError(f"{where}: a finished run needs 'metrics' per budget")
    for budget, m in metrics.items():
        accuracy = m.get("accuracy") if isinstance(m, dict) else None
        if not str(budget).isdigit() or isinstance(accuracy, bool) or not isinstance(accuracy, int | float):
            raise RecordError(f"{where}: metrics['{str(budget)[:20]}'] needs a numeric 'accuracy'")
    if not isinstance(data.get("fidelity") or {}, dict):
        raise RecordError(f"{where}: 'fidelity' must be an object")


_TMP_FOLDER = re.compile(r"^\.(?P<name>.+)\.tmp-\d+$")


def _final_path(path: str) -> str:
    """`.../ported/.<key>.tmp-<pid>/module` -> `.../ported/<key>/module`: where the folder was renamed to."""
    parts = list(Path(path).parts)
    for i, part in enumerate(parts):
        match = _TMP_FOLDER.match(part)
        if match:
            parts[i] = match["name"]
    return str(Path(*parts)) if parts else path


def _from_format_0(data: dict) -> dict:
    """Format 0 (before RunRecord): the port report's `out` named the temporary folder of the port."""
    report = (data.get("port") or {}).get("report")
    if not report or not report.get("out"):
        return data
    port = {**data["port"], "report": {**report, "out": _final_path(report["out"])}}
    return {**data, "port": port}


_UPGRADES = (_from_format_0,)   # _UPGRADES[v] turns format v into format v + 1
