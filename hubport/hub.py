"""The Hub side: pull modules and hosts by repo id, read host weights by range, push ported modules in one commit.

Everything goes through huggingface_hub, so the standard cache, HF_TOKEN / `hf auth login`, HF_ENDPOINT
(the project's own server included) and HF_HUB_OFFLINE behave as users expect. Tokens are never taken from the
command line and never written anywhere.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hubport import errors
from hubport.formats import CONFIG_FILE, HEAD_FILES, WEIGHT_FILES, read_json, read_module
from hubport.tensors import ReadRange, TensorInfo, parse_header

MODULE_FILES = [CONFIG_FILE, "hubport.json", *(f for lib in WEIGHT_FILES.values() for f in lib.values())]
HOST_FILES = ["config.json", "*.safetensors", "model.safetensors.index.json", "generation_config.json",
              "tokenizer*", "spiece.model", "special_tokens_map.json"]


@contextlib.contextmanager
def hub_errors(what: str) -> Iterator[None]:
    """Turn huggingface_hub's exceptions into hubport's one-line errors that say what to do."""
    from huggingface_hub import constants
    from huggingface_hub import errors as hf

    try:
        yield
    except hf.GatedRepoError:
        raise errors.AuthError(f"{what}: the repo is gated", "accept its terms on the Hub and set HF_TOKEN") from None
    except hf.RepositoryNotFoundError:
        raise errors.NotFoundError(f"{what}: repo not found at {constants.ENDPOINT} (or private)",
                                   "check the repo id, or set HF_TOKEN for a private repo") from None
    except hf.RevisionNotFoundError:
        raise errors.NotFoundError(f"{what}: revision not found", "check the branch, tag or commit") from None
    except hf.LocalEntryNotFoundError as exc:
        answered = getattr(exc.__cause__ or exc.__context__, "response", None)
        if answered is not None:  # the Hub answered, with an error: not a network problem
            raise errors.NotFoundError(f"{what}: the Hub answered HTTP {answered.status_code}",
                                       "check the repo id (legacy ids such as t5-base are google-t5/t5-base)") from None
        raise errors.HubError(f"{what}: not in the local cache and the Hub cannot be reached",
                              "connect, or run once online so that HF_HUB_OFFLINE=1 finds it cached") from None
    except hf.EntryNotFoundError:  # after LocalEntryNotFoundError, its subclass
        raise errors.NotFoundError(f"{what}: file not in the repo", "is this the right repo?") from None
    except hf.OfflineModeIsEnabled:
        raise errors.HubError(f"{what}: HF_HUB_OFFLINE=1 and this needs the Hub",
                              "unset HF_HUB_OFFLINE or use a local folder") from None
    except hf.HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status in (401, 403):
            raise errors.AuthError(f"{what}: the Hub refused the token (HTTP {status})") from None
        raise errors.HubError(f"{what}: the Hub answered HTTP {status}", "try again later") from None
    except (ConnectionError, OSError) as exc:
        raise errors.HubError(f"{what}: cannot reach {constants.ENDPOINT} ({type(exc).__name__})",
                              "check the network, or set HF_HUB_OFFLINE=1 to work from the cache") from None


def check_repo_id(repo: str, ref: str) -> str:
    """A Hub repo id as huggingface_hub accepts it; anything else is neither a folder nor a repo."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo)
    except HFValidationError:
        raise errors.NotFoundError(f"'{ref}' is neither an existing folder nor a valid Hub repo id",
                                   "give a folder, or a Hub id owner/name of letters, digits, '-', '_' and '.'",
                                   ) from None
    return repo


def _api(api: object | None):
    from huggingface_hub import HfApi

    return api if api is not None else HfApi()


