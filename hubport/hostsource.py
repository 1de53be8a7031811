"""What every host source provides (local folder or Hub repo), as a protocol of its own: the estimation code
(hubport.crossmap) reads hosts through it without importing how hosts are opened (hubport.sources, hubport.hub).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from hubport.tensors import ReadRange, TensorInfo


class HostSource(Protocol):
    """A host's files, wherever they live."""

    name: str
    revision: str | None

    def config(self) -> dict: ...

    def find_tensor(self, tensor: str) -> tuple[ReadRange, TensorInfo] | None: ...

    def weights_at_hand(self) -> bool: ...

    def tensor_names(self) -> list[str]: ...

    def local_dir(self) -> Path:
        """The whole host on disk (a Hub host downloads its weights here: only for --verify)."""

    def bytes_read(self) -> int: ...
