"""Terminal rendering of hubport's reports with rich (kept apart from the logic, which returns plain data)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from hubport.port.plan import MAPS, PortPlan

STATUS_STYLE = {MAPS: "green", "missing": "yellow", "shape_mismatch": "red", "ffn_interior": "red",
                "unknown": "magenta", "needs_map": "yellow", "not_carried": "red"}
ROWS = 40


def inspect_report(console: Console, info: dict) -> None:
    table = Table(show_header=False, box=None)
    for key in ("source", "commit", "library", "format", "family", "base", "base_revision", "parameters", "tensors"):
        if info.get(key) is not None:
            table.add_row(f"[bold]{key}", f"{info[key]:,}" if isinstance(info[key], int) else str(info[key]))
    table.add_row("[bold]config", ", ".join(f"{k}={v}" for k, v in info["config"].items()))
    console.print(table)
    kinds = [f"{k} x{n}" if n > 1 else k for k, n in info["slot_kinds"].items()]
    console.print(f"[bold]slots[/] ({len(info['slots'])}): " + ", ".join(kinds))
    _notes(console, info["notes"] + [f"not ported: {f}" for f in info["skipped_files"]])


def check_report(console: Console, plan: PortPlan, show_all: bool = False) -> None:
    console.print(f"[bold]{plan.family}[/] ({plan.library}), source host {plan.source_variant} -> target "
                  f"{plan.target.describe()}")
    style = "green" if plan.lineage.verdict == "same" else ("red" if plan.lineage.verdict == "different" else "yellow")
    console.print(f"[bold]lineage[/]: [{style}]{plan.lineage.describe()}[/]")
    table = Table("tensor", "status", "source shape", "target shape", "tier", "reason")
    rows = plan.tensors if show_all else (plan.refused[:ROWS] or plan.tensors[:ROWS // 4])
    for t in rows:
        table.add_row(t.key, f"[{STATUS_STYLE.get(t.status, 'white')}]{t.status}", str(list(t.shape)),
                      str(list(t.target_shape)) if t.target_shape else "-", t.tier or "?", t.reason)
    console.print(table)
    hidden = len(plan.tensors) - len(rows)
    counts = ", ".join(f"{n} {k}" for k, n in plan.counts().items())
    console.print(f"{len(plan.tensors)} tensors: {counts}" + (f" ({hidden} rows not shown; --all)" if hidden else ""))
    if plan.similarity:
        rel = [v["relative_difference"] for v in plan.similarity.values()]
        cos = [v["cosine"] for v in plan.similarity.values()]
        console.print(f"host weights at {len(rel)} adapted slots: relative difference "
                      f"{min(rel):.3f}..{max(rel):.3f}, cosine {min(cos):.3f}..{max(cos):.3f}")
    residual = plan.lineage.residual
    if residual and residual.get("message"):
        console.print(f"[bold]residual map[/] (embeddings, Procrustes): {residual['message']}")
    tiers = sorted({t.tier for t in plan.tensors if t.tier})
    if tiers:
        console.print("tiers needed: " + ", ".join(f"{k} x{sum(t.tier == k for t in plan.tensors)}" for k in tiers))
    if plan.read:
        how = "whole matrices, every embedding row (--deep)" if plan.read["deep"] else (
            "bounded row samples; --deep reads all")
        console.print(f"read {plan.read['bytes'] / 1e6:.1f} MB of host weights ({how})")
    _notes(console, list(plan.notes))
    verdict = "[green]a full port is possible" if plan.full and plan.lineage.copy_is_right else (
        "[red]a full copy-port is not possible")
    console.print(verdict)


def port_summary(console: Console, report: dict) -> None:
    counts = report["slot_map"]["counts"]
    console.print(f"[green]ported[/] {report['source']['ref']} ({report['source']['family']}, "
                  f"{report['source']['library']}) -> {report['target']['ref']}: "
                  f"{report['slot_map']['kept']} tensors written to {report['out']}")
    if report["dropped"]:
        console.print(f"[yellow]dropped {len(report['dropped'])}[/] ({counts}): " + ", ".join(report["dropped"][:8])
                      + (" ..." if len(report["dropped"]) > 8 else ""))
    if report.get("forced"):
        console.print("[yellow]copied onto another lineage because of --force (recorded in hubport.json)")
    if report.get("evaluation"):
        e = report["evaluation"]
        steps = f", {e['accuracy']:.3f} after {e['train_steps']} further steps" if e["train_steps"] else ""
        console.print(f"evaluated on {e['dataset']} ({e['split']}, n={e['n']}): accuracy {e['zero_shot']:.3f} "
                      f"zero-shot{steps}")
    if report.get("verification"):
        v = report["verification"]
        console.print(f"verified: forward pass {v['forward_pass']}, module moves logits by up to "
                      f"{v['module_effect_max_abs_logit']:.3g}")


def _notes(console: Console, notes: list[str]) -> None:
    for note in notes:
        console.print(f"[yellow]note:[/] {note}")
