"""Where hosts and modules come from: a local folder or a Hub repo, behind one small interface.

A host is asked for its config, and (only when a check needs numbers) for safetensors headers and byte ranges, so
that a lineage sample of embedding rows costs a few hundred KB, never the whole checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hubport.errors import FormatError, HubportError, NotFoundError
from hubport.formats import read_json
from hubport.hostsource import HostSource
from hubport.hubids import canonical_id, is_local, parse_ref
from hubport.tensors import ReadRange, TensorInfo, local_reader, parse_header

SINGLE = "model.safetensors"
INDEX = "model.safetensors.index.json"
__all__ = ["HostSource", "LocalHost", "fetch_module_at", "is_local", "open_host"]


@dataclass
class LocalHost:
    """A host folder written by save_pretrained (single or sharded safetensors)."""

    root: Path
    name: str
    revision: str | None = None
    _headers: dict[str, dict[str, TensorInfo]] = field(default_factory=dict)
    _read: int = 0
    _bin: object | None = None
    notes: list[str] = field(default_factory=list)

    def config(self) -> dict:
        path = self.root / "config.json"
        if not path.is_file():
            raise NotFoundError(f"{self.root} has no config.json, so it is not a transformers model folder",
                                "point --to at a folder written by save_pretrained, or a Hub id owner/name")
        return read_json(path)

    def weights_at_hand(self) -> bool:
        return (self.root / SINGLE).is_file() or (self.root / INDEX).is_file() or self._pickled() is not None

    def _pickled(self):
        """The folder's `.bin` state dict (single or sharded), when it has no safetensors; loaded once."""
        from hubport.hubweights import BIN, BIN_INDEX, BinWeights

        if self._bin is None and not ((self.root / SINGLE).is_file() or (self.root / INDEX).is_file()):
            if (self.root / BIN_INDEX).is_file():
                shards = sorted(set(read_json(self.root / BIN_INDEX).get("weight_map", {}).values()))
            else:
                shards = [BIN] if (self.root / BIN).is_file() else []
            if shards:
                self._bin = BinWeights([self.root / s for s in shards])
                self.notes.append(f"{self.name} has its weights only as {', '.join(shards)}: read in full "
                                  "with torch.load(weights_only=True)")
        return self._bin

    def local_dir(self) -> Path:
        return self.root

    def tensor_names(self) -> list[str]:
        if (self.root / SINGLE).is_file():
            return sorted(self._header(SINGLE))
        if (self.root / INDEX).is_file():
            return sorted(self._weight_map())
        pickled = self._pickled()
        return pickled.names() if pickled is not None else []

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
        pickled = self._pickled()
        if pickled is not None:
            return pickled.find(tensor)
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


def hub_ref(ref: str, revision: str | None = None, subfolder: str | None = None):
    """`owner/name[@rev][:sub]` parsed (an explicit --revision / --subfolder wins) and its repo id validated."""
    from hubport.hub import check_repo_id

    parsed = parse_ref(ref, revision, subfolder) if subfolder is not None else parse_ref(ref, revision)
    check_repo_id(parsed.repo, ref)
    return parsed


def open_host(ref: str | Path, revision: str | None = None, hub: object | None = None) -> HostSource:
    """A local folder, or (through hubport.hub) a Hub repo resolved to a commit; legacy ids by their new name."""
    if is_local(ref):
        root = Path(ref).expanduser()
        if not root.is_dir():
            raise NotFoundError(f"host folder {root} does not exist")
        return LocalHost(root=root, name=str(ref))
    from hubport.hub import HubHost

    parsed = hub_ref(str(ref), revision)
    if parsed.subfolder:
        raise HubportError(f"host '{ref}' names a subfolder; hubport reads hosts from a repo's root",
                           "give the host's repo id, or download it and pass the folder")
    return HubHost.open(canonical_id(parsed.repo), parsed.revision, api=hub)


@dataclass(frozen=True)
class FetchedModule:
    """A module folder on disk, the bare id (or path) it came from, its commit, and its subfolder there."""

    folder: Path
    ref: str
    commit: str | None
    subfolder: str | None


def fetch_module_at(ref: str | Path, revision: str | None = None, hub: object | None = None,
                    subfolder: str | None = None) -> FetchedModule:
    """The module `ref` names, downloaded (only module files) when it is a Hub id.

    `subfolder` (or `owner/name:sub`) picks one module of a repo that holds several, as peft's `subfolder=`; a
    repo or folder with several modules and none picked is an error that lists them."""
    from hubport.layout import pick_module

    if is_local(ref):
        root = Path(ref).expanduser()
        if not root.is_dir() and str(ref).count("/") > 1 and not str(ref).startswith((".", "/", "~")):
            raise NotFoundError(f"module folder {root} does not exist",
                                "for a module in a subfolder of a Hub repo write owner/name:subfolder")
        folder, sub = pick_module(root, subfolder, str(ref))
        return FetchedModule(folder, str(ref), None, sub)
    from hubport.hub import download_module

    parsed = hub_ref(str(ref), revision, subfolder)
    root, sha = download_module(parsed.repo, parsed.revision, api=hub, subfolder=parsed.subfolder)
    folder, sub = pick_module(root, parsed.subfolder, parsed.repo, hub=True, commit=sha)
    return FetchedModule(folder, parsed.repo, sha, sub)
