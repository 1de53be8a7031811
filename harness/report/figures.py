"""The report's figures as PNG: per-family scores by seed, learning curves, and the portability heatmap.

Everything is drawn from an Analysis (per-seed values live in its condition summaries), with matplotlib's
object API on the Agg canvas (no pyplot state) and seaborn for the box/strip plots. Scores are in points.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from harness.analysis.analyze import Analysis, condition_order

DPI = 110


def _new_figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def _wrap_pair(pair: str) -> str:
    return pair.replace(" -> ", " →\n")


def _arrow(text: str) -> str:
    return text.replace(" -> ", " → ")


def scores_frame(analysis: Analysis) -> pd.DataFrame:
    """Long table of every per-seed score in points: cell columns, condition, seed, score."""
    rows = [{"experiment": s.cell.experiment, "family": s.cell.family, "library": s.cell.library,
             "pair": s.cell.pair, "data": s.cell.data, "budget": s.cell.budget, "condition": s.condition,
             "seed": seed, "score": value * 100}
            for s in analysis.conditions for seed, value in zip(s.seeds, s.values)]
    return pd.DataFrame(rows)


FIXED_COLOUR = {"ported": 0, "scratch": 2, "sampled": 3, "host": 7, "zero_pad": 4, "drop": 5}


def _palette(conditions: list[str]) -> dict[str, tuple]:
    """The same colour for a condition in every figure and run; ported variants and others take the rest."""
    import seaborn as sns

    colours = sns.color_palette("colorblind", 10)
    spare = [i for i in (1, 8, 9, 6) if i not in FIXED_COLOUR.values()]
    out = {}
    for k, cond in enumerate(c for c in conditions if c not in FIXED_COLOUR):
        out[cond] = colours[spare[k]] if k < len(spare) else sns.color_palette("husl", len(conditions))[k]
    return {c: colours[FIXED_COLOUR[c]] if c in FIXED_COLOUR else out[c] for c in conditions}


def _family_groups(frame: pd.DataFrame):
    return frame.groupby(["experiment", "family", "library"], sort=True)


def scores_figure(frame: pd.DataFrame, title: str, palette: dict[str, tuple]):
    """Box + strip of each condition's per-seed scores (one dot per seed)."""
    import seaborn as sns

    combos = sorted(frame.groupby(["pair", "data"]).groups)
    budgets = sorted(frame["budget"].unique())
    order = condition_order(set(frame["condition"]))
    label_w = 0.09 * max(len(c) for c in order) + 0.6
    fig = _new_figure(label_w + 3.0 * len(budgets), 0.9 + (0.42 * len(order) + 0.7) * len(combos))
    axes = fig.subplots(len(combos), len(budgets), squeeze=False, sharey=True, sharex=True)
    for (i, (pair, data)), (j, budget) in ((r, c) for r in enumerate(combos) for c in enumerate(budgets)):
        ax = axes[i][j]
        part = frame[(frame["pair"] == pair) & (frame["data"] == data) & (frame["budget"] == budget)]
        if part.empty:
            ax.set_axis_off()
            continue
        sns.boxplot(data=part, x="score", y="condition", order=order, hue="condition", palette=palette,
                    legend=False, ax=ax, fliersize=0, width=0.55, boxprops={"alpha": 0.45})
        sns.stripplot(data=part, x="score", y="condition", order=order, hue="condition", palette=palette,
                      legend=False, ax=ax, size=4, jitter=0.08, edgecolor="0.2", linewidth=0.4)
        ax.set_title(f"{_arrow(pair)} · {_arrow(data)}\nbudget {budget}", fontsize=8)
        ax.set_xlabel("accuracy (points)" if i == len(combos) - 1 else "", fontsize=8)
        ax.set_ylabel("")
        ax.tick_params(labelsize=8)
        ax.grid(axis="x", color="0.92")
    fig.suptitle(title, fontsize=10)
    return fig


