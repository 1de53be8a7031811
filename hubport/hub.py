"""The Hub side: pull modules and hosts by repo id, read host weights by range, push ported modules in one commit.

Everything goes through huggingface_hub, so the standard cache, HF_TOKEN / `hf auth login`, HF_ENDPOINT
(the project's own server included) and HF_HUB_OFFLINE behave as users expect. Tokens are never taken from the
command line and never written anywhere.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hubport import errors
from hubport.formats import CONFIG_FILE, HEAD_FILES, WEIGHT_FILES, read_module
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
        return json.loads(self.config_path.read_text())

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

            size = int(get_session().head(url, headers=headers, allow_redirects=True, timeout=60)
                       .headers["Content-Length"])
        return read, parse_header(read, size, f"{self.repo}/{filename}")

    def bytes_read(self) -> int:
        return self._read[0]

    def local_dir(self) -> Path:
        with hub_errors(f"host {self.repo}"):
            return Path(_api(self.api).snapshot_download(self.repo, revision=self.revision,
                                                         allow_patterns=HOST_FILES))


def push_module(folder: Path, repo: str, *, private: bool = False, api: object | None = None,
                results: list[dict] | None = None) -> dict:
    """Create the repo if missing, then ONE commit: module files, hubport.json and the model card as README.md."""
    from huggingface_hub import CommitOperationAdd

    from hubport.card import build_card, source_card_data

    folder = Path(folder)
    module = read_module(folder)
    provenance = json.loads((folder / "hubport.json").read_text()) if (folder / "hubport.json").is_file() else None
    card = build_card(module, repo, provenance, results=results, carried=source_card_data(provenance, api))
    files = [f for f in sorted(folder.iterdir()) if f.is_file() and f.name not in HEAD_FILES + ("README.md",)]
    ops = [CommitOperationAdd(path_in_repo=f.name, path_or_fileobj=str(f)) for f in files]
    ops.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=str(card).encode()))
    client = _api(api)
    with hub_errors(f"push to {repo}"):
        existed = client.repo_exists(repo)
        url = client.create_repo(repo, private=private, exist_ok=True)
        try:
            info = client.create_commit(repo, ops, commit_message=_message(provenance))
        except BaseException:
            if not existed:  # never leave an empty repo behind a failed first push
                with contextlib.suppress(Exception):
                    client.delete_repo(repo)
            raise
    return {"repo": repo, "commit": info.oid, "url": str(url), "commit_url": info.commit_url}


def _message(provenance: dict | None) -> str:
    if not provenance:
        return "Upload PEFT module with hubport"
    return f"Port {provenance['source']['ref']} onto {provenance['target']['ref']} with hubport"
