"""Tensor files without a framework: safetensors headers, byte ranges, and safe reads of `.bin` pickles.

Checking and copy-porting need only names, dtypes and shapes, which a safetensors header gives in a few hundred
bytes; the same offsets let the lineage check read a sample of embedding rows by HTTP range request. Tensor data
are decoded to numpy only where numbers are needed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hubport.errors import FormatError, UnsafePickleError
from hubport.stheader import (
    ITEMSIZE,
    MAX_HEADER,
    ReadRange,
    TensorInfo,
    header_length,
    load_header_json,
    validate,
)

__all__ = [
    "ITEMSIZE",
    "MAX_HEADER",
    "ReadRange",
    "TensorInfo",
    "decode",
    "finite",
    "load_pickle_weights",
    "local_reader",
    "parse_header",
    "read_local_header",
    "read_rows",
    "row_runs",
]


def parse_header(read: ReadRange, size: int, where: str) -> dict[str, TensorInfo]:
    """Read and validate a safetensors header (hubport.stheader): every tensor inside the file, tiling it."""
    n = header_length(read, size, where)
    return validate(load_header_json(read(8, 8 + n), where), base=8 + n, size=size, where=where)


def local_reader(path: Path) -> ReadRange:
    """A ReadRange over a local file."""

    def read(start: int, end: int) -> bytes:
        with open(path, "rb") as fh:
            fh.seek(start)
            return fh.read(end - start)

    return read


def read_local_header(path: Path) -> dict[str, TensorInfo]:
    return parse_header(local_reader(path), path.stat().st_size, str(path))


def decode(raw: bytes, dtype: str, shape: tuple[int, ...], name: str = "a host tensor") -> np.ndarray:
    """Bytes of one tensor (or of whole rows of it) as float32 numpy; bf16 is widened exactly. NaN or inf is
    refused by name: no lineage or similarity number means anything over corrupt weights."""
    if dtype == "BF16":
        bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return finite(bits.view(np.float32).reshape(shape), name)
    np_dtype = {"F64": "<f8", "F32": "<f4", "F16": "<f2"}.get(dtype)
    if np_dtype is None:
        raise FormatError(f"cannot decode tensors of dtype {dtype} as floats")
    return finite(np.frombuffer(raw, dtype=np_dtype).astype(np.float32).reshape(shape), name)


def finite(values: np.ndarray, name: str) -> np.ndarray:
    """`values` unchanged, or a FormatError when any is NaN or infinite."""
    if not np.isfinite(values).all():
        raise FormatError(f"tensor '{name}' holds values that are not finite (NaN or inf)",
                          "the host's weights are corrupt: re-save or download it again")
    return values


def read_rows(read: ReadRange, info: TensorInfo, rows: list[int]) -> np.ndarray:
    """Rows of a 2-D tensor as float32 [len(rows), cols]; each run of consecutive rows is one byte range."""
    if len(info.shape) != 2:
        raise FormatError(f"tensor '{info.name}' is not a matrix")
    cols = info.shape[1]
    row_bytes = cols * ITEMSIZE[info.dtype]
    out = []
    for first, count in row_runs(rows):
        raw = read(info.start + first * row_bytes, info.start + (first + count) * row_bytes)
        out.append(decode(raw, info.dtype, (count, cols), info.name))
    return np.concatenate(out)


def row_runs(rows: list[int]) -> list[tuple[int, int]]:
    """[3, 4, 5, 9] -> [(3, 3), (9, 1)]: (first row, count) of each consecutive run."""
    runs: list[tuple[int, int]] = []
    for r in rows:
        if runs and runs[-1][0] + runs[-1][1] == r:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((r, 1))
    return runs


def load_pickle_weights(path: Path) -> dict:
    """A `.bin` state dict through torch.load(weights_only=True): tensors and plain containers, nothing else.

    Any other object (the thing that lets a pickle run code) makes torch refuse the file; we never retry with
    weights_only=False.
    """
    import pickle
    import re
    import warnings

    import torch

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"WeightsUnpickler error:\s*(.+)", str(exc))
        what = found.group(1).strip()[:100] if found else "refused by torch's weights-only loader"
        raise UnsafePickleError(f"{path.name} holds objects other than tensors ({what})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise FormatError(f"{path.name} cannot be read as a PyTorch weights file ({str(exc)[:120]})") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise FormatError(f"{path.name} is not a state dict of named tensors")
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise FormatError(f"{path.name}: entry '{bad[0]}' is not a tensor")
    return state