def curves_figure(frame: pd.DataFrame, title: str, palette: dict[str, tuple], ci: float):
    """Mean score over budgets per condition with its t-interval band, one panel per host pair and data."""
    combos = sorted(frame.groupby(["pair", "data"]).groups)
    order = condition_order(set(frame["condition"]))
    cols = {1: 1, 2: 2, 4: 2}.get(len(combos), 3)
    rows = math.ceil(len(combos) / cols)
    fig = _new_figure(1.6 + 3.6 * cols, 0.8 + 2.9 * rows)
    axes = fig.subplots(rows, cols, squeeze=False, sharey=True).ravel()
    budgets = sorted(frame["budget"].unique())
    positive = [b for b in budgets if b > 0]
    for ax, (pair, data) in zip(axes, combos):
        part = frame[(frame["pair"] == pair) & (frame["data"] == data)]
        for cond in order:
            stats = part[part["condition"] == cond].groupby("budget")["score"].agg(["mean", "std", "count"])
            if stats.empty:
                continue
            half = _t_half(stats["std"].to_numpy(), stats["count"].to_numpy(), ci)
            style = {"ls": "--"} if cond == "host" else {"marker": "o", "ms": 3.5}
            ax.plot(stats.index, stats["mean"], color=palette[cond], label=cond, lw=1.4, **style)
            ax.fill_between(stats.index, stats["mean"] - half, stats["mean"] + half, color=palette[cond],
                            alpha=0.18, lw=0)
        if positive and max(positive) / min(positive) >= 10:
            ax.set_xscale("symlog", linthresh=min(positive))
        ax.set_xticks(budgets, [str(b) for b in budgets], fontsize=8)
        ax.set_title(f"{_arrow(pair)} · {_arrow(data)}", fontsize=8)
        ax.set_xlabel("training budget (steps)", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(color="0.92")
    for ax in axes[::cols]:
        ax.set_ylabel(f"accuracy (points), mean ± {ci:.0%} CI", fontsize=8)
    for ax in axes[len(combos):]:
        ax.set_axis_off()
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    return fig


def _t_half(sd: np.ndarray, n: np.ndarray, ci: float) -> np.ndarray:
    import scipy.stats

    with np.errstate(invalid="ignore", divide="ignore"):
        half = scipy.stats.t.ppf(0.5 + ci / 2, np.maximum(n - 1, 1)) * sd / np.sqrt(n)
    return np.where(n > 1, np.nan_to_num(half), 0.0)


def heatmap_frame(analysis: Analysis, a: str = "ported", b: str = "scratch") -> pd.DataFrame:
    """a - b in points per family x host pair, with its data combination, budget and corrected p."""
    rows = [{"family": f"{c.cell.family}/{c.cell.library}", "pair": c.cell.pair, "data": c.cell.data,
             "budget": c.cell.budget, "experiment": c.cell.experiment, "diff": c.result.mean_diff * 100,
             "p_corr": c.p_corr, "untested": bool(c.result.constant)}
            for c in analysis.comparisons if c.a == a and c.b == b]
    return pd.DataFrame(rows)


def heatmap_figure(frame: pd.DataFrame, alpha: float, title: str):
    """Family x host pair panels (rows: data combination, columns: budget); * marks corrected p < alpha."""
    import seaborn as sns

    datas, budgets = sorted(frame["data"].unique()), sorted(frame["budget"].unique())
    families, pairs = sorted(frame["family"].unique()), sorted(frame["pair"].unique())
    limit = max(float(np.nanmax(np.abs(frame["diff"]))), 0.5)
    label_w = 0.085 * max(len(f) for f in families) + 0.5
    fig = _new_figure(label_w + 1.2 + len(budgets) * (0.9 + 1.05 * len(pairs)),
                      1.0 + len(datas) * (0.9 + 0.42 * len(families)))
    axes = fig.subplots(len(datas), len(budgets), squeeze=False, sharey=True)
    for (i, data), (j, budget) in ((r, c) for r in enumerate(datas) for c in enumerate(budgets)):
        part = frame[(frame["data"] == data) & (frame["budget"] == budget)]
        diff = part.pivot_table(index="family", columns="pair", values="diff").reindex(families, columns=pairs)
        p = part.pivot_table(index="family", columns="pair", values="p_corr").reindex(families, columns=pairs)
        untested = part.pivot_table(index="family", columns="pair", values="untested", aggfunc="max").reindex(
            families, columns=pairs).fillna(False).astype(bool)
        text = diff.map(lambda v: "" if pd.isna(v) else f"{v:+.1f}") + p.map(
            lambda v: "*" if (not pd.isna(v) and v < alpha) else "") + untested.map(
            lambda u: "\nuntested" if u else "")
        sns.heatmap(diff, ax=axes[i][j], cmap="vlag_r", vmin=-limit, vmax=limit, annot=text.to_numpy(), fmt="",
                    annot_kws={"fontsize": 8}, cbar=j == len(budgets) - 1, linewidths=0.5, linecolor="white",
                    cbar_kws={"label": "points"})
        ax = axes[i][j]
        ax.set_title(f"{_arrow(data)}\nbudget {budget}", fontsize=8)
        ax.set_xticks(np.arange(len(pairs)) + 0.5, [_wrap_pair(x) for x in pairs], fontsize=7, rotation=0)
        ax.tick_params(axis="y", labelsize=8, rotation=0)
        ax.set_xlabel("")
        ax.set_ylabel("")
    fig.suptitle(title, fontsize=10)
    return fig


def forest_figure(analysis: Analysis):
    """Every comparison's mean difference (points) with its interval, one row each: the t interval over seeds, or
    where seeds cannot vary (the same difference on every seed) the interval over examples that goes with the
    McNemar test. Filled: a supported claim (corrected p < alpha, interval excludes 0), hollow: not, grey x:
    untested (no per-example answers recorded to test it on)."""
    comps = sorted(analysis.comparisons, key=lambda c: (c.cell.family, c.cell.library, c.cell.pair, c.cell.data,
                                                        c.a, c.b, c.cell.budget))
    if not comps:
        return None
    fig = _new_figure(7.5, 1.0 + 0.24 * len(comps))
    ax = fig.subplots()
    alpha = analysis.options.alpha
    labels = []
    for y, c in enumerate(comps):
        r = c.result
        diff = r.mean_diff * 100
        labels.append(f"{c.cell.family}/{c.cell.library} · {c.a} − {c.b} · budget {c.cell.budget}")
        interval = r.diff_ci if not r.constant else (c.examples.ci if c.examples is not None else None)
        if interval is None:
            ax.plot([diff], [y], marker="x", color="0.45", ms=6, ls="")
            ax.annotate("untested", (diff, y), xytext=(6, -3), textcoords="offset points", fontsize=7, color="0.45")
            continue
        low, high = (v * 100 if math.isfinite(v) else diff for v in interval)
        supported = c.p_corr < alpha and (low > 0 or high < 0)
        colour = "#1b7837" if supported and diff > 0 else ("#b2182b" if supported else "0.35")
        ax.plot([low, high], [y, y], color=colour, lw=1.6)
        ax.plot([diff], [y], marker="o", ms=5, color=colour, mfc=colour if supported else "white", ls="")
    ax.axvline(0, color="0.6", lw=0.8, ls="--")
    ax.set_yticks(range(len(comps)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(f"difference a − b (points), {analysis.options.ci:.0%} interval (seeds; examples where seeds "
                  "cannot vary)", fontsize=8)
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(axis="x", color="0.92")
    fig.suptitle("Paired differences, every comparison", fontsize=10)
    return fig


CAPTIONS = {
    "differences": "Each row is one paired comparison (a − b, in accuracy points) with its interval: the t "
                   "interval over seeds, or, where the difference is the same on every seed, the interval over "
                   "evaluation examples that goes with the exact McNemar test. Filled dots are supported claims "
                   "(corrected p below alpha and the interval excludes 0: green when a is better, red when worse); "
                   "hollow dots are not; a grey x is untested (no per-example answers recorded). Read: which rows "
                   "sit clear of the dashed 0.",
    "heatmap": "Ported minus the first baseline (points) per family and host pair, one panel per data and budget; "
               "* marks a corrected p below alpha, 'untested' a difference that is the same on every seed. The "
               "colour scale is symmetric around 0 and fitted to the largest difference shown.",
    "curves": "Mean accuracy over training budgets per condition, band = t-interval of the mean over seeds. Read: "
              "how far the ported module starts ahead, and at which budget the others catch up.",
    "scores": "Every seed's score per condition and budget (box: quartiles; dots: seeds). Read: the spread "
              "behind each mean, and whether one seed drives a difference.",
}


def caption(path: Path) -> str:
    """What to read from a figure, by its file name."""
    return CAPTIONS.get(path.stem.split("-", 1)[0], "")


def make_figures(analysis: Analysis, out_dir: Path) -> list[Path]:
    """Write every figure for the report under out_dir; returns their paths in reading order."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = scores_frame(analysis)
    palette = _palette(condition_order(set(frame["condition"])))
    paths: list[Path] = []
    baselines = [c for c in condition_order({c.b for c in analysis.comparisons if c.a == "ported"})
                 if not c.startswith("ported")]
    heat = heatmap_frame(analysis, "ported", baselines[0]) if baselines else pd.DataFrame()
    forest = forest_figure(analysis)
    if forest is not None:
        paths.append(_save(forest, out_dir / "differences.png"))
    if not heat.empty and heat["family"].nunique() > 1:  # ported − scratch, or − the first baseline there is
        title = f"Portability: ported − {baselines[0]} (points; * corrected p < alpha)"
        paths.append(_save(heatmap_figure(heat, analysis.options.alpha, title), out_dir / "heatmap.png"))
    for (experiment, family, library), part in _family_groups(frame):
        name = f"{family} ({library})" + (f" · {experiment}" if frame["experiment"].nunique() > 1 else "")
        slug = _slug(f"{experiment}-{family}-{library}")
        if part["budget"].nunique() > 1:
            fig = curves_figure(part, f"{name}: learning curves", palette, analysis.options.ci)
            paths.append(_save(fig, out_dir / f"curves-{slug}.png"))
        fig = scores_figure(part, f"{name}: scores by seed", palette)
        paths.append(_save(fig, out_dir / f"scores-{slug}.png"))
    return paths


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=DPI)
    return path
