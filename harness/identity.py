"""What exactly a host, data set or module was (content hashes, Hub revisions), and the file lock that keeps
two workers from building the same cached thing at once."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from harness.records import read_json, write_json


def identity(location: str, out_dir: Path, *, repo_type: str = "model") -> dict:
    """What exactly a host or data set was: a content hash of a local file/folder (memoised under out_dir by
    path, size and mtime), or a Hub id with its resolved revision (None when the Hub cannot say)."""
    path = Path(location).expanduser()
    if not path.exists():
        return {"hub": location, "revision": hub_revision(location, repo_type)}
    base = path if path.is_dir() else path.parent
    files = sorted(p for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(base).parts))
    stamp = [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    memo = out_dir / "identity" / f"{hashlib.sha256(json.dumps(stamp).encode()).hexdigest()[:24]}.json"
    cached = read_json(memo)
    if cached is None:
        content = hashlib.sha256()
        for p in files:
            content.update(str(p.relative_to(base)).encode())
            with open(p, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    content.update(block)
        cached = {"sha256": content.hexdigest(), "files": len(files)}
        write_json(memo, cached)
    return {"local": path.name, **cached}


def hub_revision(location: str, repo_type: str) -> str | None:
    from huggingface_hub import HfApi

    name, _, revision = location.partition("@")
    for repo in dict.fromkeys([name.split(":")[0], name.rpartition("/")[0]]):
        if not repo:
            continue
        try:
            info = HfApi().repo_info(repo, repo_type=repo_type, revision=revision or None, timeout=10)
            return info.sha
        except Exception:   # offline, private or unknown: the record says None, the run goes on
            continue
    return None


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An OS file lock, released when the holder dies: two workers never build the same module at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def digest(*arrays: np.ndarray) -> str:
    """A short hash of arrays' bytes (evaluation sets, training orders), to check pairing."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]