def download_module(repo: str, revision: str | None, api: object | None = None,
                    subfolder: str | None = None) -> tuple[Path, str]:
    """Only module files (never head files), pinned: returns (snapshot folder, commit sha). Without a subfolder,
    the module files of every folder come too, so that a repo with several modules is seen as one."""
    if subfolder and subfolder != ".":
        patterns = [f"{subfolder}/{f}" for f in MODULE_FILES]
    else:
        patterns = MODULE_FILES + ([] if subfolder else [f"*/{f}" for f in MODULE_FILES])
    with hub_errors(f"module {repo}"):
        folder = Path(_api(api).snapshot_download(repo, revision=revision, allow_patterns=patterns))
        if subfolder and subfolder != "." and not (folder / subfolder / CONFIG_FILE).is_file():
            all_files = MODULE_FILES + [f"*/{f}" for f in MODULE_FILES]  # to list what is there instead
            folder = Path(_api(api).snapshot_download(repo, revision=folder.name, allow_patterns=all_files))
    return folder, folder.name


def _range_reader(url: str, headers: dict, counter: list[int]) -> ReadRange:
    from huggingface_hub.utils import get_session

    def read(start: int, end: int) -> bytes:
        with hub_errors(f"range read of {url}"):
            response = get_session().get(url, headers={**headers, "Range": f"bytes={start}-{end - 1}"}, timeout=60)
            response.raise_for_status()
        if response.status_code != 206 and start > 0:
            raise errors.HubError(f"{url} does not answer range requests", "use a local copy of the host")
        counter[0] += end - start
        return response.content[: end - start]

    return read


