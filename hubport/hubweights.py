"""A Hub host's weight files, in any layout the Hub serves, and byte-range reads that stay usable offline.

Layouts: `model.safetensors`, a sharded `model.safetensors.index.json`, or (older repos) `pytorch_model.bin`
single or sharded. Safetensors are read by HTTP range; every range read is kept under $HUBPORT_CACHE/ranges per
repo and commit (commits never change), so that an offline run repeats the online lineage check from the sampled
rows it read. Files fully in the huggingface_hub cache are read from disk. `.bin` files cannot be read by range
(a zip of pickled storages), so they are downloaded whole and read with torch's weights-only loader.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from urllib.parse import quote

from hubport.errors import HubError
from hubport.tensors import ReadRange, TensorInfo

SINGLE, INDEX = "model.safetensors", "model.safetensors.index.json"
BIN, BIN_INDEX = "pytorch_model.bin", "pytorch_model.bin.index.json"
MAX_CACHED_RANGE = 3 << 19  # 1.5 MB: headers and embedding-row runs, not the whole matrices --map reads


def cache_root() -> Path:
    return Path(os.environ.get("HUBPORT_CACHE", "~/.cache/hubport")).expanduser() / "ranges"


def offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class RangeCache:
    """Byte ranges of one repo commit's files, and what the repo's file list and sizes were."""

    def __init__(self, repo: str, commit: str) -> None:
        self.folder = cache_root() / quote(repo, safe="") / commit

    def _dir(self, filename: str) -> Path:
        return self.folder / quote(filename, safe="")

    def get(self, filename: str, start: int, end: int) -> bytes | None:
        folder = self._dir(filename)
        if not folder.is_dir():
            return None
        for item in folder.glob("*.bin"):
            lo, _, hi = item.stem.partition("-")
            if lo.isdigit() and hi.isdigit() and int(lo) <= start and end <= int(hi):
                data = item.read_bytes()
                if len(data) == int(hi) - int(lo):
                    return data[start - int(lo): end - int(lo)]
        return None

    def put(self, filename: str, start: int, end: int, data: bytes) -> None:
        if end - start <= MAX_CACHED_RANGE and len(data) == end - start:
            _write(self._dir(filename) / f"{start}-{end}.bin", data)

    def meta(self) -> dict:
        path = self.folder / "meta.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return {}

    def update_meta(self, **fields: object) -> None:
        _write(self.folder / "meta.json", json.dumps({**self.meta(), **fields}, sort_keys=True).encode())


def cached_file(repo: str, filename: str, commit: str) -> Path | None:
    """The file from the huggingface_hub cache at that commit, if it is there in full."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, filename, revision=commit)
    return Path(found) if isinstance(found, str) and Path(found).is_file() else None


def snapshot_files(repo: str, commit: str) -> list[str]:
    """The weight-layout files present in the cached snapshot of a commit (offline, nothing else to ask)."""
    from huggingface_hub import constants

    folder = Path(constants.HF_HUB_CACHE) / f"models--{repo.replace('/', '--')}" / "snapshots" / commit
    names = (SINGLE, INDEX, BIN, BIN_INDEX)
    return sorted(n for n in names if (folder / n).exists())


def cached_reader(repo: str, filename: str, commit: str, read: ReadRange | None, counter: list[int]) -> ReadRange:
    """Reads through the range cache; `read` (the network) fills it, or None offline: then a miss names the file."""
    cache = RangeCache(repo, commit)

    def through(start: int, end: int) -> bytes:
        data = cache.get(filename, start, end)
        if data is not None:
            return data
        if read is None:
            raise HubError(f"HF_HUB_OFFLINE=1 and bytes {start}-{end} of {repo}/{filename} at {commit[:12]} are "
                           "not cached", f"download it once online: huggingface-cli download {repo} {filename} "
                           f"--revision {commit}")
        data = read(start, end)
        cache.put(filename, start, end, data)
        return data

    return through


class BinWeights:
    """Tensors of `.bin` state dicts (torch.load weights_only=True, memory-mapped), served as byte ranges."""

    def __init__(self, paths: list[Path]) -> None:
        from hubport.tensors import load_pickle_weights

        self.state: dict = {}
        for path in paths:
            self.state.update(load_pickle_weights(path))
        self.nbytes = sum(p.stat().st_size for p in paths)

    def names(self) -> list[str]:
        return sorted(self.state)

    def find(self, tensor: str) -> tuple[ReadRange, TensorInfo] | None:
        import torch

        from hubport.formats import _st_dtype

        value = self.state.get(tensor)
        if value is None:
            return None
        raw = value.detach().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        info = TensorInfo(tensor, _st_dtype(value), tuple(value.shape), 0, len(raw))
        return (lambda start, end: raw[start:end]), info

