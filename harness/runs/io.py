"""The harness's one JSON codec and one atomic writer, so that every file it writes follows one rule.

NaN rule: a float with no value is NaN in memory and null in JSON; infinities are the strings "inf" / "-inf"
(e.g. seeds needed when no difference can be powered); a float field reads both back as floats. Dataclasses
become objects, tuples lists (and come back as tuples), numpy scalars Python numbers. Files are sorted JSON,
written to a temporary file, fsynced and renamed: a reader sees the old file or the new, never half of one.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import types
import typing
from pathlib import Path
from typing import Any

import numpy as np


def to_jsonable(obj: Any) -> Any:
    """Dataclasses to dicts, tuples to lists, numpy scalars to Python, NaN to None, infinities to strings."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        if math.isnan(obj):
            return None
        return float(obj) if math.isfinite(obj) else ("inf" if obj > 0 else "-inf")
    return obj


def from_jsonable(tp: Any, data: Any) -> Any:
    """Rebuild a value of type tp (a dataclass, tuple, float, optional...) from to_jsonable output."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if data is None and type(None) in args:
            return None
        return from_jsonable(next(a for a in args if a is not type(None)), data)
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        kwargs = {f.name: from_jsonable(hints[f.name], data[f.name]) for f in dataclasses.fields(tp)
                  if f.name in data}
        return tp(**kwargs)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(from_jsonable(args[0], v) for v in data)
        return tuple(from_jsonable(a, v) for a, v in zip(args, data, strict=False))
    if origin is dict and len(args) == 2 and isinstance(data, dict):
        return {k: from_jsonable(args[1], v) for k, v in data.items()}
    if tp is float:
        return math.nan if data is None else float(data)  # float("inf") reads the strings
    return data


def write_json(path: Path, data: Any) -> None:
    """data as sorted JSON at path, atomically: tmp file, fsync, os.replace, fsync of the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(to_jsonable(data), sort_keys=True, indent=1, default=str, allow_nan=False) + "\n"
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def write_text(path: Path, text: str) -> None:
    """A text file (CSV, Markdown) written whole the same way as write_json."""
    path = Path(path)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def fsync_dir(path: Path) -> None:
    """Make a rename in path durable (the folder's entry, not only the file's bytes)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_json(path: Path) -> dict | None:
    """The file's data, or None when it is missing or unreadable (a record is either whole or absent)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
