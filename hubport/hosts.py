"""T5-family hosts as frozen data, read from `config.json` alone.

Porting needs the shapes a module's tensors take on a host and which FFN projections exist; both follow from the
config, so no host weights are loaded to decide them.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass

from hubport.errors import NotAHostError

T5_MODEL_TYPES = ("t5", "mt5", "umt5")


@dataclass(frozen=True)
class HostSpec:
    """The shape facts of one T5 host. `variant` is v1.0 (ReLU `wi`) or gated (v1.1, Flan-T5, mT5)."""

    model_type: str
    d_model: int
    d_kv: int
    d_ff: int
    num_heads: int
    num_layers: int
    num_decoder_layers: int
    vocab_size: int
    ffn: str
    tied: bool
    config_hash: str

    @property
    def gated(self) -> bool:
        return self.ffn.startswith("gated")

    @property
    def variant(self) -> str:
        return "gated" if self.gated else "relu"

    @property
    def inner_dim(self) -> int:
        return self.num_heads * self.d_kv

    @property
    def ffn_in_projs(self) -> tuple[str, ...]:
        """The FFN's input projections: `wi` for v1.0, `wi_0` (gate) and `wi_1` (up) for gated hosts."""
        return ("wi_0", "wi_1") if self.gated else ("wi",)

    def layers(self, stack: str) -> int:
        return self.num_layers if stack == "encoder" else self.num_decoder_layers

    def linear_dims(self, proj: str) -> tuple[int, int]:
        """(in_features, out_features) of one of the host's linear projections."""
        return self._dims[proj]

    @functools.cached_property
    def _dims(self) -> dict[str, tuple[int, int]]:
        dims = {
            "q": (self.d_model, self.inner_dim),
            "k": (self.d_model, self.inner_dim),
            "v": (self.d_model, self.inner_dim),
            "o": (self.inner_dim, self.d_model),
            "wo": (self.d_ff, self.d_model),
        }
        for name in self.ffn_in_projs:
            dims[name] = (self.d_model, self.d_ff)
        return dims

    def has_proj(self, proj: str) -> bool:
        return proj in ("q", "k", "v", "o", "wo") or proj in self.ffn_in_projs

    def describe(self) -> str:
        return (
            f"{self.model_type} {self.variant} d_model={self.d_model} d_ff={self.d_ff} heads={self.num_heads}"
            f"x{self.d_kv} layers={self.num_layers}+{self.num_decoder_layers}"
            f" {'tied' if self.tied else 'untied'}"
        )


def host_from_config(config: dict, where: str = "config.json") -> HostSpec:
    """Validate a transformers T5 config dict into a HostSpec; anything not T5-shaped is refused."""
    model_type = config.get("model_type")
    if model_type not in T5_MODEL_TYPES:
        raise NotAHostError(f"{where} describes a '{model_type}' model, not a T5-family host")
    try:
        ffn = config.get("feed_forward_proj", "relu")
        spec = HostSpec(
            model_type=model_type,
            d_model=int(config["d_model"]),
            d_kv=int(config["d_kv"]),
            d_ff=int(config["d_ff"]),
            num_heads=int(config["num_heads"]),
            num_layers=int(config["num_layers"]),
            num_decoder_layers=int(config.get("num_decoder_layers") or config["num_layers"]),
            vocab_size=int(config["vocab_size"]),
            ffn=str(ffn),
            tied=bool(config.get("tie_word_embeddings", True)),
            config_hash=config_hash(config),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise NotAHostError(f"{where} lacks a usable T5 field ({exc})") from None
    return spec


SHAPE_KEYS = (
    "model_type", "d_model", "d_kv", "d_ff", "num_heads", "num_layers", "num_decoder_layers", "vocab_size",
    "feed_forward_proj", "tie_word_embeddings", "relative_attention_num_buckets",
)


def config_hash(config: dict) -> str:
    """A short hash of the fields that define a host's architecture (not its weights)."""
    picked = {k: config.get(k) for k in SHAPE_KEYS}
    return hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest()[:16]