@dataclass
class HubHost:
    """A host repo pinned to one commit; weights are read by HTTP range (kept for offline use), from the cache
    when offline, or (`.bin` repos) from a full download; see hubport.hubweights."""

    repo: str
    revision: str
    config_path: Path
    api: object | None = None
    name: str = ""
    _weight_map: dict[str, str] | None = None
    _headers: dict[str, tuple[ReadRange, dict[str, TensorInfo]]] = field(default_factory=dict)
    _read: list[int] = field(default_factory=lambda: [0])
    _bin: object | None = None
    missing: str = ""  # why no weights are at hand, when none are
    notes: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, repo: str, revision: str | None, api: object | None = None) -> HubHost:
        with hub_errors(f"host {repo}"):
            path = Path(_api(api).hf_hub_download(repo, "config.json", revision=revision))
        return cls(repo=repo, revision=path.parent.name, config_path=path, api=api, name=repo)

    def config(self) -> dict:
        return read_json(self.config_path)

    def _files(self) -> list[str]:
        """The weight-layout files of this commit: asked once online and remembered, else from the caches."""
        from hubport import hubweights as hw

        cache = hw.RangeCache(self.repo, self.revision)
        known = cache.meta().get("files")
        if known is not None:
            return known
        if hw.offline():
            return hw.snapshot_files(self.repo, self.revision)
        with hub_errors(f"file list of {self.repo}"):
            listed = _api(self.api).list_repo_files(self.repo, revision=self.revision)
        files = sorted(f for f in listed if f in (hw.SINGLE, hw.INDEX, hw.BIN, hw.BIN_INDEX))
        cache.update_meta(files=files)
        return files

    def _download(self, filename: str) -> Path:
        from hubport import hubweights as hw

        local = hw.cached_file(self.repo, filename, self.revision)
        if local is not None:
            return local
        with hub_errors(f"{self.repo}/{filename}"):
            return Path(_api(self.api).hf_hub_download(self.repo, filename, revision=self.revision))

    def _weights(self) -> dict[str, str]:
        if self._weight_map is None:
            try:
                self._weight_map = self._locate()
            except errors.HubportError as exc:
                self.missing, self._weight_map = exc.message, {}
        return self._weight_map

    def _locate(self) -> dict[str, str]:
        from hubport import hubweights as hw

        files = self._files()
        if hw.INDEX in files:
            return self._index(hw.INDEX)
        if hw.SINGLE in files:
            return {name: hw.SINGLE for name in self._open(hw.SINGLE)[1]}
        if hw.BIN_INDEX in files or hw.BIN in files:
            return self._open_bin(files)
        where = "in the cache" if hw.offline() else "in the repo"
        self.missing = f"{self.repo} at {self.revision[:12]} has no weights file {where} ({hw.SINGLE}, {hw.BIN})"
        return {}

    def _index(self, name: str) -> dict[str, str]:
        """A sharded checkpoint's weight_map (tensor -> shard file), checked."""
        index = read_json(self._download(name))
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise errors.FormatError(f"{self.repo}/{name}: 'weight_map' is not a mapping of tensor to shard file",
                                     "re-save the host with save_pretrained")
        return dict(weight_map)

    def _open_bin(self, files: list[str]) -> dict[str, str]:
        from hubport import hubweights as hw

        if hw.BIN_INDEX in files:
            shards = sorted(set(self._index(hw.BIN_INDEX).values()))
        else:
            shards = [hw.BIN]
        self._bin = hw.BinWeights([self._download(f) for f in shards])
        self._read[0] += self._bin.nbytes
        self.notes.append(f"{self.repo} has its weights only as {', '.join(shards)} (not range-readable): "
                          f"downloaded in full ({self._bin.nbytes / 1e6:.1f} MB) and read with "
                          "torch.load(weights_only=True)")
        return {name: "bin" for name in self._bin.names()}

    def weights_at_hand(self) -> bool:
        return bool(self._weights())

    def tensor_names(self) -> list[str]:
        return sorted(self._weights())

    def find_tensor(self, tensor: str) -> tuple[ReadRange, TensorInfo] | None:
        filename = self._weights().get(tensor)
        if filename is None:
            return None
        if self._bin is not None:
            return self._bin.find(tensor)
        read, infos = self._open(filename)
        info = infos.get(tensor)
        return (read, info) if info else None

    def _open(self, filename: str) -> tuple[ReadRange, dict[str, TensorInfo]]:
        if filename not in self._headers:
            self._headers[filename] = self._open_file(filename)
        return self._headers[filename]

    def _open_file(self, filename: str) -> tuple[ReadRange, dict[str, TensorInfo]]:
        from hubport import hubweights as hw
        from hubport.tensors import local_reader

        local = hw.cached_file(self.repo, filename, self.revision)
        if local is not None:
            return local_reader(local), parse_header(local_reader(local), local.stat().st_size, str(local))
        size, network = self._remote(filename)
        read = hw.cached_reader(self.repo, filename, self.revision, network, self._read)
        return read, parse_header(read, size, f"{self.repo}/{filename}")

    def _remote(self, filename: str) -> tuple[int, ReadRange | None]:
        """(file size, a range reader over HTTP, or None offline); sizes are remembered for offline runs."""
        from huggingface_hub import hf_hub_url
        from huggingface_hub.utils import build_hf_headers, get_session

        from hubport import hubweights as hw

        cache = hw.RangeCache(self.repo, self.revision)
        sizes = cache.meta().get("sizes", {})
        if hw.offline():
            if filename not in sizes:
                raise errors.HubError(f"HF_HUB_OFFLINE=1 and {self.repo}/{filename} at {self.revision[:12]} is "
                                      "not cached", f"download it once online: huggingface-cli download "
                                      f"{self.repo} {filename} --revision {self.revision}")
            return int(sizes[filename]), None
        url = hf_hub_url(self.repo, filename, revision=self.revision)
        headers = build_hf_headers(token=getattr(self.api, "token", None))
        if filename not in sizes:
            with hub_errors(f"{self.repo}/{filename}"):
                answer = get_session().head(url, headers=headers, allow_redirects=True, timeout=60)
                answer.raise_for_status()
            length = answer.headers.get("Content-Length", "")
            if not length.isdigit():
                raise errors.HubError(f"{self.repo}/{filename}: the Hub gave no file size", "try again later")
            sizes = {**sizes, filename: int(length)}
            cache.update_meta(sizes=sizes)
        return int(sizes[filename]), _range_reader(url, headers, self._read)

    def bytes_read(self) -> int:
        return self._read[0]

    def history(self) -> list[str]:
        """Commit ids this host's commit descends from (itself first); empty when the Hub cannot say."""
        try:
            with hub_errors(f"history of {self.repo}"):
                return [c.commit_id for c in _api(self.api).list_repo_commits(self.repo, revision=self.revision)]
        except errors.HubportError:
            return []

    def local_dir(self) -> Path:
        from hubport import hubweights as hw

        patterns = HOST_FILES + ([hw.BIN, hw.BIN_INDEX, "pytorch_model-*.bin"] if self._bin is not None or not
                                 ({hw.SINGLE, hw.INDEX} & set(self._files())) else [])
        with hub_errors(f"host {self.repo}"):
            return Path(_api(self.api).snapshot_download(self.repo, revision=self.revision,
                                                         allow_patterns=patterns))


