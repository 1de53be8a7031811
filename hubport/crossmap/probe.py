"""The `probe` tier: forward passes of both hosts on the same probe tokens, and the closed-form fits they allow.

Hidden states at corresponding layers give per-layer residual maps (Procrustes with a scale, so writers get the
target's residual magnitude). FFN inputs give function fits for what lives inside the FFN: an IA3 gain vector by
its Hadamard-product normal equations, and a LoRA on `wo` by reduced-rank regression. Both
fits have d_ff unknowns per output row; with fewer probe tokens than d_ff they are under-determined, and hubport
warns.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hubport.hosts import HostSpec

SEQ_LEN = 64
HELD_OUT = 0.2
MIN_CARRIED = 0.0


class ProbeWarning(UserWarning):
    """A probe fit with fewer probe tokens than unknowns per row: the fit is under-determined."""


@dataclass
class ProbeData:
    """Per host ('s', 't'): block-input residuals, FFN inputs (normed, gained) and the encoder output."""

    tokens: int
    hidden: dict = field(default_factory=dict)   # (host, stack, block) -> [n, d]; block None: encoder output
    ffn_in: dict = field(default_factory=dict)   # (host, stack, block) -> [n, d]
    bytes_read: int = 0

    def residual_pair(self, stack: str, block: int | None, tblock: int | None) -> tuple[np.ndarray, np.ndarray]:
        if block is None:
            pair = self.hidden["s", "encoder", None], self.hidden["t", "encoder", None]
        else:
            pair = self.hidden["s", stack, block], self.hidden["t", stack, tblock]
        return pair[0].astype(np.float64), pair[1].astype(np.float64)

    def inputs(self, host: str, stack: str, block: int) -> np.ndarray:
        return self.ffn_in[host, stack, block].astype(np.float64)


def probe_ids(source: HostSpec, target: HostSpec, tokens: int, seed: int = 0):
    """Encoder and decoder token ids drawn from the shared vocabulary (past the special tokens)."""
    import torch

    vocab = min(source.vocab_size, target.vocab_size)
    rows = max(1, -(-tokens // SEQ_LEN))
    gen = torch.Generator().manual_seed(seed)
    return (torch.randint(3, vocab, (rows, SEQ_LEN), generator=gen),
            torch.randint(3, vocab, (rows, SEQ_LEN), generator=gen))


def _capture(model, store: dict, host: str) -> list:
    """Hooks that record block inputs, FFN inputs and the encoder output into `store` (token rows)."""
    import torch

    handles = []

    def keep(key):
        def hook(module, args, kwargs):
            x = args[0] if args else kwargs["hidden_states"]
            x = x.detach().reshape(-1, x.shape[-1])  # kept in the host's dtype: float32 halves a large probe
            store.setdefault(key, []).append((x if x.dtype == torch.float64 else x.float()).cpu().numpy())
        return hook

    for stack in ("encoder", "decoder"):
        for b, block in enumerate(getattr(model, stack).block):
            handles.append(block.register_forward_pre_hook(keep((host, stack, b)), with_kwargs=True))
            ffn = block.layer[-1].DenseReluDense
            handles.append(ffn.register_forward_pre_hook(keep(("ffn", host, stack, b)), with_kwargs=True))
    handles.append(model.encoder.final_layer_norm.register_forward_pre_hook(keep((host, "encoder", None)),
                                                                         with_kwargs=True))
    return handles


def run_host(folder: Path, ids, dec, store: dict, host: str, batch: int = 16) -> None:
    """One host's forward passes with hooks (float64 where the host is, else float32)."""
    import torch
    from transformers import T5ForConditionalGeneration

    model = T5ForConditionalGeneration.from_pretrained(folder, dtype="auto").eval()
    handles = _capture(model, store, host)
    try:
        with torch.no_grad():
            for i in range(0, ids.shape[0], batch):
                model(input_ids=ids[i:i + batch], decoder_input_ids=dec[i:i + batch])
    finally:
        for h in handles:
            h.remove()


def collect(source_dir: Path, target_dir: Path, source: HostSpec, target: HostSpec, tokens: int,
            seed: int = 0) -> ProbeData:
    """Run both hosts on the same probe tokens; the weight files read count as bytes read."""
    ids, dec = probe_ids(source, target, tokens, seed)
    store: dict = {}
    run_host(source_dir, ids, dec, store, "s")
    run_host(target_dir, ids, dec, store, "t")
    data = ProbeData(tokens=int(ids.numel()))
    for key, parts in store.items():
        joined = np.concatenate(parts)
        if key[0] == "ffn":
            data.ffn_in[key[1:]] = joined
        else:
            data.hidden[key] = joined
    data.bytes_read = sum(f.stat().st_size for d in (source_dir, target_dir) for f in Path(d).glob("*.safetensors"))
    return data


def warn_if_few(tokens: int, unknowns: int, what: str, notes: list[str]) -> None:
    """A ProbeWarning (and a note) when a fit has fewer probe tokens than unknowns per row."""
    if tokens < unknowns:
        text = (f"{what}: {tokens} probe tokens for {unknowns} unknowns per row (d_ff): under-determined; use at "
                f"least {8 * unknowns} tokens")
        warnings.warn(text, ProbeWarning, stacklevel=3)
        notes.append(text)


def fit_hidden_gain(a_t: np.ndarray, wo_t: np.ndarray, y: np.ndarray) -> np.ndarray:
    """u minimising sum_x ||wo_t (u * a_t(x)) - y(x)||^2: [(wo^T wo) * (A^T A)] u = sum_x a * (wo^T y)."""
    G = (wo_t.T @ wo_t) * (a_t.T @ a_t)
    rhs = ((y @ wo_t) * a_t).sum(axis=0)
    ridge = 1e-10 * max(float(np.trace(G)), 1e-300) / G.shape[0]
    return np.linalg.solve(G + ridge * np.eye(G.shape[0]), rhs)


def reduced_rank(X: np.ndarray, Y: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """Delta [d, f] of rank `rank` minimising ||Y - X Delta^T||, as factors (B [d, r], A [r, f])."""
    gram = X.T @ X
    ridge = 1e-10 * max(float(np.trace(gram)), 1e-300) / gram.shape[0]
    ols = np.linalg.solve(gram + ridge * np.eye(gram.shape[0]), X.T @ Y).T  # [d, f]
    _, _, Vt = np.linalg.svd(X @ ols.T, full_matrices=False)
    B = Vt[:rank].T
    return B, B.T @ ols


def carried(y: np.ndarray, pred: np.ndarray) -> float:
    """1 - ||y - pred||^2 / ||y||^2: 1 = the effect reproduced, 0 = no closer than dropping the module."""
    return 1.0 - float(((y - pred) ** 2).sum()) / max(float((y ** 2).sum()), 1e-300)


def held_out(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(fit rows, held-out rows): a seeded split of the probe tokens."""
    order = np.random.default_rng(seed).permutation(n)
    cut = max(1, min(n - 1, int(round(n * (1 - HELD_OUT)))))
    return order[:cut], order[cut:]
