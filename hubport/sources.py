"""Where hosts and modules come from: a local folder or a Hub repo, behind one small interface.

A host is asked for its config, and (only when a check needs numbers) for safetensors headers and byte ranges, so
that a lineage sample of embedding rows costs a few hundred KB, never the whole checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hubport.errors import FormatError, NotFoundError
from hubport.formats import read_json
from hubport.hostsource import HostSource
from hubport.tensors import ReadRange, TensorInfo, local_reader, parse_header

SINGLE = "model.safetensors"
INDEX = "model.safetensors.index.json"
__all__ = ["HostSource", "LocalHost", "fetch_module", "is_local", "open_host", "split_ref"]


@dataclass
class LocalHost:
    """A host folder written by save_pretrained (single or sharded safetensors)."""

    root: Path
    name: str
    revision: str | None = None
    _headers: dict[str, dict[str, TensorInfo]] = field(default_factory=dict)
    _read: int = 0

    def config(self) -> dict:
        path = self.root / "config.json"
        if not path.is_file():
            raise NotFoundError(f"{self.root} has no config.json, so it is not a transformers model folder",
                                "point --to at a folder written by save_pretrained, or a Hub id owner/name")
        return read_json(path)

    def weights_at_hand(self) -> bool:
        return (self.root / SINGLE).is_file() or (self.root / INDEX).is_file()

    def local_dir(self) -> Path:
        return self.root

    def tensor_names(self) -> list[str]:
        if (self.root / SINGLE).is_file():
            return sorted(self._header(SINGLE))
        if (self.root / INDEX).is_file():
            return sorted(self._weight_map())
        return []

    def _file_for(self, tensor: str) -> str | None:
        if (self.root / SINGLE).is_file():
            return SINGLE
        if (self.root / INDEX).is_file():
            return self._weight_map().get(tensor)
        return None

    def _weight_map(self) -> dict[str, str]:
        """The sharded index's tensor -> shard map, each shard a file beside the index (never a path out)."""
        weight_map = read_json(self.root / INDEX).get("weight_map")
        if not isinstance(weight_map, dict):
            raise FormatError(f"{self.root / INDEX}: 'weight_map' must map tensor names to shard files")
        for shard in sorted(set(weight_map.values()), key=str):
            if not isinstance(shard, str) or Path(shard).name != shard or shard in ("", ".", ".."):
                raise FormatError(f"{self.root / INDEX} names the shard {str(shard)[:80]!r}, not a file beside it")
            if not (self.root / shard).is_file():
                raise FormatError(f"{self.root / INDEX} names the shard {shard}, which is not in {self.root}",
                                  "download the missing shard, or re-save the host with save_pretrained")
        return weight_map

    def find_tensor(self, tensor: str) -> tuple[ReadRange, TensorInfo] | None:
        name = self._file_for(tensor)
        if name is None:
            return None
        # the whole header, validated once per file: a lone entry cannot show overlaps or gaps
        info = self._header(name).get(tensor)
        return (self._counting(local_reader(self.root / name)), info) if info else None

    def _header(self, name: str) -> dict[str, TensorInfo]:
        if name not in self._headers:
            path = self.root / name
            self._headers[name] = parse_header(self._counting(local_reader(path)), path.stat().st_size, str(path))
        return self._headers[name]

    def _counting(self, read: ReadRange) -> ReadRange:
        def counted(start: int, end: int) -> bytes:
            self._read += end - start
            return read(start, end)

        return counted

    def bytes_read(self) -> int:
        return self._read


def is_local(ref: str | Path) -> bool:
    """A reference is local when it names an existing path or looks like one (./, /, ~)."""
    text = str(ref)
    return Path(text).expanduser().exists() or text.startswith((".", "/", "~")) or text.count("/") > 1


def split_ref(ref: str, revision: str | None = None) -> tuple[str, str | None]:
    """`owner/name@rev` -> (`owner/name`, `rev`); an explicit --revision wins over the suffix."""
    from hubport.hub import check_repo_id

    repo, _, rev = ref.partition("@")
    return check_repo_id(repo, ref), revision or (rev or None)


def open_host(ref: str | Path, revision: str | None = None, hub: object | None = None) -> HostSource:
    """A local folder, or (through hubport.hub) a Hub repo resolved to a commit."""
    if is_local(ref):
        root = Path(ref).expanduser()
        if not root.is_dir():
            raise NotFoundError(f"host folder {root} does not exist")
        return LocalHost(root=root, name=str(ref))
    from hubport.hub import HubHost

    repo, rev = split_ref(str(ref), revision)
    return HubHost.open(repo, rev, api=hub)


def fetch_module(ref: str | Path, revision: str | None = None, hub: object | None = None) -> tuple[Path, str, str | None]:
    """A module folder on disk: (folder, name as given, commit sha or None for local folders)."""
    if is_local(ref):
        return Path(ref).expanduser(), str(ref), None
    from hubport.hub import download_module

    repo, rev = split_ref(str(ref), revision)
    folder, sha = download_module(repo, rev, api=hub)
    return folder, repo, sha
