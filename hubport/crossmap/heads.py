"""Head maps between two attention sublayers, from weights only.

Heads are matched on what a head computes, not on how it is parametrised: the query-key form W_q^T W_k and the
value-output form W_o W_v are unchanged by any invertible within-head map, so their cosines (in the residual
coordinates the residual map M brings both hosts to) pair source heads with target heads (Hungarian). Least
squares against the hosts' own projections then gives the within-head maps R_q, R_k, S_v, T_o.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

PROJS = ("q", "k", "v")


@dataclass(frozen=True)
class AttentionMap:
    """Target head-space vectors are P[proj] @ source ones (q, k, v); an o LoRA's A maps as A_s @ Q_o."""

    P: dict[str, np.ndarray]
    Q_o: np.ndarray
    pairs: tuple[tuple[int, int], ...]
    score: float
    residual: float

    def to_dict(self) -> dict:
        return {"pairs": [list(p) for p in self.pairs], "score": self.score, "residual": self.residual}


@dataclass(frozen=True)
class Folded:
    """One attention sublayer's projections in comparable residual coordinates (gains folded in, M applied)."""

    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    o: np.ndarray  # [d, inner]
    dkv: int

    @property
    def heads(self) -> int:
        return self.q.shape[0] // self.dkv


def _self_forms(X: np.ndarray, Y: np.ndarray, dkv: int) -> np.ndarray:
    """<X_a^T Y_a, X_a^T Y_a>_F per head, from dkv x dkv blocks only."""
    H = X.shape[0] // dkv
    Xh, Yh = X.reshape(H, dkv, -1), Y.reshape(H, dkv, -1)
    return np.einsum("hij,hij->h", Xh @ Xh.transpose(0, 2, 1), Yh @ Yh.transpose(0, 2, 1))


def bilinear_cos(Xs: np.ndarray, Ys: np.ndarray, Xt: np.ndarray, Yt: np.ndarray, dkv_s: int,
                 dkv_t: int) -> np.ndarray:
    """cos(X_a^T Y_a, X_b^T Y_b) for every source head a and target head b, never forming d x d matrices:
    <X_a^T Y_a, X_b^T Y_b> = <X_a X_b^T, Y_a Y_b^T>."""
    Hs, Ht = Xs.shape[0] // dkv_s, Xt.shape[0] // dkv_t
    cross = ((Xs @ Xt.T) * (Ys @ Yt.T)).reshape(Hs, dkv_s, Ht, dkv_t).sum(axis=(1, 3))
    norms = np.sqrt(np.maximum(_self_forms(Xs, Ys, dkv_s), 0))[:, None] * \
        np.sqrt(np.maximum(_self_forms(Xt, Yt, dkv_t), 0))[None, :]
    return np.divide(cross, norms, out=np.zeros_like(cross), where=norms > 1e-30)


def head_scores(src: Folded, tgt: Folded) -> np.ndarray:
    """[H_s, H_t]: cos of the query-key forms plus cos of the value-output forms (2 = the same head)."""
    qk = bilinear_cos(src.q, src.k, tgt.q, tgt.k, src.dkv, tgt.dkv)
    vo = bilinear_cos(src.o.T, src.v, tgt.o.T, tgt.v, src.dkv, tgt.dkv)
    return qk + vo


def match(scores: np.ndarray) -> tuple[tuple[int, int], ...]:
    """Hungarian pairs (source head, target head) maximising the total score."""
    rows, cols = linear_sum_assignment(-scores)
    return tuple((int(a), int(b)) for a, b in zip(rows, cols))


def _fit(target: np.ndarray, source: np.ndarray) -> tuple[np.ndarray, float]:
    """R with target ~ R @ source (least squares) and the relative residual."""
    R = target @ np.linalg.pinv(source)
    scale = max(float(np.linalg.norm(target)), 1e-300)
    return R, float(np.linalg.norm(target - R @ source) / scale)


def within_head_maps(mapped: dict[str, np.ndarray], target: dict[str, np.ndarray], pairs, dkv_s: int,
                     dkv_t: int, score: float) -> AttentionMap:
    """Block maps from matched pairs. `mapped`: source q/k/v already times their input maps N, and the source o
    already behind the writer map; `target`: the target's raw q/k/v [inner_t, d_t] and o [d_t, inner_t]."""
    inner_t, inner_s = target["q"].shape[0], mapped["q"].shape[0]
    P = {p: np.zeros((inner_t, inner_s)) for p in PROJS}
    Q_o = np.zeros((inner_s, inner_t))
    worst = 0.0
    for a, b in pairs:
        sa, sb = slice(a * dkv_s, (a + 1) * dkv_s), slice(b * dkv_t, (b + 1) * dkv_t)
        for p in PROJS:
            P[p][sb, sa], res = _fit(target[p][sb], mapped[p][sa])
            worst = max(worst, res)
        T, res = _fit(target["o"][:, sb].T, mapped["o"][:, sa].T)
        Q_o[sa, sb] = T.T
        worst = max(worst, res)
    return AttentionMap(P, Q_o, tuple(pairs), score, worst)


def virtual_residual(W_t: np.ndarray, W_s: np.ndarray, N: np.ndarray) -> np.ndarray:
    """K_t = W_t N^+ W_s^+ K_s: a head-space vector read back to the residual it would come from, mapped to the
    target's residual and projected again (prefix). Needs no head matching."""
    return W_t @ np.linalg.pinv(N) @ np.linalg.pinv(W_s)
