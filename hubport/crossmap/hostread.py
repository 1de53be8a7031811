"""Host weights as numpy, read tensor by tensor (or row run by row run) and counted.

Each map tier reads only what it needs: `embed` the embedding rows and RMSNorm gains, `weights` the attention and
FFN matrices of the layers a module touches. Every read goes through the host's HostSource, so local files and Hub
repos (HTTP range requests) are counted the same way, and float64 hosts stay exact (the core's decoder widens to
float32 only).
"""

from __future__ import annotations

import numpy as np

from hubport.errors import NotFoundError
from hubport.hosts import ENCODER_FINAL_NORM, HostSpec, layer_norm_path
from hubport.hostsource import HostSource
from hubport.tensors import ITEMSIZE, TensorInfo, decode, finite, row_runs


def decode64(raw: bytes, dtype: str, shape: tuple[int, ...], name: str = "a host tensor") -> np.ndarray:
    """Bytes as numbers without loss: F64 stays float64, narrower floats become float32 (exact; half the memory of
    float64 for a large host). Arithmetic with the float64 maps promotes them."""
    if dtype == "F64":
        return finite(np.frombuffer(raw, dtype="<f8").reshape(shape).copy(), name)
    return decode(raw, dtype, shape, name)


class HostWeights:
    """One host's tensors on demand, cached, with the bytes they cost."""

    def __init__(self, files: HostSource, spec: HostSpec, name: str) -> None:
        self.files, self.spec, self.name = files, spec, name
        self._cache: dict[str, np.ndarray] = {}
        self._start = files.bytes_read()

    def bytes_read(self) -> int:
        return self.files.bytes_read() - self._start

    def _find(self, tensor: str) -> tuple:
        found = self.files.find_tensor(tensor)
        if found is None:
            raise NotFoundError(f"{self.name} has no tensor '{tensor}' in its safetensors weights",
                                "--map needs both hosts' weights as safetensors (local folder or Hub repo)")
        return found

    def has(self, tensor: str) -> bool:
        return self.files.find_tensor(tensor) is not None

    def get(self, tensor: str) -> np.ndarray:
        """A whole tensor (cached), float64 or float32 as stored (see decode64)."""
        if tensor not in self._cache:
            read, info = self._find(tensor)
            self._cache[tensor] = decode64(read(info.start, info.end), info.dtype, info.shape, tensor)
        return self._cache[tensor]

    def rows(self, tensor: str, rows: list[int]) -> np.ndarray:
        """Some rows of a matrix, one range request per run of consecutive rows (not cached)."""
        read, info = self._find(tensor)
        return _read_rows(read, info, rows)

    def shape(self, tensor: str) -> tuple[int, ...]:
        return self._find(tensor)[1].shape

    def itemsize(self, tensor: str) -> int:
        """Bytes per stored element (what a row read costs)."""
        return ITEMSIZE[self._find(tensor)[1].dtype]

    def gain(self, norm: str) -> np.ndarray:
        """An RMSNorm gain by its module path (`...layer_norm` or `encoder.final_layer_norm`)."""
        return self.get(norm if norm.endswith(".weight") else f"{norm}.weight")

    def linear(self, path: str) -> np.ndarray:
        """A projection's weight [out, in] by module path, e.g. `encoder.block.0.layer.0.SelfAttention.q`."""
        return self.get(f"{path}.weight")


def _read_rows(read, info: TensorInfo, rows: list[int]) -> np.ndarray:
    cols = info.shape[1]
    row_bytes = cols * ITEMSIZE[info.dtype]
    parts = [decode64(read(info.start + first * row_bytes, info.start + (first + n) * row_bytes), info.dtype,
                      (n, cols), info.name) for first, n in row_runs(rows)]
    return np.concatenate(parts) if parts else np.zeros((0, cols))


def reader_norm(stack: str, block: int, layer: int, cross_kv: bool = False) -> str:
    """The RMSNorm in front of a projection: its sublayer's, or the encoder's final one for cross-attention k/v."""
    return ENCODER_FINAL_NORM if cross_kv else layer_norm_path(stack, block, layer)
