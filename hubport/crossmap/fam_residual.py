"""Modules that live in the residual stream only: bottleneck adapters, Compacter, prompt tuning (the `embed` tier).

An adapter reads a sublayer's output and writes back to the residual; its bottleneck and nonlinearity act in the
adapter's own basis, which needs no map. With h_t = s M h_s: W_down,t = W_down,s M^T / s, W_up,t = s M W_up,s
(biases alike), exactly. Compacter's PHM weights are mapped densely and projected back onto the PHM family with the
rule fixed (closed-form least squares); the projection residual is reported (zero when M = I_n (x) M').
Soft prompts are input embeddings: P_t = s P_s M^T.
"""

from __future__ import annotations

import numpy as np

from hubport.crossmap.maps import MapBook, NeedsTier
from hubport.crossmap.outcome import Outcome, global_layer, moved
from hubport.keys import parse_key

READS = ("adapter_down.0.weight", "gate.weight")
WRITES = ("adapter_up.weight", "adapter_up.bias")
KEEPS = ("adapter_down.0.bias", "gate.bias", "adapter_down.0.b", "adapter_down.0.phm_rule", "adapter_up.phm_rule")


def leaf(key: str) -> str:
    parts = parse_key(key).tail.split(".")
    return ".".join(parts[parts.index("adapters") + 2:]) if "adapters" in parts else parse_key(key).tail


def kron_sum(rule: np.ndarray, W: np.ndarray) -> np.ndarray:
    """H = sum_i kron(rule_i, W_i) (adapters' PHMLayer, y = x H + b)."""
    return sum(np.kron(rule[i], W[i]) for i in range(rule.shape[0]))


def project_phm(H: np.ndarray, rule: np.ndarray, rank: int | None) -> tuple[np.ndarray, float]:
    """The W_i [n, in/n, out/n] (rank-limited when factorised) whose kron sum with the fixed rule is nearest H."""
    n = rule.shape[0]
    rows, cols = H.shape[0] // n, H.shape[1] // n
    Hr = H.reshape(n, rows, n, cols).transpose(0, 2, 1, 3).reshape(n * n, rows * cols)
    W = np.linalg.lstsq(rule.reshape(n, n * n).T, Hr, rcond=None)[0].reshape(n, rows, cols)
    if rank is not None:
        U, S, Vt = np.linalg.svd(W, full_matrices=False)
        W = (U[:, :, :rank] * S[:, None, :rank]) @ Vt[:, :rank]
    residual = float(np.linalg.norm(H - kron_sum(rule, W)) / max(float(np.linalg.norm(H)), 1e-300))
    return W, residual


