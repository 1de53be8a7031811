"""The one validator of safetensors headers, for modules and hosts alike, local or read by HTTP range.

A header is untrusted JSON that says where every tensor's bytes are. Before any offset is used hubport checks
what the safetensors format promises: known dtypes, integer offsets that tile the data buffer exactly (contiguous,
no overlap, no gap, nothing past the end), non-negative integer shapes whose size matches the bytes, string
metadata, and bounded size and nesting. Anything else is a one-line FormatError naming the file and the tensor.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass

from hubport.errors import FormatError

ITEMSIZE = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1,
    "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1,
}  # fmt: skip
MAX_HEADER = 100 * 1024 * 1024
MAX_DIMS = 8

ReadRange = Callable[[int, int], bytes]
"""Reads bytes [start, end) of one file: a local seek, or an HTTP range request."""


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives in a safetensors file (absolute byte offsets)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.start


def header_length(read: ReadRange, size: int, where: str) -> int:
    """The header's byte count from the 8-byte prefix, bounded by the file and by MAX_HEADER."""
    if size < 8:
        raise FormatError(f"{where} is truncated ({size} bytes, not a safetensors file)")
    (n,) = struct.unpack("<Q", read(0, 8))
    if n > MAX_HEADER or 8 + n > size:
        raise FormatError(f"{where} is truncated or not safetensors (header of {n} bytes in a {size}-byte file)")
    return n


def load_header_json(raw: bytes, where: str) -> dict:
    """The header as a JSON object; deep nesting and non-UTF-8 are refused, not crashed on."""
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise FormatError(f"{where} has a corrupt safetensors header (not JSON)") from None
    except RecursionError:
        raise FormatError(f"{where} has a corrupt safetensors header (nested too deep)") from None
    if not isinstance(header, dict):
        raise FormatError(f"{where} has a corrupt safetensors header (not a JSON object)")
    return header


def validate(header: dict, base: int, size: int, where: str) -> dict[str, TensorInfo]:
    """Every entry checked, then the byte ranges: sorted by start they must tile [base, size) exactly."""
    meta = header.get("__metadata__", {})
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise FormatError(f"{where}: the header's __metadata__ must map strings to strings")
    infos = {name: entry_info(name, entry, base, size, where) for name, entry in header.items()
             if name != "__metadata__"}
    at = base
    for info in sorted(infos.values(), key=lambda i: (i.start, i.end)):
        if info.start < at:
            raise FormatError(f"{where}: tensor '{info.name}' overlaps the tensor before it (byte {info.start})")
        if info.start > at:
            raise FormatError(f"{where}: a gap of {info.start - at} bytes before tensor '{info.name}'")
        at = info.end
    if at != size:
        raise FormatError(f"{where}: {size - at} bytes after the last tensor belong to none (not safetensors)")
    return infos


def entry_info(name: str, entry: object, base: int, size: int, where: str) -> TensorInfo:
    """One header entry as a TensorInfo, or a FormatError saying which field of which tensor is wrong."""
    try:  # the common case in one pass (a 3,500-tensor host header is checked in a few milliseconds)
        dtype, shape, (begin, end) = entry["dtype"], entry["shape"], entry["data_offsets"]  # type: ignore[index]
        count = 1
        for d in shape:
            count *= d if type(d) is int and d > 0 else -1
        if (type(begin) is int and type(end) is int and 0 <= begin and end <= size - base and type(shape) is list
                and 0 < count and len(shape) <= MAX_DIMS and end - begin == ITEMSIZE[dtype] * count):
            return TensorInfo(name, dtype, tuple(shape), base + begin, base + end)
    except (TypeError, KeyError, ValueError, IndexError):
        pass
    raise _entry_error(name, entry, base, size, where)


def _entry_error(name: str, entry: object, base: int, size: int, where: str) -> FormatError:
    """What exactly is wrong with an entry the fast path refused (checked in the order a reader needs)."""
    if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= entry.keys():
        return FormatError(f"{where}: tensor '{name}' needs dtype, shape and data_offsets in its header entry")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str) or dtype not in ITEMSIZE:
        return FormatError(f"{where}: tensor '{name}' has an unknown dtype {str(dtype)[:20]!r}",
                           f"safetensors dtypes are {', '.join(ITEMSIZE)}")
    if not isinstance(shape, list) or len(shape) > MAX_DIMS or not all(_count(d) for d in shape):
        return FormatError(f"{where}: tensor '{name}' has a shape that is not a list of non-negative integers")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_count(o) for o in offsets):
        return FormatError(f"{where}: tensor '{name}' has data_offsets that are not two non-negative integers")
    begin, end = offsets
    if begin > end:
        return FormatError(f"{where}: tensor '{name}' ends (byte {end}) before it begins (byte {begin})")
    if base + end > size:
        return FormatError(f"{where} is truncated: tensor '{name}' ends at byte {base + end} of {size}")
    if 0 in shape:
        return FormatError(f"{where}: tensor '{name}' has a zero-size dimension (shape {shape})",
                           "a module or host tensor with no elements holds nothing to port")
    expected = ITEMSIZE[dtype] * math.prod(shape)
    return FormatError(f"{where}: tensor '{name}' holds {end - begin} bytes, its shape needs {expected}")


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
