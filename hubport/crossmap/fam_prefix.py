"""Prefix tuning across hosts by the virtual-residual route: K_t = W_k,t N^+ W_k,s^+ K_s.

A prefix key is read back to the (virtual) residual it would be projected from, carried to the target's residual
and projected by the target's own W_k (likewise values); no head matching is needed. peft stores the final
prefix [n, L * 2 * inner] for decoder self- and cross-attention, where one stored entry feeds two attention slots
(its layout repeats the entries); each target entry is the mean of what its slots ask for, and the disagreement
is reported. adapters stores an MLP (or a flat vector) per location; its output rows are mapped, so the MLP stays
an MLP. Target layers no source layer maps to repeat the nearest mapped layer.
"""

from __future__ import annotations

import numpy as np

from hubport.crossmap.maps import MapBook, NeedsTier
from hubport.crossmap.outcome import Outcome, moved, rel
from hubport.keys import parse_key

LOCATIONS = {"encoder_prefix": ("encoder", "self"), "self_prefix": ("decoder", "self"),
             "cross_prefix": ("decoder", "cross")}


def peft_slots(layers: int, submodules: int) -> dict[int, list[tuple[int, str, str]]]:
    """Stored entry -> the (decoder layer, 'self', 'k'|'v') slots it feeds. peft's get_prompt repeats the entries
    `submodules` times and hands layer l the group [2 s l, 2 s l + 2 s) of that list; T5 uses the group's first
    two (self-attention key and value) and leaves the cross-attention pair unused (checked on transformers 4.57)."""
    group, out = 2 * submodules, {}
    for layer in range(layers):
        for p in range(2):
            out.setdefault((group * layer + p) % (2 * layers), []).append((layer, "self", "kv"[p]))
    return out


def nearest_source(layer_map: tuple[int | None, ...], target_layer: int) -> int:
    """The source layer whose target is nearest to `target_layer` (exact when one maps there)."""
    mapped = [(abs(t - target_layer), s) for s, t in enumerate(layer_map) if t is not None]
    if not mapped:
        raise NeedsTier(None, "no source layer maps onto the target")
    return min(mapped)[1]


