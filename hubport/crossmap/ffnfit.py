"""FFN-interior modules carried by function, not by coordinates (the `probe` tier).

The source module's effect on its FFN's output is computed exactly on the probe tokens' FFN inputs; the target
module is then fitted so that the target FFN's output changes the same way, mapped into the target's residual
coordinates. This works between ReLU and gated FFNs, which share no neurons: IA3 becomes a gain on the target's
hidden units (closed form), LoRA becomes a LoRA on the target's `wo` (reduced-rank regression) on top of whatever
the neuron maps already carried.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hubport.crossmap.hostread import HostWeights
from hubport.hosts import sublayer_path

SQRT_2_OVER_PI = np.sqrt(2.0 / np.pi)


def gelu_new(x: np.ndarray) -> np.ndarray:
    """transformers' `gelu_new` (tanh approximation), the activation of T5 v1.1's gated FFN."""
    return 0.5 * x * (1.0 + np.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x ** 3)))


@dataclass
class FfnMods:
    """A module's pieces inside one FFN: LoRA deltas (scaling included), output gains, the hidden gain."""

    lora: dict[str, np.ndarray] = field(default_factory=dict)   # proj -> Delta W [out, in]
    gains: dict[str, np.ndarray] = field(default_factory=dict)  # wi/wi_0/wi_1 -> gain on that projection's output
    hidden: np.ndarray | None = None                            # gain on wo's input

    def empty(self) -> bool:
        return not self.lora and not self.gains and self.hidden is None


def ffn_weights(host: HostWeights, stack: str, block: int) -> dict[str, np.ndarray]:
    path = sublayer_path(stack, block, "ffn")
    return {p: host.linear(f"{path}.{p}") for p in (*host.spec.ffn_in_projs, "wo")}


def hidden(W: dict[str, np.ndarray], u: np.ndarray, mods: FfnMods | None = None) -> np.ndarray:
    """The FFN's hidden activations [n, d_ff] (the input of wo), with the module's pieces applied."""
    mods = mods or FfnMods()

    def proj(p: str) -> np.ndarray:
        z = u @ W[p].T
        if p in mods.lora:
            z = z + u @ mods.lora[p].T
        return z * mods.gains[p] if p in mods.gains else z

    a = gelu_new(proj("wi_0")) * proj("wi_1") if "wi_0" in W else np.maximum(proj("wi"), 0.0)
    return a * mods.hidden if mods.hidden is not None else a


def output(W: dict[str, np.ndarray], u: np.ndarray, mods: FfnMods | None = None) -> np.ndarray:
    mods = mods or FfnMods()
    a = hidden(W, u, mods)
    out = a @ W["wo"].T
    return out + a @ mods.lora["wo"].T if "wo" in mods.lora else out


def effect(W: dict[str, np.ndarray], u: np.ndarray, mods: FfnMods) -> np.ndarray:
    """How much the module changes the FFN's output, per token [n, d]."""
    return output(W, u, mods) - output(W, u)


@dataclass(frozen=True)
class FitInputs:
    """One FFN layer pair on the probe tokens: weights, inputs and the writer map into the target residual."""

    W_s: dict[str, np.ndarray]
    W_t: dict[str, np.ndarray]
    u_s: np.ndarray
    u_t: np.ndarray
    writer: np.ndarray

    def wanted(self, mods: FfnMods) -> np.ndarray:
        """The source module's FFN effect in target residual coordinates [n, d_t]."""
        return effect(self.W_s, self.u_s, mods) @ self.writer.T
