"""Validation helpers for grid files: each check returns the clean value or raises a one-line ConfigError that
names the key path and, for a misspelt name, the closest valid one (difflib)."""

from __future__ import annotations

import dataclasses
import difflib
import re
import typing
from collections.abc import Iterable
from typing import Any

from harness.errors import ConfigError

ORIGIN_MODULE_KEYS = ("family", "origin", "data", "module")


def unknown(kind: str, name: str, known: Iterable[str]) -> ConfigError:
    """An 'unknown X' error with a did-you-mean hint."""
    known = sorted(str(k) for k in known)
    close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.5)
    hint = f"did you mean '{close[0]}'?" if close else f"choose one of: {', '.join(known)}"
    return ConfigError(f"unknown {kind} '{name}'", hint)


def mapping(value: Any, where: str, *, nonempty: bool = False) -> dict:
    if value is None and not nonempty:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(value).__name__}", "see configs/paper.yaml")
    if nonempty and not value:
        raise ConfigError(f"{where} is empty", "list at least one entry")
    return value


def keys(value: dict, allowed: Iterable[str], where: str) -> None:
    allowed = tuple(allowed)
    for key in value:
        if key not in allowed:
            raise unknown(f"key in {where}:", str(key), allowed)


def deep_merge(base: Any, override: Any) -> Any:
    """Mappings merge key by key (recursively); anything else in `override` replaces `base`."""
    if override is None:
        return base
    if isinstance(base, dict) and isinstance(override, dict):
        return {**base, **{k: deep_merge(base.get(k), v) for k, v in override.items()}}
    return override


def string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where} must be a non-empty string, got {value!r}")
    return value


def integer(value: Any, where: str, *, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where} must be an integer, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{where} must be at least {minimum}, got {value}")
    return value


def number(value: Any, where: str, *, minimum: float | None = None) -> float:
    if isinstance(value, str):
        try:
            value = float(value)     # YAML 1.1 reads 1e-3 (no dot) as a string
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{where} must be a number, got {value!r}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{where} must be at least {minimum}, got {value}")
    return float(value)


def choice(value: Any, known: Iterable[str], where: str) -> str:
    if value not in tuple(known):
        raise unknown(where, str(value), known)
    return value


def _list(value: Any, where: str) -> list:
    if value is None:
        raise ConfigError(f"{where} is missing", "list at least one value")
    if not isinstance(value, list):
        raise ConfigError(f"{where} must be a list, got {type(value).__name__}", "write it as [a, b, ...]")
    if not value:
        raise ConfigError(f"{where} is empty", "list at least one value")
    if len({repr(v) for v in value}) != len(value):
        raise ConfigError(f"{where} lists a value twice: {value}")
    return value


def ints(value: Any, where: str, *, minimum: int = 0) -> tuple[int, ...]:
    return tuple(integer(v, f"{where}[{i}]", minimum=minimum) for i, v in enumerate(_list(value, where)))


def names(value: Any, known: Iterable[str], where: str) -> tuple[str, ...]:
    return tuple(choice(v, known, f"{where}[{i}]") for i, v in enumerate(_list(value, where)))


def pairs(value: Any, known: dict, where: str) -> tuple[tuple[str, str], ...]:
    """`a -> b` strings, [a, b] lists, or a single name meaning `a -> a`; names must be defined in `known`."""
    out = []
    for i, item in enumerate(_list(value, where)):
        if isinstance(item, str):
            parts = [p.strip() for p in re.split(r"->", item)]
        elif isinstance(item, list):
            parts = item
        else:
            raise ConfigError(f"{where}[{i}] must be 'a -> b' or [a, b], got {item!r}")
        if len(parts) == 1:
            parts = parts * 2
        if len(parts) != 2:
            raise ConfigError(f"{where}[{i}] must name two entries, got {item!r}", "write it as 'a -> b'")
        for part in parts:
            if part not in known:
                raise unknown(f"name in {where}[{i}]:", str(part), known)
        out.append((str(parts[0]), str(parts[1])))
    return tuple(out)