def dataset_commit(repo: str, revision: str | None = None) -> str | None:
    """The commit the Hub reports for a data set id (at `revision`), so records pin it; None where it cannot say."""
    from huggingface_hub import HfApi

    try:
        with hub_errors(f"data set {repo}"):
            return HfApi().dataset_info(repo, revision=revision or None).sha
    except (errors.HubportError, OSError, ValueError):
        return None


def push_module(folder: Path, repo: str, *, private: bool = False, api: object | None = None,
                results: list[dict] | None = None) -> dict:
    """Create the repo if missing, then ONE commit on top of the head read here (parent_commit) that makes the
    repo exactly the module: its files, hubport.json and the card as README.md; whatever an earlier module left
    is deleted, files the user owns (a README hubport did not write, .gitattributes) are kept and named in
    `notes`. A concurrent push that commits first makes this one fail whole, with nothing changed."""
    from huggingface_hub import CommitOperationAdd

    from hubport.card import build_card, source_card_data

    folder = Path(folder)
    check_repo_id(repo, repo)
    files = upload_files(folder) + nested_module_files(folder)
    module = read_module(folder)
    provenance = read_provenance(folder)
    client = _api(api)
    with hub_errors(f"push to {repo}"):
        created = _create(client, repo, private)
        url = f"{_endpoint(client)}/{repo}"
        try:
            head, at_head, user_readme = _head(client, repo)
            ops = [CommitOperationAdd(path_in_repo=f.relative_to(folder).as_posix(), path_or_fileobj=str(f))
                   for f in files]
            notes = []
            if user_readme:
                notes.append("kept README.md: it was not written by hubport, so the model card was not uploaded")
            else:
                card = build_card(module, repo, provenance, results=results,
                                  carried=source_card_data(provenance, api))
                ops.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=str(card).encode()))
            ops += _deletions(at_head, {op.path_in_repo for op in ops}, notes)
            info = client.create_commit(repo, ops, commit_message=_message(provenance), parent_commit=head)
        except RuntimeError as exc:  # huggingface_hub wraps a failed LFS upload ("Error while uploading ...")
            if created:
                with contextlib.suppress(Exception):
                    client.delete_repo(repo)
            if isinstance(exc.__cause__, OSError | errors.HubportError) or "upload" in str(exc).lower():
                raise errors.HubError(f"push to {repo}: the upload was cut off ({type(exc.__cause__).__name__}); "
                                      "nothing was committed", "push again once the Hub answers") from None
            raise
        except BaseException as exc:
            if _lost_race(exc):
                raise errors.HubError(f"push to {repo}: another push committed first; nothing of this one was "
                                      "committed", "push again (the repo is at the other push's revision)") from None
            if created:  # never leave an empty repo behind a failed first push
                with contextlib.suppress(Exception):
                    client.delete_repo(repo)
            raise
    return {"repo": repo, "commit": info.oid, "url": str(url), "commit_url": info.commit_url, "notes": notes}


def _endpoint(client) -> str:
    from huggingface_hub import constants

    return str(getattr(client, "endpoint", None) or constants.ENDPOINT).rstrip("/")


