"""The study grid: a YAML file of defaults plus per-experiment overrides, validated into frozen dataclasses
and expanded into one RunSpec per cell x condition x seed.

A cell is family x host pair x data pair: every condition of a cell sees the same data order and evaluation
set for a given seed (pairing). References to hosts, data and modules are a local path, a Hub id, or
`scheme:name` resolved by a function the caller passes in (e.g. `demo:origin`); they are resolved once, when
the grid is expanded, and run ids depend on the references as written, never on where they resolved to.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from harness.errors import ConfigError
from harness.grid import check
from harness.grid.conditions import CONDITIONS, DISTRIBUTIONS, GRANULARITIES, NEEDS_ORIGIN, USES_DISTILL
from hubport.engine.modules import FAMILIES, LIBRARIES, ModuleSpec
from hubport.errors import ConfigError as EngineConfigError

AXES = ("pairs", "data_pairs", "families", "conditions", "budgets", "seeds")   # an override replaces these
MERGED = ("hosts", "datasets", "origin", "train", "eval", "sampled", "resources", "distill")   # an override merges these
Items = tuple[tuple[str, Any], ...]   # a frozen mapping: sorted (key, value) pairs
Resolvers = Mapping[str, Callable[[str], "str | Path"]]


@dataclass(frozen=True)
class Family:
    name: str
    library: str
    config: Items


@dataclass(frozen=True)
class OriginModule:
    """A ready originating module (Hub id or folder) used instead of training one for family/host/data."""

    family: str
    origin: str
    data: str
    module: str


@dataclass(frozen=True)
class OriginSettings:
    seed: int | str | tuple[int, ...]   # one module shared by every run; "run": each run seed trains its own;
    # several (grid key `seeds`): one module per origin seed, each crossed with every receiving seed
    steps: int
    train: Items
    modules: tuple[OriginModule, ...] = ()


@dataclass(frozen=True)
class Sampling:
    distribution: str = "normal"
    granularity: str = "tensor"


@dataclass(frozen=True)
class Distillation:
    """Grid key `distill` (ported:distill, scratch:matched): unlabelled steps, temperature, learning rate, and
    the inputs (a reference to data whose train split's text field is read; None: the receiving data's train
    texts, labels withheld). The batch size is the run's; `max_new_tokens` bounds the teacher's outputs."""

    steps: int = 100
    temperature: float = 2.0
    lr: float = 5e-3
    data: str | None = None
    max_new_tokens: int = 8


@dataclass(frozen=True)
class Resources:
    cpus: float = 1.0
    gpus: float = 0.0


@dataclass(frozen=True)
class Experiment:
    name: str
    hosts: Items
    datasets: tuple[tuple[str, Items], ...]
    pairs: tuple[tuple[str, str], ...]
    data_pairs: tuple[tuple[str, str], ...]
    families: tuple[Family, ...]
    conditions: tuple[str, ...]
    budgets: tuple[int, ...]
    seeds: tuple[int, ...]
    origin: OriginSettings
    train: Items
    eval_batch_size: int
    sampled: Sampling
    resources: Resources
    distill: Distillation = Distillation()


@dataclass(frozen=True)
class Grid:
    experiments: tuple[Experiment, ...]
    base_dir: str
    description: str = ""
    primary: tuple[tuple[str, str], ...] = ()   # pre-registered primary comparisons (grid key analysis.primary)

    def to_dict(self) -> dict:
        """The validated grid as plain JSON data (the manifest's `config`); base_dir is machine-specific."""
        data = {"description": self.description, "experiments": [_plain(e) for e in self.experiments]}
        if self.primary:   # absent when not declared, so manifests written before the key existed still match
            data["analysis"] = {"primary": [f"{a} - {b}" for a, b in self.primary]}
        return json.loads(json.dumps(data))


def _plain(exp: Experiment) -> dict:
    """An experiment as data; `distill` only where a condition uses it (older manifests still match)."""
    data = asdict(exp)
    if not set(exp.conditions) & set(USES_DISTILL):
        del data["distill"]
    return data


@dataclass(frozen=True)
class RunSpec:
    """One run: a cell x condition x seed, evaluated after every budget. All a worker needs, as plain data."""

    experiment: str
    family: Family
    origin: str
    receiving: str
    hosts: Items                 # name -> reference as written
    origin_data: str
    receiving_data: str
    datasets: tuple[tuple[str, Items], ...]
    condition: str
    seed: int
    budgets: tuple[int, ...]
    train: Items
    eval_batch_size: int
    sampled: Sampling
    resources: Resources
    origin_seed: int
    origin_steps: int
    origin_train: Items
    origin_module: str | None
    locations: Items             # reference -> resolved path or Hub id (excluded from the run id)
    distill: Distillation | None = None   # only for the conditions that use it (USES_DISTILL)

    @property
    def cell(self) -> tuple[str, ...]:
        return (self.experiment, self.family.name, self.origin, self.receiving, self.origin_data,
                self.receiving_data)

    @property
    def run_id(self) -> str:
        """Readable and stable: grid coordinates plus a hash of every setting but budgets and locations."""
        body = {k: v for k, v in self.to_dict().items() if k not in ("budgets", "locations")}
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:10]
        parts = [self.experiment, self.family.name, f"{self.origin}-{self.receiving}",
                 f"{self.origin_data}-{self.receiving_data}", self.condition, f"s{self.seed}", digest]
        return re.sub(r"[^A-Za-z0-9_.=-]+", "_", ".".join(parts))

    @property
    def origin_plan_key(self) -> str:
        """Runs sharing this key share one originating module (the driver builds it once, first)."""
        body = [self.host_location(self.origin), self.data_fields(self.origin_data), asdict(self.family),
                self.origin_seed, self.origin_steps, self.origin_train, self.origin_module]
        return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        """Plain data; `distill` only where set, so the run ids of the other conditions stay as they were."""
        data = json.loads(json.dumps(asdict(self)))
        if data["distill"] is None:
            del data["distill"]
        return data

    def distill_data(self) -> dict:
        """Where ported:distill's inputs come from: {"source", "split", "text_field"} (labels never read)."""
        if self.distill.data is not None:
            return {"source": self.location(self.distill.data), "split": "train", "text_field": "auto"}
        fields = self.data_fields(self.receiving_data)
        return {"source": fields["source"], "split": fields.get("train_split", "train"),
                "text_field": fields.get("text_field", "text")}

    def location(self, ref: str) -> str:
        return dict(self.locations).get(ref, ref)

    def host_location(self, name: str) -> str:
        return self.location(dict(self.hosts)[name])

    def data_fields(self, name: str) -> dict:
        """The DataSpec fields of a named data set, its source resolved to a path or Hub id."""
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in dict(self.datasets)[name]}
        return {**fields, "source": self.location(fields["source"])}


