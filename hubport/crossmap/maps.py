"""All maps between two hosts, estimated on demand, per tier, and cached.

A module touches few places of a host; each map is estimated only when a family asks for it, so a tier reads only
the tensors its maps need (embed: embeddings and gains; weights: the projections of the touched layers, or of all
layers when depths differ). Asking for a map above the chosen tier raises NeedsTier, which families turn into a
refusal that names the tier that would carry the tensor.
"""

from __future__ import annotations

import numpy as np

from hubport.crossmap.heads import (
    AttentionMap,
    Folded,
    head_scores,
    match,
    virtual_residual,
    within_head_maps,
)
from hubport.crossmap.hostread import HostWeights, reader_norm
from hubport.crossmap.layers import layer_map, score_matrix
from hubport.crossmap.neurons import NeuronMap, match_neurons
from hubport.crossmap.residual import ResidualMap, estimate_residual, input_map, procrustes
from hubport.hosts import ffn_layer, sublayer_layer, sublayer_path

TIERS = ("copy", "embed", "weights", "probe")


class NeedsTier(Exception):
    """A map the chosen tier cannot provide; `tier` would (or None: nothing would)."""

    def __init__(self, tier: str | None, why: str) -> None:
        super().__init__(why)
        self.tier, self.why = tier, why


def rank(tier: str) -> int:
    return TIERS.index(tier)


