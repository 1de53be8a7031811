"""What exactly ran: a host, data set or module (content hashes, Hub revisions), the installed stack and the
git commit of the code; and the file lock that keeps two workers from building the same cached thing at once."""

from __future__ import annotations

import hashlib
import json
import subprocess
from importlib import metadata
from pathlib import Path

import numpy as np
from filelock import FileLock

from harness.runs.io import read_json, write_json

PACKAGES = ("torch", "transformers", "peft", "adapters", "accelerate", "datasets", "hubport")


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


def locked(path: Path) -> FileLock:
    """An OS file lock (waits for its holder; released when the holder dies): two workers never build the same
    module at once. Use as `with locked(path):`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(path)


def digest(*arrays: np.ndarray) -> str:
    """A short hash of arrays' bytes (evaluation sets, training orders), to check pairing."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def versions() -> dict[str, str | None]:
    """Installed versions of the stack, read from package metadata (no imports)."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    if out.get("hubport") is None:  # a checkout on PYTHONPATH, not installed: the package knows its version
        from hubport import __version__

        out["hubport"] = __version__
    return out


def git_commit() -> str | None:
    """The commit of the checkout this code runs from, '+dirty' with local changes; None outside git."""
    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                              timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None
