"""Method configs checked against the library's own config dataclasses, before any family reads a field.

peft's LoraConfig(r=-1) and adapters' LoRAConfig(r="four") construct without complaint, and a port would carry
such a config onto the target unchanged; so hubport checks each saved field against the type the library's
dataclass declares for it (int, float, bool, str, lists, Literal, Optional/Union), plus the few ranges no valid
module breaks (sizes >= 1, finite numbers, a dropout in [0, 1], a non-empty target list, a LoRA rank that matches
the tensors). Fields the installed library does not know are left alone: newer library versions add fields.
"""

from __future__ import annotations

import enum
import functools
import math
import types
import typing
from collections.abc import Mapping, Sequence

from hubport.errors import FormatError

POSITIVE = ("r", "num_virtual_tokens", "token_dim", "prefix_length", "bottleneck_size", "phm_dim",
            "encoder_hidden_size", "num_attention_heads", "num_layers", "num_transformer_submodules",
            "reduction_factor", "hidden_size")
NON_EMPTY = ("target_modules",)
SCALES = ("lora_alpha", "alpha")  # declared int, but saved as floats by many working modules


class ConfigFieldError(FormatError):
    """A module config field whose value its library could not build a working module from."""

    hint = "fix the field in adapter_config.json, or re-save the module with its library"


def check_config(library: str, config: dict, where: str) -> None:
    """Raise ConfigFieldError for the first field of a saved module config that its library's class refuses."""
    method = config if library == "peft" else config.get("config")
    if not isinstance(method, dict):
        raise ConfigFieldError(f"{where}: 'config' must be a JSON object")
    hints = _hints(library, method)
    if library == "adapters":
        _check_fields(config, {"hidden_size": int, "model_name": str | None, "name": str}, where)
    _check_fields(method, hints, where)


def check_rank(library: str, method: dict, shapes: dict[str, tuple[int, ...]], where: str) -> None:
    """LoRA's saved rank must be the tensors' rank (peft's rank_pattern may vary it per layer)."""
    r = method.get("r")
    lora = method.get("peft_type") == "LORA" if library == "peft" else (
        method.get("architecture") == "lora" and method.get("composition_mode", "add") == "add")
    if not lora or method.get("rank_pattern") or not isinstance(r, int):
        return
    for key, shape in shapes.items():
        if ".lora_A." in f".{key}." and len(shape) == 2 and shape[0] != r:
            raise ConfigFieldError(f"{where}: r is {r} but tensor '{key}' has rank {shape[0]}")


def _check_fields(method: dict, hints: Mapping[str, object], where: str) -> None:
    for name, value in method.items():
        tp = float if name in SCALES and name in hints else hints.get(name)
        if tp is not None and not fits(value, tp):
            raise ConfigFieldError(f"{where}: field '{name}' is {_show(value)}, its library expects {_name(tp)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigFieldError(f"{where}: field '{name}' is {_show(value)}, not a finite number")
        if name in POSITIVE and value is not None and _number(value) and value < 1 and not _block_sized(method, name):
            raise ConfigFieldError(f"{where}: field '{name}' is {_show(value)}; it must be at least 1")
        if (name == "dropout" or name.endswith("_dropout")) and _number(value) and not 0 <= value <= 1:
            raise ConfigFieldError(f"{where}: field '{name}' is {_show(value)}; a dropout lies in [0, 1]")
        if name in NON_EMPTY and isinstance(value, list | str) and not value:
            raise ConfigFieldError(f"{where}: field '{name}' is empty, so the module adapts nothing")


def _block_sized(method: dict, name: str) -> bool:
    """peft's OFT/BOFT configured by block size save r = 0 (the rank follows from the block size)."""
    return name == "r" and method.get("r") == 0 and any(
        _number(method.get(k)) and method.get(k) > 0 for k in ("oft_block_size", "boft_block_size"))


def fits(value: object, tp: object) -> bool:
    """Whether a JSON value can stand for the annotated type (unknown or exotic annotations accept anything)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is typing.Any or tp is object:
        return True
    if origin is typing.Union or origin is types.UnionType:
        return any(fits(value, a) for a in args)
    if tp is type(None):
        return value is None
    if origin is typing.Literal:
        return value in args or any(type(value) is type(a) for a in args)
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return _number(value) and (isinstance(value, int) or (math.isfinite(value) and value == int(value)))
    if tp is float:
        return _number(value)
    if tp is str:
        return isinstance(value, str)
    if origin in (list, tuple, set, Sequence) or tp in (list, tuple, set):
        item = args[0] if origin in (list, set, Sequence) and args else None
        return isinstance(value, list) and (item is None or all(fits(v, item) for v in value))
    if origin in (dict, Mapping) or tp in (dict, Mapping):
        return isinstance(value, dict)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return value in {m.value for m in tp} or value in tp.__members__
    return True


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _name(tp: object) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _hints(library: str, method: dict) -> Mapping[str, object]:
    """The field annotations of the library class that would load this config ({} where there is none)."""
    if library == "peft":
        peft_type = method.get("peft_type")
        return _peft_hints(peft_type) if isinstance(peft_type, str) else {}
    architecture = method.get("architecture")
    return _adapters_hints(architecture) if architecture is None or isinstance(architecture, str) else {}


@functools.cache
def _peft_hints(peft_type: str) -> Mapping[str, object]:
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING

    cls = PEFT_TYPE_TO_CONFIG_MAPPING.get(peft_type)
    return _class_hints(cls) if cls is not None else {}


@functools.cache
def _adapters_hints(architecture: str | None) -> Mapping[str, object]:
    from adapters import AdapterConfig

    try:
        cls = AdapterConfig._get_config_class({"architecture": architecture})
    except KeyError:
        return {}
    return _class_hints(cls)


def _class_hints(cls: type) -> Mapping[str, object]:
    try:
        return types.MappingProxyType(typing.get_type_hints(cls))
    except Exception:  # noqa: BLE001 - an annotation this Python cannot resolve: check nothing rather than refuse good modules
        return {}