def upload_files(folder: Path) -> list[Path]:
    """The files a push uploads: the folder's regular files, never head files; a link is refused by name, since
    following one could publish a file from anywhere on the machine."""
    if not folder.is_dir():
        raise errors.NotFoundError(f"{folder} is not a folder", "push a folder written by `hubport port`")
    files = []
    for entry in sorted(folder.iterdir()):
        if entry.is_symlink():
            raise errors.FormatError(f"{entry.name} in {folder} is a symbolic link; hubport never pushes a link's "
                                     "target", "copy the file into the folder, or remove the link")
        if entry.is_file() and entry.name not in HEAD_FILES + ("README.md",):
            files.append(entry)
    return files


PROVENANCE_FIELDS = {"source": ("ref", "family", "library"), "target": ("ref",), "slot_map": ("counts",),
                     "lineage": ("verdict", "level")}


def read_provenance(folder: Path) -> dict | None:
    """hubport.json as the card needs it, or None when the folder has none; broken ones are refused by field."""
    path = folder / "hubport.json"
    if not path.is_file():
        return None
    data = read_json(path)
    for name, inner in PROVENANCE_FIELDS.items():
        value = data.get(name)
        if not isinstance(value, dict) or any(k not in value for k in inner):
            raise errors.FormatError(f"hubport.json in {folder} lacks '{name}' with {', '.join(inner)}",
                                     "push the folder `hubport port` wrote, or remove its hubport.json")
    if not isinstance(data.get("dropped", []), list) or not isinstance(data["slot_map"]["counts"], dict):
        raise errors.FormatError(f"hubport.json in {folder}: 'dropped' must be a list and 'slot_map.counts' a map")
    return data


def _create(client, repo: str, private: bool) -> bool:
    """True when this call created the repo (so a failed first push may remove it again)."""
    from huggingface_hub import errors as hf

    try:
        client.create_repo(repo, private=private, exist_ok=False)
        return True
    except hf.HfHubHTTPError as exc:
        if exc.response is not None and exc.response.status_code == 409:
            return False
        raise


def _head(client, repo: str) -> tuple[str, list[str], bool]:
    """The main branch's commit, the files there, and whether its README.md is the user's own."""
    info = client.repo_info(repo)
    names = [s.rfilename for s in info.siblings or []]
    user_readme = False
    if "README.md" in names:  # read at the pinned head, from the client's own endpoint, bypassing the cache
        from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

        response = get_session().get(f"{_endpoint(client)}/{repo}/resolve/{info.sha}/README.md", timeout=60,
                                     headers=build_hf_headers(token=getattr(client, "token", None)))
        hf_raise_for_status(response)
        from hubport.card import CARD_MARK

        user_readme = CARD_MARK not in response.content[:CARD_MAX_READ].decode("utf-8", "replace")
    return info.sha, names, user_readme


CARD_MAX_READ = 1_000_000
KEPT = (".gitattributes",)


def _deletions(at_head: list[str], written: set[str], notes: list[str]) -> list:
    from huggingface_hub import CommitOperationDelete

    stale = sorted(f for f in at_head if f not in written and f not in KEPT and f != "README.md")
    if stale:
        notes.append(f"removed {len(stale)} file(s) an earlier push left: {', '.join(stale[:6])}"
                     + (" ..." if len(stale) > 6 else ""))
    return [CommitOperationDelete(path_in_repo=f) for f in stale]


def _lost_race(exc: BaseException) -> bool:
    response = getattr(exc, "response", None)
    return response is not None and getattr(response, "status_code", None) == 412


def nested_module_files(folder: Path) -> list[Path]:
    """The files of the modules in subfolders (peft's non-default adapters): pushed with the root one, never
    left out."""
    from hubport.layout import ROOT, list_modules

    files = [f for sub in list_modules(folder) if sub != ROOT for f in sorted((folder / sub).iterdir())
             if f.name in MODULE_FILES]
    for f in files:
        if f.is_symlink():
            raise errors.FormatError(f"{f.relative_to(folder)} in {folder} is a symbolic link; hubport never pushes "
                                     "a link's target", "copy the file into the folder, or remove the link")
    return [f for f in files if f.is_file()]


def _message(provenance: dict | None) -> str:
    if not provenance:
        return "Upload PEFT module with hubport"
    return f"Port {provenance['source']['ref']} onto {provenance['target']['ref']} with hubport"
