"""Frozen dataclasses <-> JSON-ready values, driven by the type hints, so results round-trip exactly.

JSON has no NaN or infinity: NaN is written as null and infinities as the strings "inf" / "-inf"; a float
field reads them back as floats. Tuples become lists and come back as tuples.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


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
        return tuple(from_jsonable(a, v) for a, v in zip(args, data))
    if tp is float:
        return math.nan if data is None else float(data)  # float("inf") reads the strings
    return data
