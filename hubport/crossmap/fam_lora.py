"""LoRA across hosts. The factors are mapped, never the product: rank r and alpha/r stay as they were.

    reader (q, k, v, wi*):  A_t = A_s N          B_t = P B_s (head map) | T B_s (neuron map)
    writer (o, wo):         A_t = A_s Q_o | T^+  B_t = s M B_s
`probe` adds a reduced-rank fit of a LoRA on the target's `wo` to the source FFN's effect: the only way across
ReLU and gated FFNs. Target layers no source layer maps to get a LoRA with no effect (peft: B = 0 and A drawn as
peft draws it; adapters: `leave_out`).
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

from hubport.crossmap.ffnfit import FfnMods, FitInputs, ffn_weights, hidden
from hubport.crossmap.maps import MapBook, NeedsTier
from hubport.crossmap.outcome import Outcome, global_layer, moved
from hubport.crossmap.probe import MIN_CARRIED, held_out, reduced_rank, warn_if_few
from hubport.crossmap.probe import carried as carried_fraction
from hubport.hosts import FFN_IN_PROJS as FFN_IN
from hubport.hosts import FFN_INTERIOR_PROJS
from hubport.keys import parse_key


def scaling(library: str, method: dict, module_path: str, rank: int) -> float:
    """alpha / r as the library computes it (peft: rank/alpha patterns and rsLoRA)."""
    if library != "peft":
        return float(method.get("alpha", 8)) / rank
    alpha = float(method.get("lora_alpha", 8))
    for pattern, value in (method.get("alpha_pattern") or {}).items():
        if re.fullmatch(rf"(.*\.)?{pattern}", module_path):
            alpha = float(value)
    return alpha / (np.sqrt(rank) if method.get("use_rslora") else rank)


def groups(tensors: dict[str, np.ndarray]) -> tuple[dict[str, dict], list[str]]:
    """{slot path: {"A": key, "B": key, "slot": Slot}} and the keys hubport has no LoRA rule for."""
    out: dict[str, dict] = {}
    other = []
    for key in sorted(tensors):
        parsed = parse_key(key)
        parts = parsed.tail.split(".")
        role = "A" if "lora_A" in parts else ("B" if "lora_B" in parts else None)
        if parsed.slot is None or parsed.slot.proj is None or role is None:
            other.append(key)
            continue
        entry = out.setdefault(parsed.slot.path(), {"slot": parsed.slot})
        entry[role] = key
    return out, other


def _attention(maps: MapBook, slot, A: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    am = maps.attention(slot.stack, slot.block, slot.kind)
    if slot.proj == "o":
        return A @ am.Q_o, maps.writer(slot.stack, slot.block) @ B
    N = maps.reader(slot.stack, slot.block, slot.layer, slot.kind == "cross" and slot.proj in ("k", "v"))
    return A @ N, am.P[slot.proj] @ B


def _by_neurons(maps: MapBook, slot, A: np.ndarray, B: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    nm = maps.neurons(slot.stack, slot.block)
    if slot.proj == "wo":
        return A @ nm.inverse(), maps.writer(slot.stack, slot.block) @ B
    return A @ maps.reader(slot.stack, slot.block, slot.layer), nm.matrix(slot.proj != "wi_0") @ B


class LoraMapper:
    """Maps one LoRA module; `run()` fills an Outcome."""

    def __init__(self, library: str, method: dict, tensors: dict[str, np.ndarray], maps: MapBook) -> None:
        self.library, self.method, self.t, self.maps = library, method, tensors, maps
        self.out = Outcome()

    def scale(self, g: dict) -> float:
        return scaling(self.library, self.method, g["slot"].path(), self.t[g["A"]].shape[0])

    def run(self) -> Outcome:
        found, other = groups(self.t)
        self.out.refuse(other, "hubport has no cross-host rule for this LoRA tensor (DoRA magnitudes, embeddings)")
        ffn: dict[tuple[str, int], dict[str, dict]] = {}
        for g in found.values():
            slot = g["slot"]
            if "A" not in g or "B" not in g:
                self.out.refuse([g.get("A") or g["B"]], "a LoRA factor without its partner")
            elif slot.proj in FFN_INTERIOR_PROJS:
                ffn.setdefault((slot.stack, slot.block), {})[slot.proj] = g
            else:
                self._carry(g, _attention)
        for (stack, block), pieces in sorted(ffn.items()):
            self._ffn(stack, block, pieces)
        self._fill_unmapped()
        self._config()
        return self.out

    def _target_block(self, g: dict) -> int | None:
        """The target block, or the one an unmapped layer's LoRA merges into (rank 2r there; peft only)."""
        stack, block = g["slot"].stack, g["slot"].block
        tb = self.maps.block(stack, block)
        if tb is not None or not np.any(self.t[g["B"]]):
            return tb
        if self.library != "peft":
            raise NeedsTier(None, f"{stack} block {block} has no counterpart on the shallower target, and merging "
                                  "it into a neighbour needs rank 2r there, which adapters' one-rank LoRA cannot "
                                  f"hold (|B A| = {np.linalg.norm(self.t[g['B']] @ self.t[g['A']]):.3g})")
        tb = self.maps.merge_into(stack, block)
        self.out.notes.append(f"{stack} block {block} has no counterpart on the target: its LoRA is merged into "
                              f"target block {tb} (rank adds up; first-order: h + f1(h) + f2(h))")
        return tb

    def _carry(self, g: dict, how) -> None:
        try:
            tb = self._target_block(g)
            if tb is None:
                self.out.notes.append(f"{g['slot'].path()}: B = 0 on a layer the target lacks; nothing to carry")
                return
            A, B = how(self.maps, g["slot"], self.t[g["A"]], self.t[g["B"]])
        except NeedsTier as exc:
            self.out.refuse([g["A"], g["B"]], exc)
            return
        a_key, b_key = moved(g["A"], tb), moved(g["B"], tb)
        if a_key in self.out.tensors:  # a merge: stack the factors, rank adds up, alpha/r kept
            A, B = np.vstack([self.out.tensors[a_key], A]), np.hstack([self.out.tensors[b_key], B])
            path, rank = parse_key(a_key).slot.path(), A.shape[0]
            self.out.config.setdefault("rank_pattern", {})[path] = rank
            self.out.config.setdefault("alpha_pattern", {})[path] = \
                self.scale(g) * (np.sqrt(rank) if self.method.get("use_rslora") else rank)
        self.out.put(a_key, A, [g["A"]])
        self.out.put(b_key, B, [g["B"]])

    def _ffn(self, stack: str, block: int, pieces: dict[str, dict]) -> None:
        cross_variant = self.maps.src.spec.gated != self.maps.tgt.spec.gated
        if self.maps.tier != "probe":
            for g in pieces.values():
                self._carry(g, _by_neurons)
            return
        carried = {} if cross_variant else {p: g for p, g in pieces.items() if p in FFN_IN}
        for g in carried.values():
            self._carry(g, _by_neurons)
        carried = {p: g for p, g in carried.items() if g["A"] in self.out.kept}
        fitted = {p: g for p, g in pieces.items() if p not in carried and g["A"] not in self.out.refused}
        if fitted:
            self._fit_wo(stack, block, pieces, carried, fitted)

    def _fit_wo(self, stack: str, block: int, pieces: dict, carried: dict, fitted: dict) -> None:
        """Reduced-rank regression of a target `wo` LoRA to what the carried pieces leave of the source effect."""
        keys = [k for g in fitted.values() for k in (g["A"], g["B"])]
        try:
            tb = self.maps.block(stack, block)
            if tb is None:
                raise NeedsTier(None, f"{stack} block {block} has no counterpart on the shallower target")
            probe, maps = self.maps.probe, self.maps
            fit = FitInputs(ffn_weights(maps.src, stack, block), ffn_weights(maps.tgt, stack, tb),
                            probe.inputs("s", stack, block), probe.inputs("t", stack, tb), maps.writer(stack, block))
            src = FfnMods({p: self.scale(g) * self.t[g["B"]] @ self.t[g["A"]] for p, g in pieces.items()})
            tgt = FfnMods({p: self.scale(g) * self.out.tensors[moved(g["B"], tb)] @ self.out.tensors[
                moved(g["A"], tb)] for p, g in carried.items()})
            a_base, a_mod = hidden(fit.W_t, fit.u_t), hidden(fit.W_t, fit.u_t, tgt)
            y = fit.wanted(src) - (a_mod - a_base) @ fit.W_t["wo"].T
            lead = fitted.get("wo") or next(iter(fitted.values()))
            rank = self.t[lead["A"]].shape[0]
            warn_if_few(fit.u_t.shape[0], fit.W_t["wo"].shape[1], f"{stack}.block.{block} wo LoRA fit",
                        self.out.notes)
            fit_rows, test_rows = held_out(len(y))
            B, A = reduced_rank(a_mod[fit_rows], y[fit_rows], rank)
            quality = carried_fraction(y[test_rows], a_mod[test_rows] @ (B @ A).T)
            B, A = reduced_rank(a_mod, y, rank)
            if quality <= MIN_CARRIED:
                raise NeedsTier(None, f"a rank-{rank} LoRA on the target's wo changes {stack}.block.{block}'s FFN "
                                      f"output no closer to the source's than dropping it (held-out carried "
                                      f"{quality:.2f})")
        except NeedsTier as exc:
            self.out.refuse(keys, exc)
            return
        self.out.measures[f"{stack}.block.{block}.wo_fit_carried"] = quality
        self.out.put(moved(lead["A"], tb, proj="wo"), A / self.scale(lead), [g["A"] for g in fitted.values()])
        self.out.put(moved(lead["B"], tb, proj="wo"), B, [g["B"] for g in fitted.values()])
        if quality < 0.9:
            self.out.notes.append(f"{stack}.block.{block}: the wo LoRA fit carries {quality:.2f} of the source "
                                  "FFN effect on held-out probe tokens")

    def _fill_unmapped(self) -> None:
        """Target layers no source layer reached: an inert LoRA (peft) or leave_out (adapters)."""
        spec = self.maps.tgt.spec
        templates = {}
        for target in self.out.tensors:
            parsed = parse_key(target)
            templates.setdefault(parsed.slot.path(any_block=True), {})[parsed.tail] = target
        empty = set()
        for path, tails in templates.items():
            stack = path.split(".")[0]
            for b in range(spec.layers(stack)):
                if any(moved(k, b) in self.out.tensors for k in tails.values()):
                    continue
                empty.add(global_layer(stack, b, spec.num_layers))
                if self.library == "peft":
                    self._inert(tails, b)
        if self.library != "peft":
            self.out.config["leave_out"] = sorted(empty)

    def _inert(self, tails: dict[str, str], block: int) -> None:
        a_key = next(k for t, k in tails.items() if "lora_A" in t)
        b_key = next(k for t, k in tails.items() if "lora_B" in t)
        width = self.out.tensors[a_key].shape[1]
        rank = int(self.method.get("r", self.out.tensors[a_key].shape[0]))  # merged layers carry their own rank
        seed = int.from_bytes(hashlib.sha256(moved(a_key, block).encode()).digest()[:4], "little")
        rng = np.random.default_rng(seed)
        bound = 1.0 / np.sqrt(width)  # peft: kaiming_uniform_(a=sqrt(5))
        self.out.tensors[moved(a_key, block)] = rng.uniform(-bound, bound, (rank, width))
        self.out.tensors[moved(b_key, block)] = np.zeros((self.out.tensors[b_key].shape[0], rank))

    def _config(self) -> None:
        projs = {parse_key(k).slot.proj for k in self.out.tensors}
        if self.library == "peft":
            self.out.config["target_modules"] = sorted(projs)
            return
        self.out.config["attn_matrices"] = sorted(projs & {"q", "k", "v"})
        self.out.config["intermediate_lora"] = bool(projs & set(FFN_IN))
        self.out.config["output_lora"] = "wo" in projs


def map_lora(library: str, method: dict, tensors: dict[str, np.ndarray], maps: MapBook) -> Outcome:
    return LoraMapper(library, method, tensors, maps).run()
