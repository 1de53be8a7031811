"""T5-family hosts as frozen data, read from `config.json` alone.

Porting needs the shapes a module's tensors take on a host and which FFN projections exist; both follow from the
config, so no host weights are loaded to decide them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass

from hubport.errors import NotAHostError

T5_MODEL_TYPES = ("t5", "mt5", "umt5")
MAX_SIZE = 1 << 24  # above any T5 dimension or vocabulary; bounds what a hostile config can make hubport allocate
FFN = re.compile(r"^(gated-)?[a-z_0-9]+$")

# The T5 layout, in one place: every module that names a host tensor or sublayer builds it from these.
EMBEDDING = "shared.weight"
ENCODER_FINAL_NORM = "encoder.final_layer_norm.weight"
ATTENTION_PROJS = ("q", "k", "v", "o")
FFN_IN_PROJS = ("wi", "wi_0", "wi_1")            # every FFN input projection any T5 generation has
FFN_INTERIOR_PROJS = (*FFN_IN_PROJS, "wo")       # the projections that touch the FFN's hidden units
SUBLAYERS = {"self": "SelfAttention", "cross": "EncDecAttention", "ffn": "DenseReluDense"}
STACKS = ("encoder", "decoder")


def ffn_layer(stack: str) -> int:
    """The FFN's layer index within a block: after self-attention (encoder) or after cross-attention (decoder)."""
    return 1 if stack == "encoder" else 2


def max_layer(stack: str) -> int:
    """The last layer index a block of this stack has (its FFN)."""
    return ffn_layer(stack)


def sublayer_layer(stack: str, kind: str) -> int:
    """The layer index of a sublayer kind ('self', 'cross', 'ffn') within a block."""
    return {"self": 0, "cross": 1}.get(kind, ffn_layer(stack))


def sublayer_path(stack: str, block: int, kind: str) -> str:
    """Module path of an attention ('self', 'cross') or FFN ('ffn') sublayer in the T5 layout."""
    return f"{stack}.block.{block}.layer.{sublayer_layer(stack, kind)}.{SUBLAYERS[kind]}"


def layer_norm_path(stack: str, block: int, layer: int) -> str:
    """The RMSNorm in front of one layer of a block."""
    return f"{stack}.block.{block}.layer.{layer}.layer_norm"


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
    """Validate a transformers T5 config dict into a HostSpec; anything not T5-shaped is refused by field."""
    model_type = config.get("model_type")
    if model_type not in T5_MODEL_TYPES:
        raise NotAHostError(f"{where} describes a '{model_type}' model, not a T5-family host")
    ffn = config.get("feed_forward_proj", "relu")
    if not isinstance(ffn, str) or not FFN.match(ffn):
        raise NotAHostError(f"{where}: 'feed_forward_proj' is {str(ffn)[:30]!r}",
                            "T5 hosts use 'relu', 'gated-gelu' or another '[gated-]activation' name")
    tied = config.get("tie_word_embeddings", True)
    if not isinstance(tied, bool):
        raise NotAHostError(f"{where}: 'tie_word_embeddings' is {str(tied)[:30]!r}, not true or false")
    sizes = {name: _size(config, name, where) for name in SIZES}
    decoder_layers = _size(config, "num_decoder_layers", where) if config.get("num_decoder_layers") else None
    return HostSpec(model_type=model_type, **sizes, num_decoder_layers=decoder_layers or sizes["num_layers"],
                    ffn=ffn, tied=tied, config_hash=config_hash(config))


SIZES = ("d_model", "d_kv", "d_ff", "num_heads", "num_layers", "vocab_size")


def _size(config: dict, name: str, where: str) -> int:
    """A positive integer field (bounded: a hostile config must not make hubport allocate terabytes)."""
    if name not in config:
        raise NotAHostError(f"{where} lacks the T5 field '{name}'")
    value = config[name]
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_SIZE:
        raise NotAHostError(f"{where}: '{name}' is {str(value)[:30]!r}, not a positive integer",
                            "a T5 config.json gives every size as a positive integer")
    return value


SHAPE_KEYS = (
    "model_type", "d_model", "d_kv", "d_ff", "num_heads", "num_layers", "num_decoder_layers", "vocab_size",
    "feed_forward_proj", "tie_word_embeddings", "relative_attention_num_buckets",
)


def config_hash(config: dict) -> str:
    """A short hash of the fields that define a host's architecture (not its weights)."""
    picked = {k: config.get(k) for k in SHAPE_KEYS}
    return hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest()[:16]
