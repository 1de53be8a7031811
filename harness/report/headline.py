"""The headline table of BENCHMARKS.md: per cell, each condition's mean and the ported-vs-baseline differences.

Refreshed by the benchmark workflow (`harness table DIR --out BENCHMARKS.md`) from the analysis, so the numbers in
the repository are always the ones a report stands behind.
"""

from __future__ import annotations

import math

from harness.analysis.results import Analysis, condition_order
from harness.analysis.verdicts import P_LABEL, interval, pts


def headline_table(analysis: Analysis, title: str = "Portability benchmark") -> str:
    """Markdown: one row per cell; condition means in points; ported - baseline with its CI and corrected p."""
    means = {(s.cell, s.condition): s.mean for s in analysis.conditions}
    cells = sorted({s.cell for s in analysis.conditions})
    conditions = condition_order({s.condition for s in analysis.conditions})
    comps = [c for c in analysis.comparisons if c.a.startswith("ported")]
    pairs = sorted({(c.a, c.b) for c in comps}, key=lambda ab: (conditions.index(ab[0]), conditions.index(ab[1])))
    o = analysis.options
    plab = {ab: P_LABEL[o.correction if ab in o.primary else o.secondary_correction] for ab in pairs}
    head = ["family", "host pair", "data", "budget", *conditions,
            *[f"{a} − {b} [CI], {plab[(a, b)]}; examples [CI]" for a, b in pairs]]
    lines = [f"# {title}", "", "Accuracy in points (mean over seeds); differences paired by seed with "
             f"{o.ci:.0%} t intervals (McNemar and the example interval where seeds cannot vary), p corrected "
             f"within its family ({', '.join(f'{a} − {b}' for a, b in o.primary)}: {P_LABEL[o.correction]}; "
             f"the rest: {P_LABEL[o.secondary_correction]}); then the hierarchical bootstrap over seeds and "
             "examples.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    by_cell = {(c.cell, c.a, c.b): c for c in comps}
    for cell in cells:
        row = [f"{cell.family} ({cell.library})", cell.pair, cell.data, str(cell.budget)]
        row += [pts(means[(cell, k)]) if (cell, k) in means else "—" for k in conditions]
        row += [_diff(by_cell.get((cell, a, b))) for a, b in pairs]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _diff(comparison) -> str:
    if comparison is None:
        return "—"
    r, x = comparison.result, comparison.examples
    examples = f"; {interval(x.ci)}" if x is not None else ""
    if not math.isfinite(comparison.p_corr):
        return f"{pts(r.mean_diff)} on every seed (untested){examples}"
    if comparison.primary_test == "mcnemar":
        return f"{pts(r.mean_diff)} on every seed, McNemar {comparison.p_corr:.3g}{examples}"
    return f"{pts(r.mean_diff)} {interval(r.diff_ci)}, {comparison.p_corr:.3g}{examples}"
