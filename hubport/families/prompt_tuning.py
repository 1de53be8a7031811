"""Prompt tuning (peft only: adapters' T5 support has `support_prompt_tuning = False`).

One tensor, `prompt_embeddings [num_virtual_tokens * num_transformer_submodules, token_dim]`, in the input embedding
space: it depends on the host only through d_model (and, for its meaning, on the embedding coordinates).
"""

from __future__ import annotations

from hubport.hosts import HostSpec
from hubport.keys import ModuleKey

NAME = "prompt_tuning"
LIBRARIES = ("peft",)


def detect(library: str, method: dict) -> bool:
    return library == "peft" and method.get("peft_type") == "PROMPT_TUNING"


def expected_shape(key: ModuleKey, shape: tuple[int, ...], method: dict, host: HostSpec) -> tuple[int, ...] | None:
    if key.slot is not None or key.tail != "prompt_embeddings":
        return None
    rows = int(method.get("num_virtual_tokens", shape[0])) * int(method.get("num_transformer_submodules", 1))
    return (rows, host.d_model)


def retarget(library: str, method: dict, dropped: set[str], kept: set[str]) -> dict:
    return dict(method)


def target_fields(host: HostSpec) -> dict:
    return {"token_dim": host.d_model, "num_layers": host.num_layers, "num_attention_heads": host.num_heads}


def summary(library: str, method: dict) -> dict:
    return {"num_virtual_tokens": method.get("num_virtual_tokens"), "init": method.get("prompt_tuning_init")}


def notes(library: str, method: dict, keys: list[str]) -> list[str]:
    return []


def tier(key: ModuleKey, source: HostSpec, target: HostSpec) -> str:
    """Soft prompts are input embeddings: the residual map carries them."""
    return "embed"


def library_config(library: str, kwargs: dict):
    """The library's config object for a new module (the engine attaches it)."""
    import peft

    return peft.PromptTuningConfig(task_type="SEQ_2_SEQ_LM", **kwargs)


def map_across(library: str, method: dict, tensors: dict, maps: object) -> object:
    """The cross-host mapper (`--map` tiers): tensors as float64 arrays, maps a crossmap MapBook -> an Outcome."""
    from hubport.crossmap.fam_residual import map_residual

    return map_residual(NAME, library, method, tensors, maps)
