"""FFN neuron maps between two FFNs of the same kind (ReLU with ReLU, gated with gated), from weights only.

A neuron is what it reads (its `wi` row; `wi_0` and `wi_1` rows when gated) and what it writes (its `wo` column).
In comparable residual coordinates, cosines of both pair neurons (Hungarian); a least-squares scale per pair
absorbs the positive rescaling ReLU allows (and the up-projection's scale in gated FFNs). The hidden activation
then maps as a_t = T a_s with T a scaled permutation, so LoRA B rows, LoRA A columns and IA3 gains follow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment


@dataclass(frozen=True)
class NeuronMap:
    """perm[i]: the target neuron of source neuron i (-1 if none); scale[i]: a_t[perm[i]] = scale[i] a_s[i]."""

    perm: np.ndarray
    scale: np.ndarray
    f_t: int
    score: float
    residual: float

    def matrix(self, scaled: bool = True) -> np.ndarray:
        """T [f_t, f_s]: the hidden map (scaled), or the gate's map (a plain permutation)."""
        T = np.zeros((self.f_t, len(self.perm)))
        ok = self.perm >= 0
        T[self.perm[ok], np.flatnonzero(ok)] = self.scale[ok] if scaled else 1.0
        return T

    def inverse(self) -> np.ndarray:
        """T^+ [f_s, f_t]: maps target hidden activations back (unmatched target neurons give 0)."""
        Ti = np.zeros((len(self.perm), self.f_t))
        ok = (self.perm >= 0) & (self.scale != 0)
        Ti[np.flatnonzero(ok), self.perm[ok]] = 1.0 / self.scale[ok]
        return Ti

    def to_dict(self) -> dict:
        return {"matched": int((self.perm >= 0).sum()), "score": self.score, "residual": self.residual}


def _row_cos(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Cosines of all row pairs, in float32: they rank candidates, they do not enter a map."""
    A, B = A.astype(np.float32), B.astype(np.float32)
    na = np.linalg.norm(A, axis=1)[:, None]
    nb = np.linalg.norm(B, axis=1)[None, :]
    dots = A @ B.T
    return np.divide(dots, na * nb, out=np.zeros_like(dots), where=(na * nb) > 1e-30)


def match_neurons(reads_s: dict[str, np.ndarray], reads_t: dict[str, np.ndarray], wo_s: np.ndarray,
                  wo_t: np.ndarray) -> NeuronMap:
    """reads_*: input projections (`wi`, or `wi_0` and `wi_1`) [f, d_t] in the target's input coordinates
    (source rows times N); wo_*: [d_t, f] (source behind the writer map)."""
    scale_proj = "wi_1" if "wi_1" in reads_s else "wi"
    score = np.abs(_row_cos(wo_s.T, wo_t.T))
    for proj in reads_s:
        cos = _row_cos(reads_s[proj], reads_t[proj])
        score = score + (cos if proj in ("wi", "wi_0") else np.abs(cos))
    rows, cols = linear_sum_assignment(-score)
    perm = np.full(reads_s[scale_proj].shape[0], -1)
    perm[rows] = cols
    src, tgt = reads_s[scale_proj][rows], reads_t[scale_proj][cols]
    scale = np.zeros(len(perm))
    scale[rows] = np.einsum("ij,ij->i", src, tgt) / np.maximum(np.einsum("ij,ij->i", src, src), 1e-300)
    pred = wo_s[:, rows] / np.where(scale[rows] == 0, 1.0, scale[rows])
    residual = float(np.linalg.norm(wo_t[:, cols] - pred) / max(float(np.linalg.norm(wo_t[:, cols])), 1e-300))
    n_in = len(reads_s) + 1
    return NeuronMap(perm, scale, reads_t[scale_proj].shape[0], float(score[rows, cols].mean() / n_in), residual)
