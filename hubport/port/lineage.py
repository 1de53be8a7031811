"""Do two hosts share a lineage? A copy is right only when the target descends from the module's base.

Config level (always): FFN type, tied embeddings and sizes; separately pretrained families differ there (t5-base
v1.0 vs flan-t5-base). Weight level (whenever both hosts' weights are reachable): a sample of rows of the two
`shared.weight` embedding matrices, read by byte range. A fine-tune leaves its embeddings nearly where they were
(cosine ~1), while independently pretrained or initialised hosts give cosine ~0 (about 1/sqrt(d_model)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hubport.crossmap.residual import residual_lineage
from hubport.errors import HubportError
from hubport.hosts import EMBEDDING, HostSpec
from hubport.hostsource import HostSource
from hubport.port.resolve import Resolved
from hubport.tensors import read_rows

SAME_LINEAGE_COSINE = 0.5
SAMPLE_ROWS = 256
BLOCKS = 8


@dataclass(frozen=True)
class Lineage:
    """The verdict, how it was reached, and what it measured."""

    verdict: str  # "same" | "different" | "unknown"
    level: str  # "config" | "weights" | "id" | "module" (configs inferred without the base) | "none"
    reasons: tuple[str, ...]
    cosine: float | None = None
    relative_difference: float | None = None
    rows: int = 0
    bytes_read: int = 0
    residual: dict | None = None  # the Procrustes residual map between the hosts (check only; hubport.crossmap)

    @property
    def copy_is_right(self) -> bool:
        """Only a measured or proven lineage: an unknown base is never taken as the target's."""
        return self.verdict == "same"

    def describe(self) -> str:
        if self.verdict == "same":
            measured = f" (embedding rows: cosine {self.cosine:.3f}, relative difference " \
                       f"{self.relative_difference:.3f}, {self.rows} rows)" if self.cosine is not None else ""
            proof = f" ({self.reasons[0]})" if self.level == "id" and self.reasons else ""
            return f"same lineage, copy is right{measured}{proof}"
        if self.verdict == "different":
            mapped = f"; {self.residual['message']}" if self.residual else ""
            return "another lineage: " + "; ".join(self.reasons) + mapped
        return "lineage unknown: " + "; ".join(self.reasons)

    def to_dict(self) -> dict:
        return {"verdict": self.verdict, "level": self.level, "reasons": list(self.reasons), "cosine": self.cosine,
                "relative_difference": self.relative_difference, "rows": self.rows, "bytes_read": self.bytes_read,
                "residual": self.residual}


def config_lineage(source: HostSpec, target: HostSpec) -> list[str]:
    """Reasons from the configs alone why two hosts cannot be one lineage (empty when none)."""
    reasons = []
    if source.gated != target.gated:
        reasons.append(f"FFN {source.ffn} vs {target.ffn}: separately pretrained T5 generations")
    if source.tied != target.tied:
        reasons.append(f"embeddings {'tied' if source.tied else 'untied'} vs {'tied' if target.tied else 'untied'}")
    if source.vocab_size != target.vocab_size:
        reasons.append(f"vocabulary {source.vocab_size} vs {target.vocab_size}")
    if source.d_model != target.d_model:
        reasons.append(f"d_model {source.d_model} vs {target.d_model}")
    return reasons


