"""How far apart two hosts are where a module attaches: a forecast of how well it will port.

Per adapted slot, the host weights under that slot (a projection's `weight`, or every weight of a layer for
bottleneck adapters) are compared: relative difference ||B - A|| / ||A|| and cosine similarity. By default only a
sample of each matrix's rows is read (`budget` bytes over all slots and both hosts, whatever the host's size), so
`check` costs what `port` costs; `budget=None` (`check --deep`) reads the whole matrices.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from hubport.hostsource import HostSource
from hubport.keys import parse_key
from hubport.tensors import ITEMSIZE, decode, read_rows

MAX_SLOTS = 256
SAMPLE_SLOTS = 8
BUDGET = 1024 * 1024
RUNS = 1


def sample_rows(n_rows: int, wanted: int) -> list[int]:
    """`wanted` of `n_rows` rows in a few evenly spaced runs (one range read each), the same on both hosts."""
    if wanted >= n_rows:
        return list(range(n_rows))
    per = max(1, wanted // RUNS)
    starts = np.linspace(0, n_rows - per, num=RUNS).astype(int)
    return sorted({int(r) for s in starts for r in range(s, s + per)})


def _weights_under(files: HostSource, names: list[str], per_tensor: int | None) -> np.ndarray | None:
    parts = []
    for name in names:
        found = files.find_tensor(name)
        if found is None:
            return None
        read, info = found
        row_bytes = ITEMSIZE[info.dtype] * (info.shape[1] if len(info.shape) == 2 else 0)
        if per_tensor is None or not row_bytes or info.nbytes <= per_tensor:
            parts.append(decode(read(info.start, info.end), info.dtype, info.shape, name).ravel())
        else:
            parts.append(read_rows(read, info, sample_rows(info.shape[0], max(1, per_tensor // row_bytes))).ravel())
    return np.concatenate(parts).astype(np.float64) if parts else None


def _grouped(names: list[str], slots: list[str]) -> dict[str, list[str]]:
    """The host tensors under each slot path (a projection's weight; every weight of a layer)."""
    wanted, out = set(slots), {path: [] for path in slots}
    for name in names:
        parts = name.split(".")
        for i in range(1, len(parts)):
            prefix = ".".join(parts[:i])
            if prefix in wanted:
                out[prefix].append(name)
    return out


def slot_similarity(keys: Iterable[str], source: HostSource, target: HostSource,
                    budget: int | None = BUDGET) -> dict[str, dict[str, float]]:
    """{slot path: {"relative_difference", "cosine"}} for the module keys' slots that both hosts have: by default
    SAMPLE_SLOTS slots spread over the module, over a row sample of `budget` bytes in all; None: every slot (up to
    MAX_SLOTS) and every row."""
    listed = [getattr(files, "tensor_names", list)() for files in (source, target)]  # one header read each
    names = sorted(set(listed[0]) & set(listed[1]))
    if not names:
        return {}
    slots = sorted({parse_key(k).slot.path() for k in keys if parse_key(k).slot})
    cap = MAX_SLOTS if budget is None else SAMPLE_SLOTS
    if len(slots) > cap:
        slots = [slots[int(i)] for i in np.linspace(0, len(slots) - 1, num=cap)]
    groups = _grouped(names, slots)
    tensors = sum(len(g) for g in groups.values())
    per_tensor = None if budget is None else max(1, budget // max(1, 2 * tensors))
    out = {}
    for path in slots:
        a, b = (_weights_under(f, groups[path], per_tensor) for f in (source, target))
        if a is None or b is None or a.shape != b.shape:
            continue
        rel = float(np.linalg.norm(b - a) / max(np.linalg.norm(a), 1e-12))
        cos = float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))
        out[path] = {"relative_difference": rel, "cosine": cos}
    return out
