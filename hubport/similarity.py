"""How far apart two hosts are where a module attaches: a forecast of how well it will port.

Per adapted slot, the host weights under that slot (a projection's `weight`, or every weight of a layer for
bottleneck adapters) are compared: relative difference ||B - A|| / ||A|| and cosine similarity.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from hubport.hostsource import HostSource
from hubport.keys import parse_key
from hubport.tensors import decode

MAX_SLOTS = 256


def _weights_under(files: HostSource, prefix: str, names: list[str]) -> np.ndarray | None:
    parts = []
    for name in names:
        if not name.startswith(prefix + "."):
            continue
        found = files.find_tensor(name)
        if found is None:
            return None
        read, info = found
        parts.append(decode(read(info.start, info.end), info.dtype, info.shape, name).ravel())
    return np.concatenate(parts).astype(np.float64) if parts else None


def slot_similarity(keys: Iterable[str], source: HostSource, target: HostSource) -> dict[str, dict[str, float]]:
    """{slot path: {"relative_difference", "cosine"}} for the module keys' slots that both hosts have."""
    names = getattr(source, "tensor_names", lambda: [])()
    if not names:
        return {}
    slots = sorted({parse_key(k).slot.path() for k in keys if parse_key(k).slot})[:MAX_SLOTS]
    out = {}
    for path in slots:
        a, b = _weights_under(source, path, names), _weights_under(target, path, names)
        if a is None or b is None or a.shape != b.shape:
            continue
        rel = float(np.linalg.norm(b - a) / max(np.linalg.norm(a), 1e-12))
        cos = float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))
        out[path] = {"relative_difference": rel, "cosine": cos}
    return out
