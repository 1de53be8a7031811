"""The Hub side: pull modules and hosts by repo id, read host weights by range, push ported modules in one commit.

Everything goes through huggingface_hub, so the standard cache, HF_TOKEN / `huggingface-cli login`, HF_ENDPOINT
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
    except hf.LocalEntryNotFoundError:
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


def download_module(repo: str, revision: str | None, api: object | None = None) -> tuple[Path, str]:
    """Only the module's files (never head files), pinned: returns (snapshot folder, commit sha)."""
    with hub_errors(f"module {repo}"):
        folder = Path(_api(api).snapshot_download(repo, revision=revision, allow_patterns=MODULE_FILES))
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
    """A host repo pinned to one commit; weights are read by HTTP range, or from the cache when offline."""

    repo: str
    revision: str
    config_path: Path
    api: object | None = None
    name: str = ""
    _weight_map: dict[str, str] | None = None
    _headers: dict[str, tuple[ReadRange, dict[str, TensorInfo]]] = field(default_factory=dict)
    _read: list[int] = field(default_factory=lambda: [0])

    @classmethod
    def open(cls, repo: str, revision: str | None, api: object | None = None) -> HubHost:
        with hub_errors(f"host {repo}"):
            path = Path(_api(api).hf_hub_download(repo, "config.json", revision=revision))
        return cls(repo=repo, revision=path.parent.name, config_path=path, api=api, name=repo)

    def config(self) -> dict:
        return read_json(self.config_path)

    def _weights(self) -> dict[str, str]:
        if self._weight_map is None:
            from huggingface_hub import get_safetensors_metadata

            try:
                with hub_errors(f"weights of {self.repo}"):
                    meta = get_safetensors_metadata(self.repo, revision=self.revision,
                                                    token=getattr(self.api, "token", None))
                self._weight_map = dict(meta.weight_map)
            except errors.HubportError:
                self._weight_map = {}
        return self._weight_map

    def weights_at_hand(self) -> bool:
        return bool(self._weights())

    def tensor_names(self) -> list[str]:
        return sorted(self._weights())

    def find_tensor(self, tensor: str) -> tuple[ReadRange, TensorInfo] | None:
        filename = self._weights().get(tensor)
        if filename is None:
            return None
        if filename not in self._headers:
            self._headers[filename] = self._open_file(filename)
        read, infos = self._headers[filename]
        info = infos.get(tensor)
        return (read, info) if info else None

    def _open_file(self, filename: str) -> tuple[ReadRange, dict[str, TensorInfo]]:
        from huggingface_hub import hf_hub_url
        from huggingface_hub.utils import build_hf_headers

        url = hf_hub_url(self.repo, filename, revision=self.revision)
        headers = build_hf_headers(token=getattr(self.api, "token", None))
        read = _range_reader(url, headers, self._read)
        with hub_errors(f"{self.repo}/{filename}"):
            from huggingface_hub.utils import get_session

            length = get_session().head(url, headers=headers, allow_redirects=True, timeout=60).headers.get(
                "Content-Length", "")
        if not length.isdigit():
            raise errors.HubError(f"{self.repo}/{filename}: the Hub gave no file size", "try again later")
        size = int(length)
        return read, parse_header(read, size, f"{self.repo}/{filename}")

    def bytes_read(self) -> int:
        return self._read[0]

    def local_dir(self) -> Path:
        with hub_errors(f"host {self.repo}"):
            return Path(_api(self.api).snapshot_download(self.repo, revision=self.revision,
                                                         allow_patterns=HOST_FILES))


def push_module(folder: Path, repo: str, *, private: bool = False, api: object | None = None,
                results: list[dict] | None = None) -> dict:
    """Create the repo if missing, then ONE commit on top of the head read here (parent_commit) that makes the
    repo exactly the module: its files, hubport.json and the card as README.md; whatever an earlier module left
    is deleted, files the user owns (a README hubport did not write, .gitattributes) are kept and named in
    `notes`. A concurrent push that commits first makes this one fail whole, with nothing changed."""
    from huggingface_hub import CommitOperationAdd

    from hubport.card import build_card

    folder = Path(folder)
    check_repo_id(repo, repo)
    files = upload_files(folder)
    module = read_module(folder)
    provenance = read_provenance(folder)
    client = _api(api)
    with hub_errors(f"push to {repo}"):
        created = _create(client, repo, private)
        url = f"{_endpoint(client)}/{repo}"
        try:
            head, at_head, user_readme = _head(client, repo)
            ops = [CommitOperationAdd(path_in_repo=f.name, path_or_fileobj=str(f)) for f in files]
            notes = []
            if user_readme:
                notes.append("kept README.md: it was not written by hubport, so the model card was not uploaded")
            else:
                card = build_card(module, repo, provenance, results=results)
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
    return {"repo": repo, "commit": info.oid, "url": url, "notes": notes}


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
        user_readme = CARD_MARK not in response.content[:CARD_MAX_READ].decode("utf-8", "replace")
    return info.sha, names, user_readme


CARD_MARK = "ported by [hubport](https://pypi.org/project/hubport/)"
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


def _message(provenance: dict | None) -> str:
    if not provenance:
        return "Upload PEFT module with hubport"
    return f"Port {provenance['source']['ref']} onto {provenance['target']['ref']} with hubport"