def load_grid(path: str | Path) -> Grid:
    """Read and validate a grid file (inert YAML: yaml.safe_load only)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"grid file '{path}' does not exist", "pass a YAML file such as configs/paper.yaml")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    return parse_grid(raw, base_dir=path.resolve().parent)


def parse_grid(raw: Any, base_dir: str | Path = ".") -> Grid:
    """Validate a grid given as data; every error names the offending key path."""
    top = check.mapping(raw, "grid")
    check.keys(top, ("description", "defaults", "experiments", "analysis"), "grid")
    analysis = check.mapping(top.get("analysis", {}) or {}, "analysis")
    check.keys(analysis, ("primary",), "analysis")
    defaults = check.mapping(top.get("defaults", {}), "defaults")
    check.keys(defaults, AXES + MERGED, "defaults")
    overrides = check.mapping(top.get("experiments") or {"main": {}}, "experiments")
    experiments = []
    for name, override in overrides.items():
        override = check.mapping(override if override is not None else {}, f"experiments.{name}")
        check.keys(override, AXES + MERGED, f"experiments.{name}")
        merged = {**defaults, **{k: v for k, v in override.items() if k in AXES}}
        for key in MERGED:
            merged[key] = check.deep_merge(defaults.get(key), override.get(key))
        experiments.append(_experiment(str(name), merged))
    primary = check.primary_pairs(analysis["primary"], "analysis.primary") if "primary" in analysis else ()
    return Grid(experiments=tuple(experiments), base_dir=str(base_dir),
                description=str(top.get("description", "")), primary=primary)


def _section(raw: dict, key: str, allowed: tuple[str, ...], where: str) -> dict:
    value = check.mapping(raw.get(key, {}), f"{where}.{key}")
    check.keys(value, allowed, f"{where}.{key}")
    return value


def _experiment(name: str, raw: dict) -> Experiment:
    w = f"experiments.{name}"
    hosts = {str(k): check.string(v, f"{w}.hosts.{k}")
             for k, v in check.mapping(raw.get("hosts"), f"{w}.hosts").items()}
    datasets = {str(k): check.data_fields(v, f"{w}.datasets.{k}")
                for k, v in check.mapping(raw.get("datasets"), f"{w}.datasets").items()}
    families = tuple(_family(str(k), v, f"{w}.families.{k}")
                     for k, v in check.mapping(raw.get("families"), f"{w}.families", nonempty=True).items())
    origin = _section(raw, "origin", ("seed", "seeds", "steps", "train", "modules"), w)
    distill = dict(check.typed_fields(raw.get("distill", {}) or {}, Distillation, f"{w}.distill"))
    sampled = _section(raw, "sampled", ("distribution", "granularity"), w)
    resources = _section(raw, "resources", ("cpus", "gpus"), w)
    evals = _section(raw, "eval", ("batch_size",), w)
    modules = check.origin_modules(origin.get("modules", []), f"{w}.origin.modules")
    exp = Experiment(
        name=name, hosts=tuple(sorted(hosts.items())), datasets=tuple(sorted(datasets.items())),
        pairs=check.pairs(raw.get("pairs"), hosts, f"{w}.pairs"),
        data_pairs=check.pairs(raw.get("data_pairs"), datasets, f"{w}.data_pairs"),
        families=families,
        conditions=check.names(raw.get("conditions"), CONDITIONS, f"{w}.conditions"),
        budgets=check.ints(raw.get("budgets"), f"{w}.budgets", minimum=0),
        seeds=check.ints(raw.get("seeds"), f"{w}.seeds", minimum=0),
        origin=OriginSettings(
            seed=check.origin_seeds(origin, f"{w}.origin"),
            steps=check.integer(origin.get("steps", 100), f"{w}.origin.steps", minimum=1),
            train=check.train_fields(origin.get("train", raw.get("train", {})), f"{w}.origin.train"),
            modules=tuple(OriginModule(**m) for m in modules)),
        train=check.train_fields(raw.get("train", {}), f"{w}.train"),
        eval_batch_size=check.integer(evals.get("batch_size", 64), f"{w}.eval.batch_size", minimum=1),
        sampled=Sampling(
            distribution=check.choice(sampled.get("distribution", "normal"), DISTRIBUTIONS,
                                      f"{w}.sampled.distribution"),
            granularity=check.choice(sampled.get("granularity", "tensor"), GRANULARITIES,
                                     f"{w}.sampled.granularity")),
        resources=Resources(cpus=check.number(resources.get("cpus", 1), f"{w}.resources.cpus", minimum=0),
                            gpus=check.number(resources.get("gpus", 0), f"{w}.resources.gpus", minimum=0)),
        distill=_distillation(distill, f"{w}.distill"))
    check.origin_module_refs(exp.origin.modules, families=[f.name for f in families], hosts=hosts,
                             datasets=datasets, where=f"{w}.origin.modules")
    return exp


def _distillation(fields: dict, where: str) -> Distillation:
    out = Distillation(**fields)
    for name in ("steps", "max_new_tokens"):
        check.integer(getattr(out, name), f"{where}.{name}", minimum=1)
    for name in ("temperature", "lr"):
        if not getattr(out, name) > 0:
            raise ConfigError(f"{where}.{name} must be > 0, got {getattr(out, name)!r}")
    return out


def _family(name: str, raw: Any, where: str) -> Family:
    check.choice(name, FAMILIES, where.rpartition(".")[0] + " name")
    raw = check.mapping(raw if raw is not None else {}, where)
    check.keys(raw, ("library", "config"), where)
    library = check.choice(raw.get("library", "peft"), LIBRARIES, f"{where}.library")
    config = check.mapping(raw.get("config", {}) or {}, f"{where}.config")
    try:   # the family must exist in that library; config keys are its own
        ModuleSpec.of(name, library, config)
    except EngineConfigError as exc:   # the engine's words, said of the grid's line
        raise ConfigError(f"{where}: {exc.message}", exc.hint) from None
    return Family(name=name, library=library, config=check.freeze(config))


def narrow(grid: Grid, **axes: str | list[str] | None) -> Grid:
    """Keep only the named values of axes (families, conditions, budgets, seeds); names as in the config."""
    experiments = grid.experiments
    for axis, wanted in axes.items():
        if not wanted:
            continue
        if isinstance(wanted, str):
            wanted = wanted.split(",")
        wanted = [str(w).strip() for w in wanted]
        known = sorted({_axis_name(v) for e in experiments for v in getattr(e, axis)})
        for value in wanted:
            if value not in known:
                raise check.unknown(f"--{axis} value", value, known)
        experiments = tuple(
            replace(e, **{axis: tuple(v for v in getattr(e, axis) if _axis_name(v) in wanted)})
            for e in experiments)
    kept = tuple(e for e in experiments if all(getattr(e, a) for a in AXES))
    if not kept:
        raise ConfigError("the command-line filters leave no run in the grid", "widen --families/--seeds/...")
    return replace(grid, experiments=kept)


def _axis_name(value: Any) -> str:
    return value.name if isinstance(value, Family) else str(value)


def expand(grid: Grid, resolvers: Resolvers | None = None) -> list[RunSpec]:
    """Every run of the grid, in a stable order (cells together, so an origin module is reused soon)."""
    runs = []
    for exp in grid.experiments:
        locations = _locations(exp, Path(grid.base_dir), resolvers or {})
        for fam in exp.families:
            for origin, receiving in exp.pairs:
                for odata, rdata in exp.data_pairs:
                    module = next((m.module for m in exp.origin.modules
                                   if (m.family, m.origin, m.data) == (fam.name, origin, odata)), None)
                    for condition in exp.conditions:
                        for seed, origin_seed in _seed_plan(exp, condition):
                            runs.append(RunSpec(
                                experiment=exp.name, family=fam, origin=origin, receiving=receiving,
                                hosts=exp.hosts, origin_data=odata, receiving_data=rdata,
                                datasets=exp.datasets,
                                condition=condition, seed=seed,
                                budgets=() if condition == "host" else tuple(sorted(exp.budgets)),
                                train=exp.train, eval_batch_size=exp.eval_batch_size, sampled=exp.sampled,
                                resources=exp.resources,
                                origin_seed=origin_seed,
                                origin_steps=exp.origin.steps, origin_train=exp.origin.train,
                                origin_module=module, locations=locations,
                                distill=exp.distill if condition in USES_DISTILL else None))
    return runs


def _seed_plan(exp: Experiment, condition: str) -> list[tuple[int, int]]:
    """(receiving seed, origin seed) of each run: conditions built from the originating module cross every
    origin seed with every receiving seed; the others run once per receiving seed (origin seed unused)."""
    if exp.origin.seed == "run":
        return [(s, s) for s in exp.seeds]
    origins = exp.origin.seed if isinstance(exp.origin.seed, tuple) else (int(exp.origin.seed),)
    if condition not in NEEDS_ORIGIN:
        origins = origins[:1]
    return [(s, o) for o in origins for s in exp.seeds]


def _locations(exp: Experiment, base_dir: Path, resolvers: Resolvers) -> Items:
    refs = [(ref, True) for _, ref in exp.hosts] + [(m.module, True) for m in exp.origin.modules]
    refs += [(dict(fields)["source"], False) for _, fields in exp.datasets]
    refs += [(exp.distill.data, False)] if exp.distill.data is not None else []
    resolved = {ref: resolve_ref(ref, base_dir, resolvers, strict=strict) for ref, strict in refs}
    return tuple(sorted(resolved.items()))


def resolve_ref(ref: str, base_dir: Path, resolvers: Resolvers, *, strict: bool = True) -> str:
    """A reference -> a local path or Hub id: `scheme:name` via resolvers[scheme], `./x` relative to the
    grid file, an existing relative path, else a Hub id. `strict` refuses an unknown scheme (model ids have no
    ':'; data ids may: "owner/name:config")."""
    scheme, sep, rest = ref.partition(":")
    if sep and re.fullmatch(r"[A-Za-z][\w-]*", scheme) and len(scheme) > 1:
        if scheme in resolvers:
            return str(resolvers[scheme](rest))
        if scheme == "hub":
            return rest
        if scheme == "file":
            return str((base_dir / Path(rest).expanduser()).resolve())
        if strict:
            known = ", ".join(sorted(resolvers)) or "none"
            raise ConfigError(f"no resolver for the reference '{ref}'",
                              f"pass one for '{scheme}:' or use a folder or Hub id (resolvers: {known})")
        return ref
    if ref.startswith(("/", "./", "../", "~")) or (base_dir / ref).exists():
        return str((base_dir / Path(ref).expanduser()).resolve())
    return ref