def sample_rows(vocab: int, n: int = SAMPLE_ROWS, blocks: int = BLOCKS) -> list[int]:
    """`blocks` evenly spaced runs of consecutive rows past the special tokens (one range request per run), the
    same for both hosts."""
    first = min(3, vocab - 1)
    per_block = max(1, n // blocks)
    starts = np.linspace(first, max(first, vocab - per_block), num=blocks).astype(int)
    return sorted({int(r) for s in starts for r in range(s, min(s + per_block, vocab))})


def embedding_similarity(source: HostSource, target: HostSource, vocab: int) -> tuple[float, float, int] | None:
    """(mean row cosine, relative Frobenius difference, rows) over a row sample, or None if either is unreachable."""
    found = source.find_tensor(EMBEDDING), target.find_tensor(EMBEDDING)
    if found[0] is None or found[1] is None:
        return None
    rows = sample_rows(vocab)
    a, b = read_rows(found[0][0], found[0][1], rows), read_rows(found[1][0], found[1][1], rows)
    ab, aa, bb = (np.einsum("ij,ij->i", x, y, dtype=np.float64) for x, y in ((a, b), (a, a), (b, b)))
    cosine = float(np.mean(ab / np.maximum(np.sqrt(aa * bb), 1e-12)))
    rel = float(np.sqrt(max(np.sum(aa + bb - 2 * ab), 0.0)) / max(np.sqrt(np.sum(aa)), 1e-12))
    return cosine, rel, len(rows)


def check_lineage(source: HostSpec | None, target: HostSpec, source_files: HostSource | None,
                  target_files: HostSource, read_weights: bool = True, *, base_ref: str | None = None,
                  module_variant: str | None = None) -> Lineage:
    """Config-level verdict first; then the embedding sample decides where weights are reachable, else the ids
    (the target is the base itself or its descendant). Without the base's config, the module's own FFN keys and
    the legacy-id facts may still prove another lineage (`base_ref`, `module_variant`)."""
    if source is None:
        return _without_base(target, base_ref, module_variant)
    reasons = config_lineage(source, target)
    if reasons:
        return Lineage("different", "config", tuple(reasons))
    measured = None
    before = source_files.bytes_read() + target_files.bytes_read() if source_files is not None else 0
    if read_weights and source_files is not None:
        measured = embedding_similarity(source_files, target_files, source.vocab_size)
    if measured is None:
        by_id = ancestor_by_id(source_files, target_files)
        if by_id:
            return Lineage("same", "id", (by_id,))
        why = "weights not compared" if not read_weights or source_files is None else _no_weights(
            source_files, target_files)
        return Lineage("unknown", "config", (f"configs agree; {why}",))
    cosine, rel, rows = measured
    spent = source_files.bytes_read() + target_files.bytes_read() - before
    if cosine >= SAME_LINEAGE_COSINE:
        return Lineage("same", "weights", (), cosine, rel, rows, spent)
    why = (f"embedding rows are unrelated (mean cosine {cosine:.3f} over {rows} rows, relative difference {rel:.2f}): "
           "the hosts were pretrained separately, so even same-shaped tensors land in unrelated coordinates")
    return Lineage("different", "weights", (why,), cosine, rel, rows, spent)


def residual_for(r: Resolved, deep: bool = False) -> dict | None:
    """The Procrustes residual map between the hosts (for `check`), where both hosts' weights are at hand: over a
    bounded row sample, or (`deep`) on the very rows `port --map` fits on."""
    if r.base is None or r.base_files is None:
        return None
    if not (r.base_files.weights_at_hand() and r.target_files.weights_at_hand()):
        return None
    try:
        if deep:
            return residual_lineage(r.base_files, r.target_files, r.base, r.target, budget=None)
        return residual_lineage(r.base_files, r.target_files, r.base, r.target)
    except HubportError as exc:
        return {"verdict": "unknown", "message": f"no residual map: {exc.message}"}


def _no_weights(source_files: HostSource, target_files: HostSource) -> str:
    missing = [getattr(f, "missing", "") for f in (source_files, target_files)]
    said = "; ".join(m for m in missing if m)
    return f"no embeddings to compare ({said})" if said else "no embeddings to compare"


def ancestor_by_id(source_files: HostSource | None, target_files: HostSource) -> str:
    """Why the target is the module's own base (same repo at the same commit, or a later one), or ''."""
    from hubport.hubids import same_repo

    if source_files is None:
        return ""
    if getattr(source_files, "root", None) is not None and getattr(target_files, "root", None) is not None:
        same = source_files.root.resolve() == target_files.root.resolve()  # type: ignore[attr-defined]
        return "the target is the module's base folder itself" if same else ""
    a, b = getattr(source_files, "repo", None), getattr(target_files, "repo", None)
    if not same_repo(a, b) or not source_files.revision or not target_files.revision:
        return ""
    if source_files.revision == target_files.revision:
        return f"the target is the module's base, {b} at {b and target_files.revision[:12]}"
    history = getattr(target_files, "history", list)()
    if source_files.revision in history:
        return f"the target descends from the module's base commit {source_files.revision[:12]} of {b}"
    return ""


def _without_base(target: HostSpec, base_ref: str | None, module_variant: str | None) -> Lineage:
    """The base host is unknown or unreachable: prove another lineage from what is known, else say unknown."""
    from hubport.hubids import LEGACY_T5_FACTS, legacy_name

    reasons = []
    legacy = legacy_name(base_ref)
    if legacy:
        facts = LEGACY_T5_FACTS
        if (facts["ffn"] == "relu") == target.gated:
            reasons.append(f"'{base_ref}' is the legacy T5 {legacy} (a v1.0 ReLU host), the target is "
                           f"{target.ffn}: separately pretrained T5 generations")
        elif facts["tied"] != target.tied or facts["vocab_size"] != target.vocab_size:
            reasons.append(f"'{base_ref}' is the legacy T5 {legacy} (tied embeddings, vocabulary "
                           f"{facts['vocab_size']}), the target differs there")
    if not reasons and module_variant in ("relu", "gated") and module_variant != target.variant:
        reasons.append(f"the module's own FFN tensors are those of a {module_variant} host, the target is "
                       f"{target.variant}: separately pretrained T5 generations")
    if reasons:
        return Lineage("different", "module", tuple(reasons))
    said = f"the module's base '{base_ref}' is not reachable" if base_ref else \
        "the module does not record the host it was trained on"
    return Lineage("unknown", "none", (f"{said}, so nothing shows that the target shares its coordinates",))
