"""The served folder: repos, content-addressed blobs, immutable commits, and one file per branch or tag.

Layout under the root:

    repos/<type>/<namespace>/<name>/meta.json          {"private": bool, "createdAt": ...}
    repos/<type>/<namespace>/<name>/objects/ab/cdef..  file contents, named by sha256
    repos/<type>/<namespace>/<name>/commits/<oid>.json immutable: parents, title, file table
    repos/<type>/<namespace>/<name>/refs/heads/<name>  a commit oid (branch names %-quoted)
    repos/<type>/<namespace>/<name>/refs/tags/<name>
    tmp/                                                partial uploads and staging, cleared at start

A commit becomes visible only when its branch file is replaced (os.replace), after the blobs and the commit
JSON are in place, so a process killed at any point leaves every branch at a complete revision. Blobs are per
repo so that a private repo's content can never be referenced from another repo.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import uuid
from pathlib import Path
from urllib.parse import quote, unquote

from hubport.server.names import COMMIT_OID, RepoKey

# The .gitattributes every new Hub repo starts with: it is what makes even a tiny *.safetensors an LFS file
_LFS_PATTERNS = (
    "*.7z *.arrow *.bin *.bz2 *.ckpt *.ftz *.gz *.h5 *.joblib *.lfs.* *.mlmodel *.model *.msgpack *.npy "
    "*.npz *.onnx *.ot *.parquet *.pb *.pickle *.pkl *.pt *.pth *.rar *.safetensors saved_model/**/* "
    "*.tar.* *.tar *.tflite *.tgz *.wasm *.xz *.zip *.zst *tfevents*"
)
GITATTRIBUTES = "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in _LFS_PATTERNS.split())


def git_blob_oid(data: bytes) -> str:
    """The git object id of a blob (what the Hub reports as a regular file's oid)."""
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The git-lfs pointer file that stands for a large file in git."""
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def file_entry(sha256: str, size: int, *, lfs: bool, data: bytes | None = None) -> dict:
    """One row of a commit's file table; regular files need `data` (their git oid hashes the content)."""
    oid = git_blob_oid(lfs_pointer(sha256, size) if lfs else data or b"")
    return {"sha256": sha256, "size": size, "oid": oid, "lfs": lfs}


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


class Store:
    """All reads and writes of the served folder. Not thread-safe: the app serializes writes with one lock."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.tmp = self.root / "tmp"
        shutil.rmtree(self.tmp, ignore_errors=True)  # partial uploads of a killed server are garbage
        self.tmp.mkdir(parents=True, exist_ok=True)
        (self.root / "repos").mkdir(exist_ok=True)

    def repo_dir(self, key: RepoKey) -> Path:
        return self.root / "repos" / key.type / key.namespace / key.name

    def exists(self, key: RepoKey) -> bool:
        return (self.repo_dir(key) / "meta.json").is_file()

    def keys(self, repo_type: str) -> list[RepoKey]:
        """Every repo of one type, sorted by id."""
        folder = self.root / "repos" / repo_type
        keys = [RepoKey(repo_type, m.parent.parent.name, m.parent.name) for m in folder.glob("*/*/meta.json")]
        return sorted(keys, key=lambda key: key.repo_id)

    def meta(self, key: RepoKey) -> dict:
        return json.loads((self.repo_dir(key) / "meta.json").read_text())

    def set_private(self, key: RepoKey, private: bool) -> None:
        meta = {**self.meta(key), "private": bool(private)}
        _write_atomic(self.repo_dir(key) / "meta.json", json.dumps(meta, sort_keys=True).encode())

    def create(self, key: RepoKey, *, private: bool, author: str) -> bool:
        """Create the repo with an initial `.gitattributes` commit on main; False if it already exists."""
        staging = self.tmp / f"repo-{uuid.uuid4().hex}"
        meta = {"private": bool(private), "createdAt": _now()}
        _write_atomic(staging / "meta.json", json.dumps(meta, sort_keys=True).encode())
        data = GITATTRIBUTES.encode()
        sha = self._put_blob(staging, data)
        files = {".gitattributes": file_entry(sha, len(data), lfs=False, data=data)}
        oid = self._put_commit(staging, [], files, "initial commit", "", author)
        _write_atomic(self._ref_path(staging, "heads", "main"), oid.encode())
        target = self.repo_dir(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(staging, target)  # atomic; fails when the repo exists
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            return False
        return True

    def delete(self, key: RepoKey) -> None:
        """Remove a repo: first move it out of sight (atomic), then delete the files."""
        trash = self.tmp / f"deleted-{uuid.uuid4().hex}"
        os.rename(self.repo_dir(key), trash)
        shutil.rmtree(trash, ignore_errors=True)

    # refs ---------------------------------------------------------------------------------------------------
    @staticmethod
    def _ref_path(repo_dir: Path, kind: str, name: str) -> Path:
        return repo_dir / "refs" / kind / quote(name, safe="")

    def refs(self, key: RepoKey, kind: str) -> dict[str, str]:
        """Branches (kind "heads") or tags (kind "tags") by name -> commit oid."""
        folder = self.repo_dir(key) / "refs" / kind
        if not folder.is_dir():
            return {}
        return {
            unquote(p.name): p.read_text().strip()
            for p in sorted(folder.iterdir())
            if not p.name.startswith(".")
        }

    def ref(self, key: RepoKey, kind: str, name: str) -> str | None:
        path = self._ref_path(self.repo_dir(key), kind, name)
        return path.read_text().strip() if path.is_file() else None

    def set_ref(self, key: RepoKey, kind: str, name: str, oid: str) -> None:
        """Point a branch or tag at a commit: the single atomic step that publishes a commit."""
        _write_atomic(self._ref_path(self.repo_dir(key), kind, name), oid.encode())

    def delete_ref(self, key: RepoKey, kind: str, name: str) -> None:
        self._ref_path(self.repo_dir(key), kind, name).unlink()

    def resolve(self, key: RepoKey, rev: str) -> str | None:
        """A branch, tag or full commit oid -> the commit oid, or None."""
        for prefix, kind in (("refs/heads/", "heads"), ("refs/tags/", "tags")):
            if rev.startswith(prefix):
                return self.ref(key, kind, rev[len(prefix) :])
        oid = self.ref(key, "heads", rev) or self.ref(key, "tags", rev)
        if oid is None and COMMIT_OID.match(rev) and self._commit_path(key, rev).is_file():
            oid = rev
        return oid

    # commits ------------------------------------------------------------------------------------------------
    def _commit_path(self, key: RepoKey, oid: str) -> Path:
        return self.repo_dir(key) / "commits" / f"{oid}.json"

    def commit(self, key: RepoKey, oid: str) -> dict:
        return json.loads(self._commit_path(key, oid).read_text())

    def add_commit(
        self, key: RepoKey, parent: str, files: dict, title: str, message: str, author: str
    ) -> str:
        """Write an immutable commit object (not yet on any branch) and return its oid."""
        return self._put_commit(self.repo_dir(key), [parent], files, title, message, author)

    @staticmethod
    def _put_commit(repo_dir: Path, parents: list, files: dict, title: str, message: str, author: str) -> str:
        body = {"parents": parents, "files": files, "title": title, "message": message, "author": author}
        body["date"] = _now()
        oid = hashlib.sha1(json.dumps(body, sort_keys=True).encode()).hexdigest()
        data = json.dumps({**body, "id": oid}, sort_keys=True).encode()
        _write_atomic(repo_dir / "commits" / f"{oid}.json", data)
        return oid

    def history(self, key: RepoKey, oid: str) -> list[dict]:
        """Commits from `oid` back to the first one, following first parents."""
        out: list[dict] = []
        while oid:
            commit = self.commit(key, oid)
            out.append(commit)
            oid = commit["parents"][0] if commit["parents"] else ""
        return out

    # blobs --------------------------------------------------------------------------------------------------
    def blob_path(self, key: RepoKey, sha256: str) -> Path:
        return self.repo_dir(key) / "objects" / sha256[:2] / sha256[2:]

    def has_blob(self, key: RepoKey, sha256: str, size: int | None = None) -> bool:
        path = self.blob_path(key, sha256)
        return path.is_file() and (size is None or path.stat().st_size == size)

    def put_blob(self, key: RepoKey, data: bytes) -> str:
        """Store a small file's bytes; returns their sha256."""
        return self._put_blob(self.repo_dir(key), data)

    @staticmethod
    def _put_blob(repo_dir: Path, data: bytes) -> str:
        sha = hashlib.sha256(data).hexdigest()
        path = repo_dir / "objects" / sha[:2] / sha[2:]
        if not path.is_file():
            _write_atomic(path, data)
        return sha

    def staging_file(self) -> Path:
        """A fresh path under tmp/ for a streamed upload (removed at the next start if left behind)."""
        return self.tmp / f"upload-{uuid.uuid4().hex}"

    def adopt_blob(self, key: RepoKey, staged: Path, sha256: str) -> None:
        """Move a fully received and hash-checked upload into the repo's objects (atomic)."""
        path = self.blob_path(key, sha256)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, path)