class PrefixMapper:
    def __init__(self, library: str, method: dict, tensors: dict[str, np.ndarray], maps: MapBook) -> None:
        self.library, self.method, self.t, self.maps = library, method, tensors, maps
        self.out = Outcome()

    def head_map(self, stack: str, target_layer: int, kind: str, kv: str) -> tuple[np.ndarray, int]:
        source = nearest_source(self.maps.layer_map(stack), target_layer)
        return self.maps.virtual(stack, source, kind, kv), source

    def run(self) -> Outcome:
        try:
            self._peft() if self.library == "peft" else self._adapters()
        except NeedsTier as exc:
            self.out.refuse(sorted(self.t), exc)
        return self.out

    def _peft(self) -> None:
        src, tgt = self.maps.src.spec, self.maps.tgt.spec
        subs = int(self.method.get("num_transformer_submodules", 2))
        Ls, Lt = int(self.method.get("num_layers", src.num_layers)), tgt.num_layers
        E = self.t["prompt_embeddings"]
        n = E.shape[0]
        Es = E.reshape(n, 2 * Ls, src.inner_dim)
        slot_entry = {slot: j for j, slots in peft_slots(Ls, subs).items() for slot in slots}
        Et = np.zeros((n, 2 * Lt, tgt.inner_dim))
        worst = 0.0
        for j, slots in peft_slots(Lt, subs).items():
            asks = []
            for layer, kind, kv in slots:
                if layer >= tgt.num_decoder_layers:
                    continue
                P, s = self.head_map("decoder", layer, kind, kv)
                asks.append(Es[:, slot_entry[s, kind, kv]] @ P.T)
            Et[:, j] = np.mean(asks, axis=0)
            worst = max([worst] + [rel(a, Et[:, j]) for a in asks])
        self.out.measures["prompt_embeddings.slot_disagreement"] = worst
        if worst > 1e-6:
            self.out.notes.append(f"peft stores one prefix entry for two attention slots; the target's slots ask for "
                                  f"different values (relative disagreement {worst:.3g}), so each entry is their mean")
        self.out.put("prompt_embeddings", Et.reshape(n, -1), ["prompt_embeddings"])
        self.out.config["encoder_hidden_size"] = tgt.d_model

    def _adapters(self) -> None:
        canonical: dict[tuple[str, str], str] = {}
        for key in sorted(self.t, key=lambda k: parse_key(k).slot is not None):
            parts = parse_key(key).tail.split(".")
            loc = next((p for p in parts if p in LOCATIONS), None)
            if loc is None:
                self.out.refuse([key], "hubport has no cross-host rule for this prefix tensor")
                continue
            canonical.setdefault((loc, ".".join(parts[parts.index(loc) + 1:])), key)
        values = {}
        for (loc, leaf), key in canonical.items():
            values[loc, leaf] = self._rows(loc, leaf, self.t[key])
        for key in self.t:
            parsed = parse_key(key)
            parts = parsed.tail.split(".")
            loc = next((p for p in parts if p in LOCATIONS), None)
            if loc is None:
                continue
            value = values[loc, ".".join(parts[parts.index(loc) + 1:])]
            if parsed.slot is None:
                self.out.put(key, value, [key])
                continue
            for b in range(self.maps.tgt.spec.layers(parsed.slot.stack)):
                self.out.put(moved(key, b), value, [key])

    def _rows(self, loc: str, leaf: str, x: np.ndarray) -> np.ndarray:
        """Map the per-layer key/value rows of one location's output (MLP last layer, or the flat prefix); the
        MLP's input side (`wte`, `control_trans.0`) is d_model wide but in its own basis: re-based, not mapped."""
        if leaf in ("wte.weight", "control_trans.0.weight"):
            return x @ self._rebase(loc).T
        if leaf not in ("control_trans.2.weight", "control_trans.2.bias", "control_trans"):
            return x
        stack, kind = LOCATIONS[loc]
        src, tgt = self.maps.src.spec, self.maps.tgt.spec
        Ls, Lt = src.layers(stack), tgt.layers(stack)
        if leaf == "control_trans":
            length = int(self.method.get("prefix_length", 30))
            rows = x.reshape(length, Ls, 2, src.inner_dim).transpose(1, 2, 3, 0)
        else:
            rows = x.reshape(Ls, 2, src.inner_dim, -1)
        out = np.zeros((Lt, 2, tgt.inner_dim, rows.shape[-1]))
        for t in range(Lt):
            for i, kv in enumerate(("k", "v")):
                P, s = self.head_map(stack, t, kind, kv)
                out[t, i] = P @ rows[s, i]
        if leaf == "control_trans":
            return out.transpose(3, 0, 1, 2).reshape(-1)
        return out.reshape(Lt * 2 * tgt.inner_dim, *x.shape[1:])


    def _rebase(self, loc: str) -> np.ndarray:
        """Q [d_t, d_s] with wte Q^T Q c0^T = wte c0^T: zero-padding (or dropping all-zero columns), else the
        row space of the source's `wte` in d_t columns. Padding first keeps A -> B -> A exact."""
        d_t = self.maps.tgt.spec.d_model
        wte = next(self.t[k] for k in sorted(self.t) if loc in k and k.endswith("wte.weight"))
        Q = np.eye(d_t, wte.shape[1])
        if d_t >= wte.shape[1] or not np.any(wte[:, d_t:]):
            return Q
        _, S, Vt = np.linalg.svd(wte, full_matrices=False)
        keep = Vt[: min(int((S > S.max() * 1e-12).sum()), d_t)]
        Q[:] = 0.0
        Q[: keep.shape[0]] = keep
        return Q


def map_prefix(library: str, method: dict, tensors: dict[str, np.ndarray], maps: MapBook) -> Outcome:
    return PrefixMapper(library, method, tensors, maps).run()
