"""The residual-stream map between two hosts, from the vocabulary they share.

T5, T5 v1.1 and Flan-T5 use one SentencePiece vocabulary, so row i of both embedding matrices is the same token:
tens of thousands of free anchors. An orthogonal Procrustes fit E_t ~ s E_s M^T gives the map M (d_t x d_s) with
M^T M = I; held-out rows tell whether it is real (R^2), and whether the identity (a copy) would do as well.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hubport.crossmap.hostread import HostWeights
from hubport.hosts import EMBEDDING, HostSpec
from hubport.hostsource import HostSource
from hubport.tensors import row_runs

HELD_OUT = 0.2
SAME_LINEAGE_R2 = 0.9
MAPPABLE_R2 = 0.5
CHECK_ROWS = 4096
COPY_ROWS = 256  # rows enough to tell that a copy explains the embeddings (R2 >= 0.9), before any fit
CLEAR_NONE_R2 = MAPPABLE_R2 / 2  # below this a sampled fit refuses: a small sample cannot explain it away
CHECK_BUDGET = 8 * 1024 * 1024  # bytes of embedding rows `check` reads by default, both hosts together
BLOCKS = 16


@dataclass(frozen=True)
class ResidualMap:
    """h_t ~ scale * M h_s, with its quality on held-out vocabulary rows."""

    M: np.ndarray
    scale: float
    r2: float
    r2_ls: float
    r2_copy: float | None
    identity_distance: float | None
    rows: int

    @property
    def verdict(self) -> str:
        if self.r2_copy is not None and self.r2_copy >= SAME_LINEAGE_R2:
            return "same"
        return "mapped" if self.r2 >= MAPPABLE_R2 else "none"

    def message(self) -> str:
        if self.verdict == "same":
            return f"same lineage, copy is right (copy explains held-out embeddings with R2 {self.r2_copy:.3f})"
        if self.verdict == "mapped":
            copy = f", a copy only {self.r2_copy:.2f}" if self.r2_copy is not None else ""
            return (f"unrelated coordinates: a copy would be wrong; use --map (residual map held-out R2 "
                    f"{self.r2:.3f}{copy})")
        return (f"no residual map found (held-out R2 {self.r2:.2f}): the hosts share no coordinates through "
                "their vocabulary, so any port would be guesswork")

    def to_dict(self) -> dict:
        return {"verdict": self.verdict, "message": self.message(), "r2_heldout": self.r2, "r2_ls": self.r2_ls,
                "r2_copy": self.r2_copy, "scale": self.scale, "identity_distance": self.identity_distance,
                "rows": self.rows, "copy_is_right": self.verdict == "same"}


def procrustes(X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, float]:
    """(M, s) minimising ||s X M^T - Y||: M [d_y, d_x] with orthonormal columns (rows when d_y < d_x)."""
    U, S, Vt = np.linalg.svd(X.T @ Y, full_matrices=False)
    M = (U @ Vt).T
    return M, float(S.sum() / max(float((X ** 2).sum()), 1e-300))


def r2_score(pred: np.ndarray, Y: np.ndarray) -> float:
    """1 - SSE / SST over rows (SST around the mean row)."""
    sst = float(((Y - Y.mean(axis=0)) ** 2).sum())
    return 1.0 - float(((Y - pred) ** 2).sum()) / max(sst, 1e-300)


def fit_residual(X: np.ndarray, Y: np.ndarray, seed: int = 0) -> ResidualMap:
    """Fit on most rows, score on the rest, then refit on all rows (the map that is used)."""
    n = X.shape[0]
    order = np.random.default_rng(seed).permutation(n)
    cut = max(1, int(round(n * (1 - HELD_OUT))))
    fit, test = order[:cut], order[cut:] if cut < n else order[:0]
    M, s = procrustes(X[fit], Y[fit])
    ridge = 1e-6 * float(np.trace(X[fit].T @ X[fit])) / X.shape[1]
    ls = np.linalg.solve(X[fit].T @ X[fit] + ridge * np.eye(X.shape[1]), X[fit].T @ Y[fit])
    held = test if len(test) else fit
    r2 = r2_score(s * X[held] @ M.T, Y[held])
    r2_ls = r2_score(X[held] @ ls, Y[held])
    same_dim = X.shape[1] == Y.shape[1]
    r2_copy = r2_score(X[held], Y[held]) if same_dim else None
    M, s = procrustes(X, Y)
    dist = float(np.linalg.norm(M - np.eye(M.shape[0])) / np.sqrt(M.shape[0])) if same_dim else None
    return ResidualMap(M, s, r2, r2_ls, r2_copy, dist, n)


def anchor_rows(source: HostSpec, target: HostSpec, rows: int | None) -> list[int]:
    """The shared vocabulary rows to fit on: all of them, or `rows` of them in a few contiguous runs."""
    vocab = min(source.vocab_size, target.vocab_size)
    if rows is None or rows >= vocab:
        return list(range(vocab))
    per = max(1, rows // BLOCKS)
    starts = np.linspace(0, vocab - per, num=BLOCKS).astype(int)
    return sorted({int(r) for s in starts for r in range(s, min(s + per, vocab))})


def anchor_count(source: HostSpec, target: HostSpec) -> int:
    """How many shared vocabulary rows the residual map is fitted on: the one count `check` and `port` share, so
    that both report the same map and held-out R2 (a few MB by range, not the whole embedding)."""
    return max(CHECK_ROWS, 3 * max(source.d_model, target.d_model))


def estimate_residual(src: HostWeights, tgt: HostWeights, rows: int | None = -1) -> ResidualMap:
    """The residual map from the two embedding matrices: on `anchor_count` rows by default (what check and port
    both use), all shared rows with rows=None, or `rows` of them."""
    if rows == -1:
        rows = anchor_count(src.spec, tgt.spec)
    picked = anchor_rows(src.spec, tgt.spec, rows)
    if len(picked) == min(src.spec.vocab_size, tgt.spec.vocab_size):
        X, Y = src.get(EMBEDDING)[: len(picked)], tgt.get(EMBEDDING)[: len(picked)]
    else:
        X, Y = src.rows(EMBEDDING, picked), tgt.rows(EMBEDDING, picked)
    return fit_residual(X, Y)


def residual_lineage(source_files: HostSource, target_files: HostSource, source_spec: HostSpec,
                     target_spec: HostSpec, *, rows: int | None = -1,
                     budget: int | None = CHECK_BUDGET) -> dict:
    """For `hubport check`: is a copy right, is a residual map needed, or is there none? With bytes read.

    By default on the rows `port --map` fits on (anchor_count, so both report the same map and held-out R2),
    capped at `budget` bytes of embedding rows (both hosts) whatever the host's size: a capped fit says
    `sampled`. `budget=None` (`check --deep`) reads the same rows as port; `rows=None` every shared row."""
    src = HostWeights(source_files, source_spec, "the module's base host")
    tgt = HostWeights(target_files, target_spec, "the target host")
    full = anchor_count(source_spec, target_spec) if rows == -1 else rows   # port's rows (None: every row)
    wanted = full
    if wanted is not None and budget is not None:
        row_bytes = sum(h.itemsize(EMBEDDING) * h.spec.d_model for h in (src, tgt))
        wanted = max(2, min(wanted, budget // row_bytes))
    picked = anchor_rows(source_spec, target_spec, wanted)
    sampled = wanted != full and len(picked) < len(anchor_rows(source_spec, target_spec, full))
    first = _first_of_runs(picked, COPY_ROWS) if budget is not None else picked   # --deep: port's very fit
    X, Y = src.rows(EMBEDDING, first), tgt.rows(EMBEDDING, first)
    copy = copy_explains(X, Y) if budget is not None else None
    if copy is not None:
        return {**copy, "bytes_read": src.bytes_read() + tgt.bytes_read(), "sampled": sampled}
    rest = sorted(set(picked) - set(first))  # the fit reads only the rows the copy check did not
    if rest:
        order = np.argsort(np.array(first + rest), kind="stable")   # back to `picked` order: port's very fit
        X = np.concatenate([X, src.rows(EMBEDDING, rest)])[order]
        Y = np.concatenate([Y, tgt.rows(EMBEDDING, rest)])[order]
    found = fit_residual(X, Y)
    out = {**found.to_dict(), "bytes_read": src.bytes_read() + tgt.bytes_read(), "sampled": sampled}
    if sampled and found.verdict == "none" and found.r2 >= CLEAR_NONE_R2:
        out.update(verdict="uncertain", message=(
            f"a weak residual fit on {found.rows} sampled rows (held-out R2 {found.r2:.2f}); `check --deep` fits on "
            "the rows `port --map` uses"))
    return out


def _first_of_runs(rows: list[int], n: int) -> list[int]:
    """About `n` of `rows`: the first few of each of its runs of consecutive rows (still one read per run)."""
    runs = row_runs(rows)
    per = max(1, -(-n // max(1, len(runs))))
    return [first + i for first, count in runs for i in range(min(per, count))]


def copy_explains(X: np.ndarray, Y: np.ndarray) -> dict | None:
    """The cheap answer first: where the identity (a copy) already explains the sampled embedding rows, the hosts
    share coordinates and no Procrustes fit (an SVD of d_model x d_model) is needed. None: fit the map."""
    if X.shape != Y.shape:
        return None
    r2_copy = r2_score(X, Y)
    if r2_copy < SAME_LINEAGE_R2:
        return None
    return {"verdict": "same", "r2_copy": r2_copy, "r2_heldout": None, "r2_ls": None, "scale": None,
            "identity_distance": None, "rows": len(X), "copy_is_right": True,
            "message": f"same lineage, copy is right (copy explains {len(X)} embedding rows with R2 "
                       f"{r2_copy:.3f}; no map fitted)"}


def input_map(M: np.ndarray, gain_s: np.ndarray, gain_t: np.ndarray) -> np.ndarray:
    """N [d_s, d_t] with u_s = N u_t for a projection behind an RMSNorm: the gains are folded, the norm's
    rescaling by sqrt(d_t/d_s) undone (h_t = M h_s gives h_t/rms(h_t) = sqrt(d_t/d_s) M h_s/rms(h_s))."""
    d_t, d_s = M.shape
    inv_t = np.divide(1.0, gain_t, out=np.zeros_like(gain_t), where=np.abs(gain_t) > 1e-12)
    return (gain_s[:, None] * M.T * inv_t[None, :]) / np.sqrt(d_t / d_s)
