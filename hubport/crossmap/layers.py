"""Which target layer each source layer corresponds to, from weights only.

Representation similarity (CKA) cannot decide this: a layer that writes nothing leaves the hidden states as they
were, so it ties exactly with its neighbour. The score here looks at what each layer computes instead: for every
source head, its best query-key plus value-output cosine among the target layer's heads, averaged (2 = same layer,
an inert layer scores ~0 on value-output). A monotone dynamic programme then places the layers in order.
"""

from __future__ import annotations

import numpy as np

from hubport.crossmap.heads import Folded, head_scores

SCORED_HEADS = 4


def some_heads(f: Folded, count: int = SCORED_HEADS) -> Folded:
    """`count` evenly spaced heads of a layer: the layer score needs a few heads, not all (a third of the cost
    on base/large hosts)."""
    if f.heads <= count:
        return f
    rows = np.concatenate([np.arange(h * f.dkv, (h + 1) * f.dkv)
                           for h in np.linspace(0, f.heads - 1, count).round().astype(int)])
    return Folded(f.q[rows], f.k[rows], f.v[rows], f.o[:, rows], f.dkv)


def layer_score(src: Folded, tgt: Folded) -> float:
    """Mean over (some) source heads of the best target-head score."""
    return float(head_scores(some_heads(src), tgt).max(axis=1).mean())


def score_matrix(src: list[Folded], tgt: list[Folded]) -> np.ndarray:
    """[L_s, L_t] layer scores, only inside the band a monotone map can reach (-inf elsewhere)."""
    Ls, Lt = len(src), len(tgt)
    S = np.full((Ls, Lt), -np.inf)
    for i in range(Ls):
        lo, hi = (i, i + Lt - Ls) if Ls <= Lt else (max(0, i - (Ls - Lt)), min(i, Lt - 1))
        for j in range(lo, hi + 1):
            S[i, j] = layer_score(src[i], tgt[j])
    return S


def monotone_assignment(S: np.ndarray) -> list[int]:
    """Strictly increasing f: rows -> columns (rows <= columns) maximising sum S[i, f(i)] (LoRASuite's DP)."""
    n, m = S.shape
    D = np.full((n, m), -np.inf)
    back = np.zeros((n, m), dtype=int)
    D[0] = S[0]
    for i in range(1, n):
        best, arg = -np.inf, -1
        for j in range(m):
            if j >= 1 and D[i - 1, j - 1] > best:
                best, arg = D[i - 1, j - 1], j - 1
            D[i, j] = S[i, j] + best if arg >= 0 else -np.inf
            back[i, j] = arg
    j = int(np.argmax(D[n - 1]))
    out = [j]
    for i in range(n - 1, 0, -1):
        j = int(back[i, j])
        out.append(j)
    return out[::-1]


def layer_map(S: np.ndarray) -> tuple[int | None, ...]:
    """Target layer of each source layer (None where a deeper source has more layers than the target)."""
    Ls, Lt = S.shape
    if Ls <= Lt:
        return tuple(monotone_assignment(S))
    picked = monotone_assignment(S.T)  # source layer of each target layer
    out: list[int | None] = [None] * Ls
    for t, s in enumerate(picked):
        out[s] = t
    return tuple(out)


def linear_cka(X: np.ndarray, Y: np.ndarray) -> float:
    """Linear CKA of two [n, d] representations (for diagnostics: it ties on inert layers)."""
    X, Y = X - X.mean(axis=0), Y - Y.mean(axis=0)
    num = float(np.linalg.norm(X.T @ Y) ** 2)
    den = float(np.linalg.norm(X.T @ X) * np.linalg.norm(Y.T @ Y))
    return num / max(den, 1e-300)
