"""Terminal rendering of hubport's reports with rich (kept apart from the logic, which returns plain data)."""

from __future__ import annotations

import os.path

from rich.console import Console
from rich.table import Table

from hubport.port.plan import MAPS, PortPlan
from hubport.terminal import safe

STATUS_STYLE = {MAPS: "green", "missing": "yellow", "shape_mismatch": "red", "ffn_interior": "red",
                "unknown": "magenta", "needs_map": "yellow", "not_carried": "red"}
ROWS = 40


def inspect_report(console: Console, info: dict) -> None:
    table = Table(show_header=False, box=None)
    for key in ("source", "commit", "library", "format", "family", "base", "base_revision", "parameters", "tensors"):
        if info.get(key) is not None:
            table.add_row(f"[bold]{key}", f"{info[key]:,}" if isinstance(info[key], int) else safe(info[key]))
    table.add_row("[bold]config", ", ".join(f"{safe(k)}={safe(v)}" for k, v in info["config"].items()))
    console.print(table)
    kinds = [safe(f"{k} x{n}" if n > 1 else k) for k, n in info["slot_kinds"].items()]
    console.print(f"[bold]slots[/] ({len(info['slots'])}): " + ", ".join(kinds))
    _notes(console, info["notes"] + [f"not ported: {f}" for f in info["skipped_files"]])


