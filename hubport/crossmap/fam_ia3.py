"""IA3 across hosts: a gain vector l on some space becomes P diag(l - 1) P^+ on the target's, which must be diagonal.

Under a neuron map (a scaled permutation) a gain on the FFN's hidden units stays a gain: IA3 on the FFN ports
exactly. Under a dense within-head map a gain on k or v does not: the conjugate has off-diagonal mass, and a
diagonal re-fit was measured to do worse than dropping the module, so such tensors are
refused with the residual. `probe` fits the FFN gain in closed form on the target's own hidden units, which also
works between ReLU and gated FFNs.
"""

from __future__ import annotations

import numpy as np

from hubport.crossmap.ffnfit import FfnMods, FitInputs, ffn_weights, hidden
from hubport.crossmap.maps import MapBook, NeedsTier
from hubport.crossmap.outcome import Outcome, global_layer, moved
from hubport.crossmap.probe import MIN_CARRIED, carried, fit_hidden_gain, held_out, warn_if_few
from hubport.hosts import FFN_IN_PROJS as FFN_IN
from hubport.keys import parse_key

DIAGONAL_TOLERANCE = 1e-4


def conjugate_gain(P: np.ndarray, P_inv: np.ndarray, gain: np.ndarray) -> tuple[np.ndarray, float]:
    """(target gain, off-diagonal residual) of P diag(gain - 1) P^+; target spaces nothing maps to keep 1."""
    C = P @ np.diag(gain - 1.0) @ P_inv
    diag = np.diag(C).copy()
    residual = float(np.linalg.norm(C - np.diag(diag)) / max(float(np.linalg.norm(C)), 1e-300))
    return 1.0 + diag, residual


