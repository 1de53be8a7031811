"""The report's first table: mean score with its interval per condition x budget, the originating module on its
own host, and the ported module's function fidelity; and the settings table that replaces a raw grid dump.

Both read only what the analysis and the run records hold, so new conditions, budgets or families appear as
rows and columns without code here changing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from harness.analysis.analyze import Analysis, condition_order
from harness.analysis.verdicts import pts

GROUP = ("experiment", "family", "library", "pair", "data")


def headline_rows(analysis: Analysis, run_dir: Path | None) -> tuple[list[str], list[list[str]]]:
    """(head, rows): one row per family/pair/data and condition, one column per budget, plus origin and fidelity."""
    budgets = sorted({s.cell.budget for s in analysis.conditions})
    extra = _from_records(run_dir) if run_dir is not None else {}
    groups: dict[tuple, dict] = {}
    for s in analysis.conditions:
        key = tuple(getattr(s.cell, g) for g in GROUP)
        groups.setdefault(key, {}).setdefault(s.condition, {})[s.cell.budget] = s
    rows = []
    for key in sorted(groups):
        experiment, family, library, pair, data = key
        name = f"{family} ({library})" + (f" · {experiment}" if len({k[0] for k in groups}) > 1 else "")
        where = f"{_arrow(pair)} · {_arrow(data)}"
        info = extra.get((family, library, pair, data), {})
        for cond in condition_order(set(groups[key])):
            cells = [_mean_ci(groups[key][cond].get(b)) for b in budgets]
            fidelity = info.get("fidelity", {}).get(cond)
            rows.append([name, where, cond, *cells, "—" if fidelity is None else f"{fidelity:.2f}"])
        if info.get("origin") is not None:
            rows.append([name, where, "originating module, on its own host", pts(info["origin"]),
                         *["" for _ in budgets[1:]], "—"])
    head = ["family", "host pair · data", "condition", *[f"budget {b}" for b in budgets],
            "fidelity (effect r, budget 0)"]
    return head, rows


def _mean_ci(s) -> str:
    if s is None:
        return "—"
    low, high = s.ci
    if not (math.isfinite(low) and math.isfinite(high)) or low == high:
        return pts(s.mean)
    # an accuracy lies in [0, 1]: a t interval over few seeds can reach past it, and is shown cut there
    return f"{pts(s.mean)} [{pts(max(low, 0.0))}, {pts(min(high, 1.0))}]"


def _from_records(run_dir: Path) -> dict:
    """Per family/pair/data: the originating modules' mean accuracy, and mean function fidelity per condition."""
    out: dict[tuple, dict] = {}
    origins: dict[tuple, dict[int, float]] = {}
    fidelity: dict[tuple, dict[str, list[float]]] = {}
    for path in sorted((Path(run_dir) / "runs").glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            s = record["spec"]
            key = (s["family"]["name"], s["family"]["library"], f"{s['origin']} -> {s['receiving']}",
                   f"{s['origin_data']} -> {s['receiving_data']}")
        except (OSError, ValueError, KeyError, TypeError):
            continue
        origin = record.get("origin") or {}
        if isinstance(origin.get("accuracy"), (int, float)):
            origins.setdefault(key, {})[origin.get("seed", 0)] = float(origin["accuracy"])
        value = (record.get("fidelity") or {}).get("effect_correlation")
        if isinstance(value, (int, float)) and math.isfinite(value):
            fidelity.setdefault(key, {}).setdefault(s["condition"], []).append(float(value))
    for key in origins.keys() | fidelity.keys():
        seeds = origins.get(key, {})
        out[key] = {"origin": sum(seeds.values()) / len(seeds) if seeds else None,
                    "fidelity": {c: sum(v) / len(v) for c, v in fidelity.get(key, {}).items()}}
    return out


def settings_rows(config: dict) -> list[list[str]]:
    """The grid configuration as setting / value rows (nested keys dotted, lists joined)."""
    rows: list[list[str]] = []

    def walk(prefix: str, value) -> None:
        if isinstance(value, dict) and value and len(json.dumps(value, default=str)) > 60:
            for k in sorted(value):
                walk(f"{prefix}.{k}" if prefix else str(k), value[k])
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for i, v in enumerate(value):
                walk(f"{prefix}[{i}]", v)
        else:
            rows.append([prefix, _text(value)])

    walk("", config)
    return rows


def _text(value) -> str:
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={_text(v)}" for k, v in value.items())
    return "—" if value is None else str(value)


def _arrow(text: str) -> str:
    return text.replace(" -> ", " → ")