class MapBook:
    """Maps from the source host (the module's base) to the target host, for one tier."""

    def __init__(self, src: HostWeights, tgt: HostWeights, tier: str, probe: object | None = None,
                 read_before: int = 0) -> None:
        self.src, self.tgt, self.tier, self.probe = src, tgt, tier, probe
        self.read_before = read_before   # bytes read for these hosts before the maps (the residual gate)
        self._cache: dict[tuple, object] = {}
        self._merged: dict[tuple[str, int], int] = {}

    def _memo(self, key: tuple, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def require(self, tier: str, why: str) -> None:
        if rank(self.tier) < rank(tier):
            raise NeedsTier(tier, why)

    # residual space ---------------------------------------------------------------------------------------
    @property
    def residual(self) -> ResidualMap:
        return self._memo(("residual",), lambda: estimate_residual(self.src, self.tgt))

    def residual_at(self, stack: str, block: int | None) -> tuple[np.ndarray, float]:
        """(M, s) for the residual stream entering a source block (None: the encoder's output)."""
        if self.probe is not None:
            return self._memo(("res", stack, block), lambda: self._probe_residual(stack, block))
        return self.residual.M, self.residual.scale

    def _probe_residual(self, stack: str, block: int | None) -> tuple[np.ndarray, float]:
        hs, ht = self.probe.residual_pair(stack, block, None if block is None else self.block(stack, block))
        return procrustes(hs, ht)

    def embedding_writer(self) -> np.ndarray:
        return self.residual.scale * self.residual.M

    def writer(self, stack: str, block: int) -> np.ndarray:
        """[d_t, d_s]: what a writer (o, wo, adapter up, prompt) of source block `block` becomes, s_l M_l."""
        M, s = self.residual_at(stack, block)
        return s * M

    def reader(self, stack: str, block: int, layer: int, cross_kv: bool = False) -> np.ndarray:
        """N [d_s, d_t] with u_s = N u_t for a projection of source block `block` (gains folded)."""
        tb = self.block(stack, block)
        M, _ = self.residual_at("encoder", None) if cross_kv else self.residual_at(stack, block)
        gs = self.src.gain(reader_norm(stack, block, layer, cross_kv))
        gt = self.tgt.gain(reader_norm(stack, tb, layer, cross_kv))
        return input_map(M, gs, gt)

    # layers -----------------------------------------------------------------------------------------------
    def block(self, stack: str, block: int) -> int | None:
        """The target block of a source block (identity when depths agree; see merge_into)."""
        found = self.layer_map(stack)[block]
        return self._merged.get((stack, block)) if found is None else found

    def merge_into(self, stack: str, block: int) -> int:
        """For a source block the (shallower) target has no layer for: the target block of the nearest mapped
        source block, the preceding one on ties. Maps asked for afterwards pair the two."""
        layers = self.layer_map(stack)
        mapped = [(abs(s - block), s > block, t) for s, t in enumerate(layers) if t is not None]
        if not mapped:
            raise NeedsTier(None, f"no {stack} layer of the source maps onto the target")
        self._merged[stack, block] = min(mapped)[2]
        return self._merged[stack, block]

    def layer_map(self, stack: str) -> tuple[int | None, ...]:
        Ls, Lt = self.src.spec.layers(stack), self.tgt.spec.layers(stack)
        if Ls == Lt:
            return tuple(range(Ls))
        self.require("weights", f"the {stack} has {Ls} layers on the source and {Lt} on the target: a layer map")
        return self._memo(("layers", stack), lambda: layer_map(self.layer_scores(stack)))

    def layer_scores(self, stack: str) -> np.ndarray:
        return self._memo(("scores", stack), lambda: score_matrix(
            [self.folded_source(stack, b) for b in range(self.src.spec.layers(stack))],
            [self.folded_target(stack, b) for b in range(self.tgt.spec.layers(stack))]))

    def folded_source(self, stack: str, block: int, kind: str = "self") -> Folded:
        """Source projections in target residual coordinates, float32: for scoring (matching), not for maps."""
        return self._memo(("folded_s", stack, block, kind), lambda: self._folded_source(stack, block, kind))

    def folded_target(self, stack: str, block: int, kind: str = "self") -> Folded:
        return self._memo(("folded_t", stack, block, kind), lambda: self._folded_target(stack, block, kind))

    def _folded_source(self, stack: str, block: int, kind: str) -> Folded:
        M = self.residual.M
        path, layer = sublayer_path(stack, block, kind), sublayer_layer(stack, kind)
        gq = self.src.gain(reader_norm(stack, block, layer))
        gkv = self.src.gain(reader_norm(stack, block, layer, kind == "cross"))
        lin, f32 = self.src.linear, np.float32
        return Folded((lin(f"{path}.q") * gq @ M.T).astype(f32), (lin(f"{path}.k") * gkv @ M.T).astype(f32),
                      (lin(f"{path}.v") * gkv @ M.T).astype(f32), (M @ lin(f"{path}.o")).astype(f32),
                      self.src.spec.d_kv)

    def _folded_target(self, stack: str, block: int, kind: str) -> Folded:
        path, layer = sublayer_path(stack, block, kind), sublayer_layer(stack, kind)
        gq = self.tgt.gain(reader_norm(stack, block, layer))
        gkv = self.tgt.gain(reader_norm(stack, block, layer, kind == "cross"))
        lin, f32 = self.tgt.linear, np.float32
        return Folded((lin(f"{path}.q") * gq).astype(f32), (lin(f"{path}.k") * gkv).astype(f32),
                      (lin(f"{path}.v") * gkv).astype(f32), lin(f"{path}.o").astype(f32), self.tgt.spec.d_kv)

    # heads ------------------------------------------------------------------------------------------------
    def attention(self, stack: str, block: int, kind: str) -> AttentionMap:
        """Head and within-head maps of one attention sublayer ('self' or 'cross')."""
        self.require("weights", "head maps")
        return self._memo(("attn", stack, block, kind), lambda: self._attention(stack, block, kind))

    def _attention(self, stack: str, block: int, kind: str) -> AttentionMap:
        tb = self._mapped_block(stack, block)
        scores = head_scores(self.folded_source(stack, block, kind), self.folded_target(stack, tb, kind))
        pairs = match(scores)
        layer = sublayer_layer(stack, kind)
        sp, tp = sublayer_path(stack, block, kind), sublayer_path(stack, tb, kind)
        Nq, Nkv = self.reader(stack, block, layer), self.reader(stack, block, layer, kind == "cross")
        lin_s, lin_t = self.src.linear, self.tgt.linear
        mapped = {"q": lin_s(f"{sp}.q") @ Nq, "k": lin_s(f"{sp}.k") @ Nkv, "v": lin_s(f"{sp}.v") @ Nkv,
                  "o": self.writer(stack, block) @ lin_s(f"{sp}.o")}
        target = {p: lin_t(f"{tp}.{p}") for p in "qkvo"}
        score = float(np.mean([scores[a, b] for a, b in pairs])) if pairs else 0.0
        return within_head_maps(mapped, target, pairs, self.src.spec.d_kv, self.tgt.spec.d_kv, score)

    def virtual(self, stack: str, block: int, kind: str, proj: str) -> np.ndarray:
        """The virtual-residual head-space map for prefix keys/values (no head matching)."""
        self.require("weights", "projection weights for the virtual-residual route")
        tb = self._mapped_block(stack, block)
        layer = sublayer_layer(stack, kind)
        N = self.reader(stack, block, layer, kind == "cross")
        W_s = self.src.linear(f"{sublayer_path(stack, block, kind)}.{proj}")
        W_t = self.tgt.linear(f"{sublayer_path(stack, tb, kind)}.{proj}")
        return self._memo(("virtual", stack, block, kind, proj), lambda: virtual_residual(W_t, W_s, N))

    def _mapped_block(self, stack: str, block: int) -> int:
        tb = self.block(stack, block)
        if tb is None:
            raise NeedsTier(None, f"{stack} block {block} has no counterpart on the shallower target")
        return tb

    # FFN neurons ------------------------------------------------------------------------------------------
    def neurons(self, stack: str, block: int) -> NeuronMap:
        if self.src.spec.gated != self.tgt.spec.gated:
            self.require("probe", f"{self.src.spec.variant} and {self.tgt.spec.variant} FFNs share no neurons: "
                                  "a function fit on probe text")
            raise NeedsTier(None, "ReLU and gated FFNs share no neurons")
        self.require("weights", "FFN neuron maps")
        return self._memo(("neurons", stack, block), lambda: self._neurons(stack, block))

    def _neurons(self, stack: str, block: int) -> NeuronMap:
        tb = self._mapped_block(stack, block)
        layer = ffn_layer(stack)
        sp, tp = sublayer_path(stack, block, "ffn"), sublayer_path(stack, tb, "ffn")
        N = self.reader(stack, block, layer)
        reads = self.src.spec.ffn_in_projs
        reads_s = {p: self.src.linear(f"{sp}.{p}") @ N for p in reads}
        reads_t = {p: self.tgt.linear(f"{tp}.{p}") for p in reads}
        wo_s = self.writer(stack, block) @ self.src.linear(f"{sp}.wo")
        return match_neurons(reads_s, reads_t, wo_s, self.tgt.linear(f"{tp}.wo"))

    # report -----------------------------------------------------------------------------------------------
    def diagnostics(self) -> dict:
        """What was estimated, with its quality, for hubport.json."""
        out: dict = {"tier": self.tier, "bytes_read": self.bytes_read()}
        if ("residual",) in self._cache:
            out["residual"] = self.residual.to_dict()
        for key, value in sorted(self._cache.items(), key=lambda kv: str(kv[0])):
            if key[0] == "layers":
                out.setdefault("layer_map", {})[key[1]] = list(value)
            elif key[0] in ("attn", "neurons"):
                out.setdefault(key[0], {})[f"{key[1]}.{key[2]}" + (f".{key[3]}" if len(key) > 3 else "")] = \
                    value.to_dict()
        return out

    def bytes_read(self) -> int:
        return (self.read_before + self.src.bytes_read() + self.tgt.bytes_read()
                + (self.probe.bytes_read if self.probe else 0))


__all__ = ["MapBook", "NeedsTier", "TIERS"]