class Ia3Mapper:
    def __init__(self, library: str, method: dict, tensors: dict[str, np.ndarray], maps: MapBook) -> None:
        self.library, self.method, self.t, self.maps = library, method, tensors, maps
        self.out = Outcome()
        self.scale = float(method.get("alpha", 1)) / float(method.get("r", 1)) if library != "peft" else 1.0
        self.ff = set(method.get("feedforward_modules") or []) if library == "peft" else set()

    def gain(self, key: str) -> np.ndarray:
        return self.t[key].reshape(-1) * self.scale

    def space(self, key: str) -> str:
        """'head', 'hidden' (FFN units after the activation), 'pre' (wi / wi_0 outputs, before it) or
        'residual' (o / wo outputs)."""
        proj = parse_key(key).slot.proj
        if proj in ("q", "k", "v"):
            return "head"
        if proj in ("o", "wo"):
            return "hidden" if proj in self.ff else "residual"
        return "hidden" if proj == "wi_1" else "pre"

    def run(self) -> Outcome:
        ffn: dict[tuple[str, int], list[str]] = {}
        for key in sorted(self.t):
            slot = parse_key(key).slot
            if slot is None or slot.proj is None:
                self.out.refuse([key], "hubport has no cross-host rule for this IA3 tensor")
            elif self.space(key) in ("hidden", "pre") and self.maps.tier == "probe":
                ffn.setdefault((slot.stack, slot.block), []).append(key)
            else:
                self._one(key)
        for (stack, block), keys in sorted(ffn.items()):
            self._fit(stack, block, keys)
        self._fill_and_config()
        return self.out

    def _one(self, key: str) -> None:
        slot = parse_key(key).slot
        try:
            tb = self.maps.block(slot.stack, slot.block)
            if tb is None and np.allclose(self.gain(key), 1.0, rtol=0, atol=1e-12):
                return  # an identity gain on a layer the target lacks: nothing to carry
            if tb is None:
                raise NeedsTier(None, f"{slot.stack} block {slot.block} has no counterpart on the shallower target")
            P, P_inv, what = self._map(key)
            gain, residual = conjugate_gain(P, P_inv, self.gain(key))
        except NeedsTier as exc:
            self.out.refuse([key], exc)
            return
        self.out.measures[key] = residual
        if residual > DIAGONAL_TOLERANCE:
            self.out.refuse([key], f"cannot be carried: IA3 on {slot.proj} under a {what} is not a gain on the "
                                   f"target (off-diagonal residual {residual:.3g}; a diagonal re-fit does worse "
                                   "than dropping it)")
            return
        shape = (1, len(gain)) if self.t[key].shape[0] == 1 else (len(gain), 1)
        self.out.put(moved(key, tb), (gain / self.scale).reshape(shape), [key])

    def _map(self, key: str) -> tuple[np.ndarray, np.ndarray, str]:
        slot, space = parse_key(key).slot, self.space(key)
        if space == "head":
            P = self.maps.attention(slot.stack, slot.block, slot.kind).P[slot.proj]
            return P, np.linalg.pinv(P), "dense within-head map" if slot.proj != "q" else "within-head map"
        if space == "residual":
            W = self.maps.writer(slot.stack, slot.block)
            return W, np.linalg.pinv(W), "residual map (a rotation)"
        nm = self.maps.neurons(slot.stack, slot.block)
        T = nm.matrix(slot.proj != "wi_0")
        return T, T.T if slot.proj == "wi_0" else nm.inverse(), "neuron map"

    def _fit(self, stack: str, block: int, keys: list[str]) -> None:
        """Closed-form target hidden gain reproducing the source FFN's change (any FFN types)."""
        try:
            tb = self.maps.block(stack, block)
            if tb is None:
                raise NeedsTier(None, f"{stack} block {block} has no counterpart on the shallower target")
            m, probe = self.maps, self.maps.probe
            fit = FitInputs(ffn_weights(m.src, stack, block), ffn_weights(m.tgt, stack, tb),
                            probe.inputs("s", stack, block), probe.inputs("t", stack, tb), m.writer(stack, block))
            mods = FfnMods()
            for key in keys:
                proj = parse_key(key).slot.proj
                if self.space(key) == "hidden" and proj == "wo":
                    mods.hidden = self.gain(key)
                else:
                    mods.gains[proj] = self.gain(key)
            y, a_t = fit.wanted(mods), hidden(fit.W_t, fit.u_t)
            warn_if_few(a_t.shape[0], a_t.shape[1], f"{stack}.block.{block} IA3 gain fit", self.out.notes)
            wo = fit.W_t["wo"]
            rows, test = held_out(len(y))
            quality = carried(y[test], (a_t[test] * fit_hidden_gain(a_t[rows], wo, y[rows])) @ wo.T)
            u = fit_hidden_gain(a_t, wo, y)
            if quality <= MIN_CARRIED:
                raise NeedsTier(None, f"no gain on the target's FFN units changes {stack}.block.{block}'s FFN output "
                                      f"closer to the source's than dropping it (held-out carried {quality:.2f})")
        except NeedsTier as exc:
            self.out.refuse(keys, exc)
            return
        self.out.measures[f"{stack}.block.{block}.ffn_gain_carried"] = quality
        target = self._gain_key(keys[0], tb)
        if parse_key(target).slot.proj == "wi" and np.any(1.0 + u < 0):
            self.out.notes.append(f"{stack}.block.{block}: negative fitted gains on a ReLU wi are not exact")
        shape = (1, len(u)) if parse_key(target).slot.proj == "wo" else (len(u), 1)
        self.out.put(target, ((1.0 + u) / self.scale).reshape(shape), keys)

    def _gain_key(self, key: str, tb: int) -> str:
        """Where the target keeps a hidden gain: peft `wo` (feed-forward) unless the source used wi_1 on a gated
        target; adapters `wi_1` (gated) or `wi` (ReLU, the gain acts before the ReLU: exact for l >= 0)."""
        proj = parse_key(key).slot.proj
        if self.library == "peft":
            target = "wi_1" if proj == "wi_1" and self.maps.tgt.spec.gated else "wo"
            if target == "wo":
                self.ff.add("wo")
            return moved(key, tb, proj=target)
        return moved(key, tb, proj="wi_1" if self.maps.tgt.spec.gated else "wi")

    def _fill_and_config(self) -> None:
        spec, empty = self.maps.tgt.spec, set()
        templates = {parse_key(k).slot.path(any_block=True): k for k in self.out.tensors}
        for key in templates.values():
            stack = parse_key(key).slot.stack
            for b in range(spec.layers(stack)):
                if moved(key, b) not in self.out.tensors:
                    empty.add(global_layer(stack, b, spec.num_layers))
                    if self.library == "peft":
                        self.out.tensors[moved(key, b)] = np.ones(self.out.tensors[key].shape)
        projs = sorted({parse_key(k).slot.proj for k in self.out.tensors})
        if self.library == "peft":
            self.out.config["target_modules"] = projs
            self.out.config["feedforward_modules"] = sorted(self.ff & set(projs))
            return
        self.out.config["leave_out"] = sorted(empty)
        self.out.config["attn_matrices"] = [p for p in projs if p in ("q", "k", "v")]
        self.out.config["intermediate_lora"] = any(p in FFN_IN for p in projs)
        self.out.config["output_lora"] = "wo" in projs


def map_ia3(library: str, method: dict, tensors: dict[str, np.ndarray], maps: MapBook) -> Outcome:
    return Ia3Mapper(library, method, tensors, maps).run()