def refactor(W: np.ndarray, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Factors of W [n, a, b] at the source's rank, keeping one source factor where that is exact (so maps that
    act on one side only, and A -> B -> A, leave the other factor as it was); else an SVD split."""
    for keep_right in (True, False):
        if (right.shape[-1] if keep_right else left.shape[-2]) != (W.shape[-1] if keep_right else W.shape[-2]):
            continue
        if keep_right:
            new_left, new_right = W @ np.linalg.pinv(right), right
        else:
            new_left, new_right = left, np.linalg.pinv(left) @ W
        if np.linalg.norm(new_left @ new_right - W) <= 1e-10 * max(float(np.linalg.norm(W)), 1e-300):
            return new_left, new_right
    rank = left.shape[-1]
    U, S, Vt = np.linalg.svd(W, full_matrices=False)
    return U[:, :, :rank] * S[:, None, :rank], Vt[:, :rank]


class ResidualMapper:
    def __init__(self, family: str, library: str, method: dict, tensors: dict[str, np.ndarray],
                 maps: MapBook) -> None:
        self.family, self.library, self.method, self.t, self.maps = family, library, method, tensors, maps
        self.out = Outcome()

    def run(self) -> Outcome:
        if self.family == "prompt_tuning":
            for key in self.t:
                self.out.put(key, self.t[key] @ self.maps.embedding_writer().T, [key])
            return self.out
        sites: dict[tuple, list[str]] = {}
        for key in sorted(self.t):
            slot = parse_key(key).slot
            if slot is None or "adapters" not in key:
                self.out.refuse([key], "hubport has no cross-host rule for this adapter tensor")
            else:
                sites.setdefault((slot.stack, slot.block, slot.layer), []).append(key)
        for site, keys in sorted(sites.items()):
            self._site(site, keys)
        self._config()
        return self.out

    def _site(self, site: tuple, keys: list[str]) -> None:
        stack, block, _ = site
        norms = [k for k in keys if leaf(k).startswith("adapter_norm")]
        if norms:
            self.out.refuse(keys, "cannot be carried: the adapter's LayerNorm subtracts the mean along axes the "
                                  "residual map rotates")
            return
        try:
            tb = self.maps.block(stack, block)
            up = next((k for k in keys if leaf(k) in ("adapter_up.weight", "adapter_up.b")), None)
            if tb is None and up is not None and np.any(self.t[up]):
                raise NeedsTier(None, f"{stack} block {block} has no counterpart on the shallower target")
            if tb is None:
                return
            W = self.maps.writer(stack, block)
            mapped = self._phm(keys, W) if self.family == "compacter" else self._dense(keys, W)
        except NeedsTier as exc:
            self.out.refuse(keys, exc)
            return
        for key, value in mapped.items():
            self.out.put(moved(key, tb), value, [key])

    def _dense(self, keys: list[str], W: np.ndarray) -> dict[str, np.ndarray]:
        W_inv = np.linalg.pinv(W)
        out = {}
        for key in keys:
            name, x = leaf(key), self.t[key]
            out[key] = x @ W_inv if name in READS else (W @ x if name in WRITES else x)
        return out

    def _phm(self, keys: list[str], W: np.ndarray) -> dict[str, np.ndarray]:
        by_leaf = {leaf(k): k for k in keys}
        out = {k: self.t[k] for k in keys}
        for side in ("adapter_down.0", "adapter_up"):
            rule_key = by_leaf.get(f"{side}.phm_rule")
            if rule_key is None:
                raise NeedsTier(None, "the PHM rule was not saved (shared_phm_rule): the layer's weights are unknown")
            rule, factorised = self.t[rule_key], f"{side}.W_left" in by_leaf
            Ws = self.t[by_leaf[f"{side}.W_left"]] @ self.t[by_leaf[f"{side}.W_right"]] if factorised \
                else self.t[by_leaf[f"{side}.W"]]
            H = kron_sum(rule, Ws)
            H = np.linalg.pinv(W).T @ H if side == "adapter_down.0" else H @ W.T
            rank = self.t[by_leaf[f"{side}.W_left"]].shape[-1] if factorised else None
            Wt, residual = project_phm(H, rule, rank)
            self.out.measures[f"{rule_key.rsplit('.', 1)[0]}.projection_residual"] = residual
            if factorised:
                left, right = self.t[by_leaf[f"{side}.W_left"]], self.t[by_leaf[f"{side}.W_right"]]
                out[by_leaf[f"{side}.W_left"]], out[by_leaf[f"{side}.W_right"]] = refactor(Wt, left, right)
            else:
                out[by_leaf[f"{side}.W"]] = Wt
            if f"{side}.b" in by_leaf and side == "adapter_up":
                out[by_leaf[f"{side}.b"]] = W @ self.t[by_leaf[f"{side}.b"]]
        return out

    def _config(self) -> None:
        """Keep the bottleneck width (rf = d_t / bn) and leave out target layers nothing maps to."""
        spec = self.maps.tgt.spec
        downs = [v for k, v in self.out.tensors.items() if leaf(k) in ("adapter_down.0.weight", "adapter_down.0.b")]
        rf = self.method.get("reduction_factor")
        if downs and isinstance(rf, (int, float)):
            bn = downs[0].shape[0]
            width = float(spec.d_model) / bn
            while int(spec.d_model // width) != bn:
                width = float(np.nextafter(width, 0.0))
            self.out.config["reduction_factor"] = int(width) if float(width).is_integer() else width
        used = {(parse_key(k).slot.stack, parse_key(k).slot.block) for k in self.out.tensors}
        empty = {global_layer(s, b, spec.num_layers) for s in ("encoder", "decoder")
                 for b in range(spec.layers(s)) if (s, b) not in used}
        self.out.config["leave_out"] = sorted(empty)


def map_residual(family: str, library: str, method: dict, tensors: dict[str, np.ndarray], maps: MapBook) -> Outcome:
    return ResidualMapper(family, library, method, tensors, maps).run()