def check_report(console: Console, plan: PortPlan, show_all: bool = False) -> None:
    console.print(f"[bold]{plan.family}[/] ({plan.library}), source host {plan.source_variant} -> target "
                  f"{plan.target.describe()}")
    style = "green" if plan.lineage.verdict == "same" else ("red" if plan.lineage.verdict == "different" else "yellow")
    console.print(f"[bold]lineage[/]: [{style}]{safe(plan.lineage.describe())}[/]")
    rows = plan.tensors if show_all else (plan.refused[:ROWS] or plan.tensors[:ROWS // 4])
    prefix = common_prefix([t.key for t in rows])
    if prefix:
        console.print(f"tensor names below start with [bold]{safe(prefix)}[/]", highlight=False)
    table = Table("tensor", "status", "source shape", "target shape", "tier", "reason")
    table.columns[0].overflow = "fold"
    table.columns[-1].overflow = "fold"
    for t in rows:
        table.add_row(safe(t.key[len(prefix):]), f"[{STATUS_STYLE.get(t.status, 'white')}]{t.status}",
                      str(list(t.shape)), str(list(t.target_shape)) if t.target_shape else "-", t.tier or "?",
                      safe(t.reason))
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
        console.print(f"[bold]residual map[/] (embeddings, Procrustes): {safe(residual['message'])}")
    tiers = sorted({t.tier for t in plan.tensors if t.tier})
    if tiers:
        console.print("tiers needed: " + ", ".join(f"{k} x{sum(t.tier == k for t in plan.tensors)}" for k in tiers))
    if plan.read:
        how = "whole matrices, every embedding row (--deep)" if plan.read["deep"] else (
            "bounded row samples; --deep reads all")
        console.print(f"read {plan.read['bytes'] / 1e6:.1f} MB of host weights ({how})")
    _notes(console, list(plan.notes))
    console.print(_will_run(plan))
    verdict = "[green]a full port is possible" if plan.full and plan.lineage.copy_is_right else (
        "[red]a full copy-port is not possible")
    console.print(verdict)


def _will_run(plan: PortPlan) -> str:
    """Which tier `port` will run (the one `check` answers for), or where to go when none will."""
    if plan.runs == "copy":
        return "port will run: [green]the copy[/] (`--map copy`, the default)"
    if plan.runs:
        return f"port will run: [green]--map {plan.runs}[/] (the copy is refused)"
    if plan.lineage.residual is None and not plan.lineage.copy_is_right:
        return ("port will run: [yellow]unknown[/] (the copy is refused; the map tiers need both hosts' weights "
                "at hand to be judged); `--map distill --data DATA` carries a module between any two hosts "
                "with one tokenizer")
    return ("port will run: [red]no tier[/] (the copy and every map are refused); `--map distill --data DATA` "
            "carries the module by distillation instead")


def port_summary(console: Console, report: dict) -> None:
    """What `port` did, ending with where the module is: the folder, and the repo, commit and URL when pushed."""
    counts = report["slot_map"]["counts"]
    console.print(f"[green]ported[/] {safe(report['source']['ref'])} ({report['source']['family']}, "
                  f"{report['source']['library']}) -> {safe(report['target']['ref'])}: "
                  f"{report['slot_map']['kept']} tensors", highlight=False)
    if report["dropped"]:
        console.print(f"[yellow]dropped {len(report['dropped'])}[/] ({counts}): "
                      + ", ".join(safe(d) for d in report["dropped"][:8])
                      + (" ..." if len(report["dropped"]) > 8 else ""), highlight=False)
    for warning in report.get("warnings") or []:
        console.print(f"[yellow]warning:[/] {safe(warning)}", highlight=False)
    if report.get("distill"):
        d = report["distill"]
        console.print(f"distilled {d['steps']} steps from {d['init']} on {d['inputs']} inputs ({d['labels']}): "
                      f"teacher agreement {_figure(d['agreement_before'])} -> {_figure(d['agreement_after'])} on "
                      f"{d['held_out']} held out, KL {_figure(d['kl_before'])} -> {_figure(d['kl_after'])}, "
                      f"{d['seconds']:.1f} s", highlight=False)
    if report.get("forced"):
        how = "copied" if report.get("map", "copy") in ("copy", "naive:drop", "naive:zero_pad") else \
            f"carried by --map {report['map']}"
        console.print(f"[yellow]{how} onto another lineage because of --force (recorded in hubport.json)")
    if report.get("verification"):
        v = report["verification"]
        console.print(f"verified: forward pass {v['forward_pass']}, module moves logits by up to "
                      f"{v['module_effect_max_abs_logit']:.3g}", highlight=False)
    if report.get("evaluation"):
        console.print(evaluation_line(report["evaluation"]), highlight=False)
    if report.get("out"):
        console.print(f"module: {safe(report['out'])}", highlight=False)
    elif report.get("pushed"):
        console.print("module: not kept locally (pushed only)", highlight=False)
    if report.get("pushed"):
        pushed_line(console, report["pushed"], None)


def evaluation_line(e: dict) -> str:
    """`evaluated on DATA (split, n): metric X zero-shot, Y after N further steps`."""
    metric = e.get("metric", "accuracy")
    data = e.get("data", {}).get("label") or e["dataset"]
    steps = f", {e[metric]:.3f} after {e['train_steps']} further steps" if e["train_steps"] else ""
    return f"evaluated on {data} ({e['split']}, n={e['n']}): {metric} {e['zero_shot']:.3f} zero-shot{steps}"


def pushed_line(console: Console, pushed: dict, folder) -> None:
    """`pushed DIR to REPO at commit SHA` and the URL on a line of its own (easy to copy)."""
    what = f"{safe(folder)} to " if folder is not None else ""
    console.print(f"[green]pushed[/] {what}{safe(pushed['repo'])} at commit {pushed['commit']}", highlight=False)
    console.print(f"url: {safe(pushed['url'])}", highlight=False)
    for note in pushed.get("notes", ()):
        console.print(f"[yellow]note:[/] {safe(note)}", highlight=False)


def env_report(console: Console, info: dict) -> None:
    table = Table(show_header=False, box=None)
    for key in ("hubport", "python", "platform", "accelerator", "token"):
        table.add_row(f"[bold]{key}", str(info[key]))
    for name, version in info["packages"].items():
        table.add_row(f"[bold]{name}", version or "not installed")
    for name, value in info["environment"].items():
        table.add_row(f"[bold]{name}", value if value is not None else "-")
    console.print(table)


def common_prefix(keys: list[str]) -> str:
    """The dotted prefix every key shares (cut at a dot, never the whole of a key), to print it once."""
    if len(keys) < 2:
        return ""
    shared = os.path.commonprefix(keys)
    return shared[: shared.rfind(".") + 1] if "." in shared else ""


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _notes(console: Console, notes: list[str]) -> None:
    for note in notes:
        console.print(f"[yellow]note:[/] {safe(note)}")
