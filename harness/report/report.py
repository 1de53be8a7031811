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

from harness.analysis.analyze import (
    Analysis,
    CellKey,
    Comparison,
    analyze_dir,
    condition_order,
    load_analysis,
)
from harness.analysis.verdicts import (
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
from harness.report.figures import caption, make_figures
from harness.report.summary import headline_rows, settings_rows

Block = tuple  # ("h", level, text) | ("p", text) | ("ul", [text]) | ("table", head, rows) | ("img", path, alt, caption)
TEST_NAME = {"t": "paired t", "signflip": "sign-flip", "mcnemar": "McNemar (examples)", "none": "untested"}
OMNIBUS_NAME = {"rm_anova": "rm-ANOVA", "friedman": "Friedman", "anova": "ANOVA", "kruskal": "Kruskal-Wallis"}
OMNIBUS_STAT = {"rm_anova": "F", "friedman": "Q", "anova": "F", "kruskal": "H"}
EFFECT_NAME = {"ng2": "η²_G", "kendall_w": "Kendall W", "np2": "η²_p", "epsilon2": "ε²"}


def write_report(run_dir: Path, analysis: Analysis | None = None) -> Path:
    """Write run_dir/report.md, report.html and figures/*.png; returns the report.md path."""
    run_dir = Path(run_dir)
    refused = _refused(run_dir)  # every record read (and checked) before anything is written
    if analysis is None:
        analysis = load_analysis(run_dir) if (run_dir / "analysis.json").is_file() else analyze_dir(run_dir)
    manifest = _manifest(run_dir)
    figures = make_figures(analysis, run_dir / "figures")
    blocks = outline(analysis, manifest, [p.relative_to(run_dir) for p in figures], run_dir) + refused
    (run_dir / "report.md").write_text(to_markdown(blocks), encoding="utf-8")
    (run_dir / "report.html").write_text(to_html(blocks, run_dir), encoding="utf-8")
    return run_dir / "report.md"


def _refused(run_dir: Path) -> list[Block]:
    """Runs whose port hubport refused (another lineage, nothing carried): not results, but part of the story."""
    from harness.analysis.tables import refusals

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
    blocks += _aggregates(analysis)
    blocks += [("h", 2, "Methods"), ("p", _methods(analysis))]
    return blocks


def _summary(analysis: Analysis) -> list[Block]:
    o, comps = analysis.options, analysis.comparisons
    cells = {c.cell for c in comps}
    n = sorted({c.result.n for c in comps})
    tested = [c for c in comps if c.primary_test != "none"]
    items = []
    for a, b in dict.fromkeys((c.a, c.b) for c in comps):
        group = [c for c in comps if (c.a, c.b) == (a, b)]
        wins = sum(c.verdict.startswith(f"{a} beats") for c in group)
        losses = sum(c.verdict.startswith(f"{a} trails") for c in group)
        items.append(f"{a} vs {b}: {a} better in {wins} of {len(group)} cells, worse in {losses}, no supported "
                     f"claim in {len(group) - wins - losses}" + _replicated(analysis, a, b))
    text = (f"{len(comps)} paired comparisons in {len(cells)} cells ({_count(cells, 'family', 'families')}, "
            f"{_count(cells, 'pair', 'host pairs')}, {_count(cells, 'data', 'data combinations')}, "
            f"{_count(cells, 'budget', 'budgets')}), {n[0] if len(n) == 1 else f'{n[0]}-{n[-1]}'} paired seeds each; "
            f"{len(tested)} tested; the primary family ({', '.join(f'{a} − {b}' for a, b in o.primary)}) with "
            f"{CORRECTION_NAME[o.correction]}, the rest with {CORRECTION_NAME[o.secondary_correction]}, at alpha = "
            f"{o.alpha:g}. A claim is made only when the corrected p is below alpha and the interval excludes 0.")
    return [("h", 2, "Summary"), ("p", text), ("ul", items)]


def _replicated(analysis: Analysis, a: str, b: str) -> str:
    reps = [r for r in analysis.replicability if (r.a, r.b) == (a, b)]
    if not reps:
        return ""
    better, worse, cells = (sum(getattr(r, k) for r in reps) for k in ("better", "worse", "cells"))
    return (f"; replicability count (partial conjunctions, Dror et al. 2017): holds in {better} of {cells} cells"
            + (f", reversed in {worse}" if worse else ""))


def _count(cells: set[CellKey], name: str, plural: str) -> str:
    n = len({getattr(c, name) for c in cells})
    return f"{n} {plural if n != 1 else {'families': 'family', 'host pairs': 'host pair'}.get(plural, plural[:-1])}"


def _what_was_run(analysis: Analysis, manifest: dict) -> list[Block]:
    o = analysis.options
    seeds = sorted({s for c in analysis.conditions for s in c.seeds})
    items = [f"seeds: {', '.join(map(str, seeds))}",
             f"command: {manifest.get('command') or 'not recorded'}",
             f"git commit: {manifest.get('git_commit') or 'not recorded'}",
             f"analysis: test {o.test}, corrections {o.correction} (primary) and {o.secondary_correction} "
             f"(secondary), alpha {o.alpha:g}, {o.ci:.0%} intervals, {o.n_boot} bootstrap resamples, seed {o.seed}, "
             f"power {o.power:.0%}, target difference {pts(o.target_difference)} points"]
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
    plab = P_LABEL["fdr_bh"]  # the omnibus tests are corrected among themselves
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
            blocks.append(("table", ["comparison", "family", "seed level: difference (points) [CI]", "test", "p",
                                     "corrected p", "examples: difference [CI]", "examples: p (McNemar)",
                                     "effect", "P(a > b) [CI]",
                                     f"seeds for {pts(o.target_difference)} points at {o.power:.0%} power (alpha, alpha/m)"],
                           [_row(c) for c in comps]))
            blocks.append(("ul", [c.verdict for c in comps]))
        if cell in omnibus:
            blocks.append(("p", _omnibus_text(omnibus[cell].result, omnibus[cell].p_corr, plab,
                                              f"across {len(omnibus[cell].conditions)} conditions")))
    return blocks


def _row(c: Comparison) -> list[str]:
    """Seed-level and example-level evidence side by side."""
    r, x = c.result, c.examples
    effect = "—" if math.isnan(r.effect) else f"{EFFECT_LABEL[r.effect_name]} = {fmt_effect(r.effect)}"
    seed_level = f"{pts(r.mean_diff)} {interval(r.diff_ci)}" if not r.constant else f"{pts(r.mean_diff)} on every seed"
    example_level, example_p = "not recorded", "—"
    if x is not None:
        example_level = f"{pts(x.mean_diff)} {interval(x.ci)}"
        example_p = fmt_p(x.p) + (f" ({fmt_p(x.mcnemar_p)}, {x.a_only} vs {x.b_only} discordant)"
                                  if x.deterministic else "")
    seeds = f"{fmt_seeds(c.seeds_needed)}, {fmt_seeds(c.seeds_needed_corrected)}"
    if x is not None and x.deterministic:
        seeds = f"McNemar power {x.power:.0%} on {x.n_examples} examples"
    return [f"{c.a} − {c.b}", c.family, seed_level, TEST_NAME[c.primary_test], fmt_p(c.primary_p), fmt_p(c.p_corr),
            example_level, example_p, effect,
            f"{r.p_superior:.2f} [{r.p_superior_ci[0]:.2f}, {r.p_superior_ci[1]:.2f}]", seeds]


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
    plab = P_LABEL["fdr_bh"]
    rows = [[_arrow(f.pair), _arrow(f.data), str(f.budget), f"{f.a} − {f.b}", ", ".join(f.families),
             _omnibus_text(f.result, f.p_corr, plab, "").replace(" :", ":")] for f in analysis.family_omnibus]
    text = ("Does the advantage (a − b, per seed) differ between families? One test per host pair, data "
            "combination, budget and comparison (the family × condition interaction), corrected across these tests.")
    return [("h", 2, "Across families"), ("p", text),
            ("table", ["host pair", "data", "budget", "comparison", "families", "test"], rows)]


def _aggregates(analysis: Analysis) -> list[Block]:
    """rliable-style: each comparison per budget over every cell, and how many cells it holds in."""
    if not analysis.aggregates:
        return []
    reps = {(r.experiment, r.a, r.b): r for r in analysis.replicability}
    rows = []
    for g in analysis.aggregates:
        x = g.result
        poi = f"{x.p_improvement:.2f} " + (f"[{x.p_improvement_ci[0]:.2f}, {x.p_improvement_ci[1]:.2f}]"
                                           if not math.isnan(x.p_improvement_ci[0]) else "(every resample agrees)")
        rows.append([f"{g.a} − {g.b}", str(g.budget), str(x.cells), f"{pts(x.mean_diff)} {interval(x.ci)}", poi])
    counts = [f"{r.a} − {r.b}: {r.a} better in {r.better} and worse in {r.worse} of {r.cells} cells ({r.tested} "
              "tested; partial-conjunction replicability count)" for r in reps.values()]
    return [("h", 2, "Over all cells"),
            ("p", "Mean difference over cells with a stratified bootstrap interval (seeds resampled within each "
                  "cell) and the probability of improvement, P(a's run beats b's run), averaged over cells "
                  "(Agarwal et al. 2021)."),
            ("table", ["comparison", "budget", "cells", "mean difference (points) [CI]", "P(improvement) [CI]"], rows),
            ("ul", counts)]


def _methods(analysis: Analysis) -> str:
    o = analysis.options
    primary = ", ".join(f"{a} − {b}" for a, b in o.primary)
    return (f"Conditions are paired by receiving seed (same data order and initialisation stream); several "
            f"originating modules (origin seeds), when the grid has them, are a random factor crossed with the seeds. "
            f"The primary test is fixed in advance (--test {o.test}): the paired t-test on the per-seed differences "
            f"with its t interval (Satterthwaite df with several origins), or the exact sign-flip permutation test, "
            f"whose p cannot fall below 2/2^n. No pretest chooses a test. Where the difference is the same on every "
            f"seed (deterministic conditions), the primary test is the exact McNemar test on the shared evaluation "
            f"examples. Beside every seed-level result: a hierarchical bootstrap (origins, seeds, then the shared "
            f"examples; {o.n_boot} resamples, seed {o.seed}, percentile interval). Families: {primary} in every cell "
            f"are the primary family ({CORRECTION_NAME[o.correction]}); every other comparison is secondary "
            f"({CORRECTION_NAME[o.secondary_correction]}). Effect size: difference in points, then d_av (Lakens "
            f"2013). P(a > b): share of seeds where a beats b (ties half), Clopper-Pearson interval. Power: seeds "
            f"needed for {o.power:.0%} power to detect {pts(o.target_difference)} points, from the observed SD of "
            f"the differences (never the observed effect); exact McNemar power at the number of examples for "
            f"deterministic comparisons. Omnibus tests: repeated-measures ANOVA per cell and one-way ANOVA across "
            f"families (Friedman / Kruskal-Wallis with --test signflip), Benjamini-Hochberg among themselves. "
            f"See docs/statistics.md.")


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