def freeze(value: Any) -> Any:
    """Mappings -> sorted item tuples, lists -> tuples: hashable, stable, JSON-able."""
    if isinstance(value, dict):
        return tuple(sorted((str(k), freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(freeze(v) for v in value)
    return value


def typed_fields(value: Any, cls: type, where: str, *, required: tuple[str, ...] = ()) -> tuple:
    """A mapping checked against a dataclass's fields and type hints (the engine's DataSpec/TrainConfig)."""
    value = mapping(value, where)
    hints = typing.get_type_hints(cls)
    keys(value, [f.name for f in dataclasses.fields(cls)], where)
    for name in required:
        if name not in value:
            raise ConfigError(f"{where} needs '{name}'")
    return tuple(sorted((k, _typed(v, hints[k], f"{where}.{k}")) for k, v in value.items()))


def _typed(value: Any, hint: Any, where: str) -> Any:
    args = typing.get_args(hint)
    if type(None) in args:
        if value is None:
            return None
        hint = next(a for a in args if a is not type(None))
        args = typing.get_args(hint)
    if hint is float:
        return number(value, where)
    if hint is int:
        return integer(value, where)
    if hint is bool and not isinstance(value, bool):
        raise ConfigError(f"{where} must be true or false, got {value!r}")
    if hint is str:
        return string(value, where)
    if typing.get_origin(hint) is tuple:
        return tuple(string(v, f"{where}[{i}]") for i, v in enumerate(_list(value, where)))
    return value


def data_fields(value: Any, where: str) -> tuple:
    from hubport.engine.data import DataSpec

    if isinstance(value, str):
        value = {"source": value}
    return typed_fields(value, DataSpec, where, required=("source",))


def train_fields(value: Any, where: str) -> tuple:
    from hubport.engine.train import TrainConfig

    return typed_fields(value, TrainConfig, where)


def origin_seed(value: Any, where: str) -> int | str:
    if value == "run":
        return value
    if isinstance(value, str):
        raise ConfigError(f"{where} must be an integer or 'run', got {value!r}")
    return integer(value, where, minimum=0)


def origin_seeds(section: dict, where: str) -> int | str | tuple[int, ...]:
    """`seed: 0` (one originating module), `seed: run`, or `seeds: [0, 1, 2]` (several, crossed with the
    receiving seeds); one seed in `seeds` is the same grid as `seed`."""
    if "seeds" not in section:
        return origin_seed(section.get("seed", 0), f"{where}.seed")
    if "seed" in section:
        raise ConfigError(f"{where} has both 'seed' and 'seeds'", "keep one: seeds: [0, 1, 2] or seed: 0")
    seeds = ints(section["seeds"], f"{where}.seeds", minimum=0)
    return seeds[0] if len(seeds) == 1 else seeds


def primary_pairs(value: Any, where: str) -> tuple[tuple[str, str], ...]:
    """The pre-registered primary comparisons, written "a - b" (e.g. "ported - scratch")."""
    out = []
    for i, item in enumerate(_list(value, where)):
        a, sep, b = string(item, f"{where}[{i}]").partition(" - ")
        if not sep or not a.strip() or not b.strip():
            raise ConfigError(f"{where}[{i}] must read 'a - b', got {item!r}", "e.g. 'ported - scratch'")
        out.append((a.strip(), b.strip()))
    return tuple(out)


def origin_modules(value: Any, where: str) -> list[dict]:
    if not isinstance(value, list):
        raise ConfigError(f"{where} must be a list of {{family, origin, data, module}}")
    out = []
    for i, item in enumerate(value):
        item = mapping(item, f"{where}[{i}]")
        keys(item, ORIGIN_MODULE_KEYS, f"{where}[{i}]")
        out.append({k: string(item.get(k), f"{where}[{i}].{k}") for k in ORIGIN_MODULE_KEYS})
    return out


def origin_module_refs(modules: Iterable, *, families: list, hosts: dict, datasets: dict, where: str) -> None:
    for i, m in enumerate(modules):
        choice(m.family, families, f"{where}[{i}].family")
        choice(m.origin, hosts, f"{where}[{i}].origin")
        choice(m.data, datasets, f"{where}[{i}].data")
