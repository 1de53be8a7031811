"""The two on-disk module formats, told apart by content (both libraries write `adapter_config.json`).

peft:     adapter_config.json (flat, has `peft_type`) + adapter_model.safetensors | adapter_model.bin
adapters: adapter_config.json (wrapper: `config`, `model_class`, `version`) + adapter.safetensors | pytorch_adapter.bin
Head files (head_config.json, pytorch_model_head.bin, model_head.safetensors) are never ported.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from hubport.errors import FormatError, NotFoundError
from hubport.methodconfig import check_config, check_rank
from hubport.tensors import TensorInfo, load_pickle_weights, read_local_header

CONFIG_FILE = "adapter_config.json"
WEIGHT_FILES = {
    "peft": {"safetensors": "adapter_model.safetensors", "bin": "adapter_model.bin"},
    "adapters": {"safetensors": "adapter.safetensors", "bin": "pytorch_adapter.bin"},
}
HEAD_FILES = ("head_config.json", "pytorch_model_head.bin", "model_head.safetensors")


@dataclass(frozen=True)
class ModuleFiles:
    """A module folder as read: its library, config, weights file and tensor shapes. No tensor data."""

    root: Path
    library: str
    config: dict
    weights: Path
    kind: str
    tensors: dict[str, TensorInfo]
    skipped: tuple[str, ...]

    @property
    def method_config(self) -> dict:
        """The method's own fields (adapters nests them under `config`)."""
        return self.config if self.library == "peft" else self.config.get("config", {})

    @property
    def base(self) -> str | None:
        """The host it was trained on, as its library recorded it (often a local path, or empty)."""
        name = self.config.get("base_model_name_or_path" if self.library == "peft" else "model_name")
        return name or None

    @property
    def base_revision(self) -> str | None:
        return self.config.get("revision") if self.library == "peft" else None

    def num_parameters(self) -> int:
        total = 0
        for info in self.tensors.values():
            n = 1
            for d in info.shape:
                n *= d
            total += n
        return total


def read_json(path: Path) -> dict:
    """A JSON object from a file, or a one-line FormatError saying which file is broken."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFoundError(f"{path} does not exist") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FormatError(f"{path.name} is not valid JSON ({exc.__class__.__name__}: {str(exc)[:80]})") from None
    if not isinstance(data, dict):
        raise FormatError(f"{path.name} is not a JSON object")
    return data


def detect_library(config: dict, where: str) -> str:
    if "peft_type" in config:
        return "peft"
    inner = config.get("config")
    if isinstance(inner, dict) and ("model_class" in config or str(config.get("version", "")).startswith("adapters")):
        return "adapters"
    raise FormatError(f"{where} is neither a peft nor an adapters module config (no peft_type, no adapters wrapper)")


def read_module(root: Path) -> ModuleFiles:
    """Read a module folder's config and tensor headers; `.bin` files go through torch's weights-only loader."""
    root = Path(root)
    if not root.is_dir():
        raise NotFoundError(f"module folder {root} does not exist", "give a folder written by save_pretrained/"
                            "save_adapter, or a Hub repo id owner/name")
    if not (root / CONFIG_FILE).is_file():
        raise FormatError(f"{root} holds no {CONFIG_FILE}, so it is not a PEFT module folder",
                          "point at the folder that save_pretrained or save_adapter wrote")
    config = read_json(root / CONFIG_FILE)
    library = detect_library(config, f"{root / CONFIG_FILE}")
    check_config(library, config, CONFIG_FILE)
    kind, weights = _weights_file(root, library)
    tensors = read_local_header(weights) if kind == "safetensors" else _bin_infos(weights)
    method = config if library == "peft" else config["config"]
    check_rank(library, method, {k: t.shape for k, t in tensors.items()}, CONFIG_FILE)
    skipped = tuple(sorted(f.name for f in root.iterdir() if f.name in HEAD_FILES))
    return ModuleFiles(root, library, config, weights, kind, tensors, skipped)


def _weights_file(root: Path, library: str) -> tuple[str, Path]:
    for kind in ("safetensors", "bin"):
        path = root / WEIGHT_FILES[library][kind]
        if path.is_file():
            return kind, path
    names = " or ".join(WEIGHT_FILES[library].values())
    raise FormatError(f"{root} has an {library} config but no weights file ({names})")


def _bin_infos(path: Path) -> dict[str, TensorInfo]:
    state = load_pickle_weights(path)
    empty = next((k for k, v in state.items() if v.numel() == 0), None)
    if empty is not None:
        raise FormatError(f"{path.name}: tensor '{empty}' has a zero-size dimension (shape {list(state[empty].shape)})",
                          "a module tensor with no elements holds nothing to port")
    return {k: TensorInfo(k, _st_dtype(v), tuple(v.shape), -1, -1) for k, v in state.items()}


def _st_dtype(tensor: object) -> str:
    name = str(tensor.dtype).removeprefix("torch.")  # type: ignore[attr-defined]
    return {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "float64": "F64"}.get(name, name.upper())


def load_tensors(module: ModuleFiles) -> dict:
    """All tensors of a module as torch tensors (safetensors or the weights-only pickle loader)."""
    if module.kind == "bin":
        return load_pickle_weights(module.weights)
    from safetensors.torch import load_file

    return load_file(str(module.weights))


def write_weights(module: ModuleFiles, rename: dict[str, str], out_dir: Path, kind: str,
                  tensors: dict | None = None) -> Path:
    """Write the kept tensors under their new names in `kind` format; a plain byte copy when nothing changes."""
    target = out_dir / WEIGHT_FILES[module.library][kind]
    unchanged = all(k == v for k, v in rename.items()) and set(rename) == set(module.tensors)
    if tensors is None and unchanged and kind == module.kind:
        shutil.copyfile(module.weights, target)
        return target
    source = tensors if tensors is not None else load_tensors(module)
    out = {new: source[old].contiguous() for old, new in sorted(rename.items())}
    if kind == "safetensors":
        from safetensors.torch import save_file

        save_file(out, str(target), metadata={"format": "pt"})
    else:
        import torch

        torch.save(out, target)
    return target


def write_json(path: Path, data: dict, indent: int | None = 2) -> None:
    """Sorted JSON; indent=None takes json's C encoder (a 3,000-tensor slot map in a millisecond)."""
    path.write_text(json.dumps(data, indent=indent, sort_keys=True) + "\n", encoding="utf-8")
