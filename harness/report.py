"""The study report: report.md and a self-contained report.html (figures inlined as base64), from one outline.

The outline is a list of blocks (heading, paragraph, list, table, image, code) rendered twice, so the two
files always say the same thing. Every number a claim rests on is shown next to its verdict in words.
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path

from harness.analysis import Analysis, CellKey, Comparison, analyze_dir, condition_order, load_analysis
from harness.figures import caption, make_figures
from harness.headline import headline_rows, settings_rows
from harness.verdicts import (
    CORRECTION_NAME,
    EFFECT_LABEL,
    P_LABEL,
    fmt_effect,
    fmt_p,
    fmt_p_eq,
    fmt_seeds,
    interval,
    pts,
)

Block = tuple  # ("h", level, text) | ("p", text) | ("ul", [text]) | ("table", head, rows) | ("img", path, alt, caption)
TEST_NAME = {"t": "paired t", "wilcoxon": "Wilcoxon", "none": "none"}
OMNIBUS_NAME = {"rm_anova": "rm-ANOVA", "friedman": "Friedman", "anova": "ANOVA", "kruskal": "Kruskal-Wallis"}
OMNIBUS_STAT = {"rm_anova": "F", "friedman": "Q", "anova": "F", "kruskal": "H"}
EFFECT_NAME = {"ng2": "η²_G", "kendall_w": "Kendall W", "np2": "η²_p", "epsilon2": "ε²"}


def write_report(run_dir: Path, analysis: Analysis | None = None) -> Path:
    """Write run_dir/report.md, report.html and figures/*.png; returns the report.md path."""
    run_dir = Path(run_dir)
    if analysis is None:
        analysis = load_analysis(run_dir) if (run_dir / "analysis.json").is_file() else analyze_dir(run_dir)
    manifest = _manifest(run_dir)
    figures = make_figures(analysis, run_dir / "figures")
    blocks = outline(analysis, manifest, [p.relative_to(run_dir) for p in figures], run_dir) + _refused(run_dir)
    (run_dir / "report.md").write_text(to_markdown(blocks), encoding="utf-8")
    (run_dir / "report.html").write_text(to_html(blocks, run_dir), encoding="utf-8")
    return run_dir / "report.md"


def _refused(run_dir: Path) -> list[Block]:
    """Runs whose port hubport refused (another lineage, nothing carried): not results, but part of the story."""
    from harness.records import refusals

    table = refusals(run_dir)
    if table.empty:
        return []
    groups = table.groupby(["family", "pair", "data", "condition", "reason"]).size().reset_index(name="runs")
    rows = [[g.family, _arrow(g.pair), _arrow(g.data), g.condition, str(g.runs), g.reason]
            for g in groups.itertuples()]
    return [("h", 2, "Refused ports"),
            ("p", "These runs were not made because hubport refused the port; they are recorded, not failed."),
            ("table", ["family", "host pair", "data", "condition", "runs", "reason"], rows)]


def _manifest(run_dir: Path) -> dict:
    path = run_dir / "manifest.json"
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, json.JSONDecodeError):
        return {"_unreadable": str(path)}


def outline(analysis: Analysis, manifest: dict, figures: list[Path], run_dir: Path | None = None) -> list[Block]:
    """The report as blocks: headline numbers, summary, figures with captions, warnings, settings, every cell,
    across families, methods."""
    o = analysis.options
    head, rows = headline_rows(analysis, run_dir)
    blocks: list[Block] = [("h", 1, "Portability study report"), ("h", 2, "Headline"),
                           ("p", (f"Mean {o.metric} in points with its {o.ci:.0%} t-interval over seeds, per "
                                  "condition and training budget; the originating module is scored on its own "
                                  "host and data; fidelity is the correlation of the ported module's effect on the "
                                  "receiving host's logits with the original's (1 = the same function).")),
                           ("table", head, rows)]
    blocks += _summary(analysis)
    blocks += [("h", 2, "Figures")] + [("img", p, p.stem, caption(p)) for p in figures]
    blocks += [("h", 2, "Warnings"), ("ul", list(analysis.warnings) or ["none"])]
    blocks += _what_was_run(analysis, manifest)
    blocks += _cells(analysis)
    blocks += _families(analysis)
    blocks += [("h", 2, "Methods"), ("p", _methods(analysis))]
    return blocks


def _summary(analysis: Analysis) -> list[Block]:
    o, comps = analysis.options, analysis.comparisons
    cells = {c.cell for c in comps}
    n = sorted({c.result.n for c in comps})
    tested = [c for c in comps if not c.result.constant]
    items = []
    for a, b in dict.fromkeys((c.a, c.b) for c in comps):
        group = [c for c in comps if (c.a, c.b) == (a, b)]
        wins = sum(c.verdict.startswith(f"{a} beats") for c in group)
        losses = sum(c.verdict.startswith(f"{a} trails") for c in group)
        items.append(f"{a} vs {b}: {a} better in {wins} of {len(group)} cells, worse in {losses}, no supported "
                     f"claim in {len(group) - wins - losses}")
    text = (f"{len(comps)} paired comparisons in {len(cells)} cells ({_count(cells, 'family', 'families')}, "
            f"{_count(cells, 'pair', 'host pairs')}, {_count(cells, 'data', 'data combinations')}, "
            f"{_count(cells, 'budget', 'budgets')}), {n[0] if len(n) == 1 else f'{n[0]}-{n[-1]}'} paired seeds each; "
            f"{len(tested)} tested, {CORRECTION_NAME[o.correction]} across all of them at alpha = {o.alpha:g}. "
            "A claim is made only when the corrected p is below alpha and the bootstrap interval excludes 0.")
    return [("h", 2, "Summary"), ("p", text), ("ul", items)]


def _count(cells: set[CellKey], name: str, plural: str) -> str:
    n = len({getattr(c, name) for c in cells})
    return f"{n} {plural if n != 1 else {'families': 'family', 'host pairs': 'host pair'}.get(plural, plural[:-1])}"


def _what_was_run(analysis: Analysis, manifest: dict) -> list[Block]:
    o = analysis.options
    seeds = sorted({s for c in analysis.conditions for s in c.seeds})
    items = [f"seeds: {', '.join(map(str, seeds))}",
             f"command: {manifest.get('command') or 'not recorded'}",
             f"git commit: {manifest.get('git_commit') or 'not recorded'}",
             f"analysis: test {o.test}, correction {o.correction}, alpha {o.alpha:g}, {o.ci:.0%} intervals, "
             f"{o.n_boot} bootstrap resamples, seed {o.seed}, power {o.power:.0%}, target difference "
             f"{pts(o.target_difference) + ' points' if o.target_difference else 'the observed one'}"]
    versions = {**dict(manifest.get("versions") or {}), **dict(analysis.versions)}
    items.append("versions: " + ", ".join(f"{k} {v}" for k, v in sorted(versions.items())))
    blocks: list[Block] = [("h", 2, "What was run"), ("ul", items)]
    if not manifest:
        blocks.append(("p", "No manifest.json in the run folder: the grid configuration is not recorded here."))
    if isinstance(manifest.get("config"), dict):
        blocks += [("h", 3, "Settings"), ("table", ["setting", "value"], settings_rows(manifest["config"]))]
    return blocks


def _cells(analysis: Analysis) -> list[Block]:
    o = analysis.options
    plab = P_LABEL[o.correction]
    summaries = {(s.cell, s.condition): s for s in analysis.conditions}
    omnibus = {x.cell: x for x in analysis.cell_omnibus}
    blocks: list[Block] = [("h", 2, "Results by cell")]
    current = None
    for cell in sorted({s.cell for s in analysis.conditions}):
        family = (cell.experiment, cell.family, cell.library)
        if family != current:
            current = family
            blocks.append(("h", 3, f"{cell.family} ({cell.library})" + _experiment(analysis, cell.experiment)))
        blocks.append(("h", 4, f"{_arrow(cell.pair)} · {_arrow(cell.data)} · budget {cell.budget}"))
        rows = []
        for cond in condition_order([c for (k, c) in summaries if k == cell]):
            s = summaries[(cell, cond)]
            note = f" (score of budget {s.copied_from_budget})" if s.copied_from_budget is not None else ""
            rows.append([cond + note, str(s.n), pts(s.mean), interval(s.ci)])
        blocks.append(("table", ["condition", "seeds", "mean (points)", f"{o.ci:.0%} CI"], rows))
        comps = [c for c in analysis.comparisons if c.cell == cell]
        if comps:
            blocks.append(("table", ["comparison", "difference (points)", "test", "p", plab, "effect [CI]",
                                     "P(a > b) [CI]", f"seeds for {o.power:.0%} power (alpha, alpha/m)"], [_row(c) for c in comps]))
            blocks.append(("ul", [c.verdict for c in comps]))
        if cell in omnibus:
            blocks.append(("p", _omnibus_text(omnibus[cell].result, omnibus[cell].p_corr, plab,
                                              f"across {len(omnibus[cell].conditions)} conditions")))
    return blocks


def _row(c: Comparison) -> list[str]:
    r = c.result
    if r.constant:
        return [f"{c.a} − {c.b}", f"{pts(r.mean_diff)} (every seed)", "untested", "—", "—", "—", "—", "—"]
    effect = f"{EFFECT_LABEL[r.effect_name]} = {fmt_effect(r.effect)}" + _bounds(r.effect_ci, fmt_effect)
    return [f"{c.a} − {c.b}", pts(r.mean_diff) + _bounds(r.diff_ci, pts), TEST_NAME[r.test], fmt_p(r.p),
            fmt_p(c.p_corr), effect, f"{r.p_superior:.2f} [{r.p_superior_ci[0]:.2f}, {r.p_superior_ci[1]:.2f}]",
            f"{fmt_seeds(c.seeds_needed)}, {fmt_seeds(c.seeds_needed_corrected)}"]


def _bounds(ci: tuple[float, float], fmt) -> str:
    """ [low, high], or the finite side only ("≥ 23.0"), or nothing: an infinite bound is never printed."""
    low, high = (math.isfinite(v) for v in ci)
    if low and high:
        return f" [{fmt(ci[0])}, {fmt(ci[1])}]"
    if low:
        return f" (≥ {fmt(ci[0])})"
    return f" (≤ {fmt(ci[1])})" if high else ""


def _omnibus_text(r, p_corr: float, plab: str, what: str) -> str:
    df = ", ".join(f"{d:g}" for d in r.df)
    return (f"{OMNIBUS_NAME[r.test]} {what}: {OMNIBUS_STAT[r.test]}({df}) = {r.statistic:.2f}, {fmt_p_eq('p', r.p)}, "
            f"{fmt_p_eq(plab, p_corr)}, {EFFECT_NAME[r.effect_name]} = {r.effect:.2f}")


def _families(analysis: Analysis) -> list[Block]:
    if not analysis.family_omnibus:
        return []
    plab = P_LABEL[analysis.options.correction]
    rows = [[_arrow(f.pair), _arrow(f.data), str(f.budget), f"{f.a} − {f.b}", ", ".join(f.families),
             _omnibus_text(f.result, f.p_corr, plab, "").replace(" :", ":")] for f in analysis.family_omnibus]
    text = ("Does the advantage (a − b, per seed) differ between families? One test per host pair, data "
            "combination, budget and comparison (the family × condition interaction), corrected across these tests.")
    return [("h", 2, "Across families"), ("p", text),
            ("table", ["host pair", "data", "budget", "comparison", "families", "test"], rows)]


def _methods(analysis: Analysis) -> str:
    o = analysis.options
    return (f"Conditions are paired by seed (same data order and initialisation stream). For each cell and pair of "
            f"conditions the per-seed differences are tested with a paired t-test when Shapiro-Wilk does not reject "
            f"normality (p ≥ {o.alpha:g}) and with the exact Wilcoxon signed-rank test otherwise (option --test: "
            f"{o.test}). Effect sizes: Hedges' g of the differences (g_z) for t-tests, the matched-pairs rank-biserial "
            f"correlation (r_rb) for Wilcoxon. Intervals of the mean difference and of the effect size are seeded BCa "
            f"bootstraps ({o.n_boot} resamples, seed {o.seed}); P(a > b) is the share of seeds on which a beats b "
            f"(ties count half) with a percentile bootstrap interval; per-condition intervals are t-intervals. "
            f"p-values are corrected across the whole grid ({CORRECTION_NAME[o.correction]}). Seeds for power: the "
            f"smallest number of seeds giving {o.power:.0%} power to detect the observed difference (or the target) "
            f"at alpha, and at alpha / m, the strictest step of the correction (noncentral t; Wilcoxon divided by its "
            f"worst-case efficiency 0.864). Omnibus tests: repeated-measures ANOVA (Greenhouse-Geisser corrected) or "
            f"Friedman per cell; one-way ANOVA or Kruskal-Wallis of the paired differences across families. "
            f"Tests: pingouin and scipy.")


def _experiment(analysis: Analysis, experiment: str) -> str:
    return f" · {experiment}" if len({s.cell.experiment for s in analysis.conditions}) > 1 else ""


def _arrow(text: str) -> str:
    return text.replace(" -> ", " → ")


def to_markdown(blocks: list[Block]) -> str:
    """GitHub-flavoured Markdown; images link to the PNG files next to it."""
    out = []
    for block in blocks:
        kind = block[0]
        if kind == "h":
            out.append(f"{'#' * block[1]} {block[2]}")
        elif kind == "p":
            out.append(block[1])
        elif kind == "ul":
            out.append("\n".join(f"- {item}" for item in block[1]))
        elif kind == "table":
            cell = lambda v: str(v).replace("|", "\\|")
            lines = ["| " + " | ".join(map(cell, block[1])) + " |", "|" + "---|" * len(block[1])]
            lines += ["| " + " | ".join(map(cell, row)) + " |" for row in block[2]]
            out.append("\n".join(lines))
        elif kind == "img":
            out.append(f"![{block[2]}]({block[1].as_posix()})" + (f"\n\n*{block[3]}*" if block[3:] and block[3] else ""))
        elif kind == "code":
            out.append(f"```json\n{block[1]}\n```")
    return "\n\n".join(out) + "\n"


STYLE = ("body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;line-height:1.45}"
         "table{border-collapse:collapse;margin:.6em 0;font-size:.9em}td,th{border:1px solid #ccc;padding:.25em .5em;"
         "text-align:left}th{background:#f3f3f3}img{max-width:100%;display:block;margin:1em 0}"
         "pre{background:#f6f6f6;padding:.6em;overflow:auto;max-height:24em}figure{margin:1.2em 0}"
         "figcaption{font-size:.9em;color:#444;max-width:60em}")


def to_html(blocks: list[Block], base: Path) -> str:
    """One HTML file with nothing outside it: the PNGs are embedded as base64 data URIs."""
    esc = html.escape
    out = []
    for block in blocks:
        kind = block[0]
        if kind == "h":
            out.append(f"<h{block[1]}>{esc(block[2])}</h{block[1]}>")
        elif kind == "p":
            out.append(f"<p>{esc(block[1])}</p>")
        elif kind == "ul":
            out.append("<ul>" + "".join(f"<li>{esc(item)}</li>" for item in block[1]) + "</ul>")
        elif kind == "table":
            head = "".join(f"<th>{esc(str(h))}</th>" for h in block[1])
            body = "".join("<tr>" + "".join(f"<td>{esc(str(v))}</td>" for v in row) + "</tr>" for row in block[2])
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        elif kind == "img":
            data = base64.b64encode((base / block[1]).read_bytes()).decode("ascii")
            text = block[3] if block[3:] else ""
            out.append(f'<figure><img alt="{esc(block[2])}" src="data:image/png;base64,{data}">'
                       f'<figcaption>{esc(text)}</figcaption></figure>')
        elif kind == "code":
            out.append(f"<pre>{esc(block[1])}</pre>")
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Portability study report</title>"
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(out) + "\n</body></html>\n")
