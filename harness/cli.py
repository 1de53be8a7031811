"""The `harness` command line: run a grid, analyse its records, write (and push) the report.

Heavy libraries are imported inside the commands so that `harness --help` is instant. Every HarnessError, and
every HubportError from the library underneath, becomes one red line and an exit code from EXIT_CODES (the
traceback only with HUBPORT_DEBUG=1); a grid with failed runs exits with 1.
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from harness import errors
from harness.errors import ConfigError
from hubport.cli import EXIT_CODES as HUBPORT_EXIT_CODES
from hubport.errors import HubportError
from hubport.terminal import scrub

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Run the portability study (ported, scratch, sampled, host), analyse it, report it.")
err = Console(stderr=True)
FAILED_RUNS_EXIT = 1
INTERRUPTED_EXIT, BUG_EXIT = 130, 70
# The harness's own errors; the library's keep the codes of hubport's table (most specific class wins).
EXIT_CODES: dict[type[HubportError], int] = {
    **HUBPORT_EXIT_CODES,
    errors.ConfigError: 8,
    errors.StatsError: 8,
    errors.RecordError: 4,
    errors.BusyError: 9,
    errors.HarnessError: 2,
}

Axis = Annotated[str | None, typer.Option(help="Only these values (comma-separated, as in the config).")]


def exit_code(exc: HubportError) -> int:
    """The code of the most specific class of exc in EXIT_CODES."""
    return next((EXIT_CODES[cls] for cls in type(exc).__mro__ if cls in EXIT_CODES), 2)


def handled(fn):
    """One line and an exit code for the errors of the harness and hubport; a traceback only for a bug run
    with HUBPORT_DEBUG=1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except HubportError as exc:
            if os.environ.get("HUBPORT_DEBUG"):
                raise
            err.print(f"[red]error:[/] {exc.one_line()}", highlight=False, soft_wrap=True)
            raise typer.Exit(exit_code(exc)) from None
        except KeyboardInterrupt:
            err.print("[red]interrupted[/]: finished runs are kept; rerun the same command to resume")
            raise typer.Exit(INTERRUPTED_EXIT) from None
        except Exception as exc:   # a bug: still one line unless debugging
            if os.environ.get("HUBPORT_DEBUG") or isinstance(exc, typer.Exit):
                raise
            err.print(f"[red]internal error:[/] {type(exc).__name__}: {str(exc)[:200]} "
                      "(set HUBPORT_DEBUG=1 for the traceback)", highlight=False, soft_wrap=True)
            raise typer.Exit(BUG_EXIT) from None

    return wrapper


@app.command()
@handled
def run(config: Annotated[Path, typer.Argument(help="Grid file (YAML), e.g. configs/paper.yaml.")],
        out: Annotated[Path, typer.Option("--out", help="Run directory: records, cache, manifest.")],
        families: Axis = None, conditions: Axis = None, budgets: Axis = None, seeds: Axis = None,
        retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Run failed runs again.")] = False,
        executor: Annotated[str, typer.Option(help="local or ray.")] = "local",
        ray_address: Annotated[str | None, typer.Option(help="An existing Ray cluster.")] = None,
        jobs: Annotated[int, typer.Option(help="Local worker processes.")] = 1,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and stop.")] = False) -> None:
    """Run every run of the grid not yet done in --out (resumable: rerun the same command after a crash)."""
    from harness.grid.spec import expand, load_grid, narrow
    from harness.runs.executors import count, run_grid
    from harness.runs.rundir import RunDir

    RunDir(out).check_root()
    grid = load_grid(config)
    picked = narrow(grid, families=families, conditions=conditions, budgets=budgets, seeds=seeds)
    if dry_run:  # resolve into a scratch folder: a dry run writes nothing into --out
        import tempfile

        with tempfile.TemporaryDirectory(prefix="harness-dry-run-") as scratch:
            specs = expand(picked, resolvers=default_resolvers(Path(scratch)))
        err.print(f"{len(specs)} runs ({', '.join(f'{n} {c}' for c, n in count(specs).items())}) would go to "
                  f"{out}; nothing was written", highlight=False)
        err.print(estimate(specs, out), highlight=False)
        for spec in specs:
            print(spec.run_id)
        return
    specs = expand(picked, resolvers=default_resolvers(out))
    plan = ", ".join(f"{n} {c}" for c, n in count(specs).items())
    err.print(f"{len(specs)} runs ({plan}) -> {out}", highlight=False)
    summary = run_grid(specs, out, config=grid.to_dict(), command=scrub(shlex.join(["harness", *sys.argv[1:]])),
                       executor=executor, jobs=jobs, ray_address=ray_address, retry_failed=retry_failed,
                       console=err)
    err.print(f"done: {summary.ok} new, {summary.already_done} already done, {summary.refused} refused by "
              f"hubport, {summary.failed} failed, {summary.skipped_failed} failed earlier (not retried)",
              highlight=False)
    err.print(f"records -> {out / 'runs'}; next: harness analyze {out}", highlight=False)
    if summary.failed or summary.skipped_failed:
        err.print(f"[yellow]see {out / 'failed'}; rerun with --retry-failed to try them again[/]",
                  highlight=False)
    if summary.failed:
        raise typer.Exit(FAILED_RUNS_EXIT)


@app.command()
@handled
def analyze(run_dir: Annotated[Path, typer.Argument(help="A run directory of `harness run`.")],
            correction: Annotated[str, typer.Option(
                help="Correction of the primary family: holm or fdr_bh.")] = "holm",
            secondary_correction: Annotated[str, typer.Option(
                help="Correction of the other comparisons: fdr_bh or holm.")] = "fdr_bh",
            test: Annotated[str, typer.Option(
                help="The primary test, fixed in advance: t (paired t, t intervals) or signflip (exact; its "
                     "smallest p is 2/2^seeds).")] = "t",
            n_boot: Annotated[int, typer.Option(help="Bootstrap resamples (examples, aggregates).")] = 10000,
            seed: Annotated[int, typer.Option(help="Seed of the bootstrap.")] = 0,
            alpha: Annotated[float, typer.Option(help="Significance level.")] = 0.05,
            ci: Annotated[float, typer.Option(help="Confidence level of the intervals.")] = 0.95,
            power: Annotated[float, typer.Option(help="Power for the seeds-needed analysis.")] = 0.8,
            target_difference: Annotated[float, typer.Option(
                help="Smallest difference of interest for power, in metric units (0.02 = 2 points).")] = 0.02,
            compare: Annotated[list[str] | None, typer.Option(
                help="A pair to compare, A:B (repeatable); default: every ported* vs every other.")] = None,
            primary: Annotated[list[str] | None, typer.Option(
                help="A primary-family pair, A:B (repeatable); default: the grid's analysis.primary, else "
                     "ported:scratch and ported:sampled.")] = None,
            as_json: Annotated[bool, typer.Option("--json", help="Print what was written as JSON.")] = False,
            ) -> None:
    """Paired comparisons of the conditions per cell; writes analysis.json and analysis.csv."""
    from harness.analysis.analyze import AnalysisOptions, analyze_dir

    pairs, chosen = _pairs(compare, "--compare"), _pairs(primary, "--primary")
    options = AnalysisOptions(correction=correction, secondary_correction=secondary_correction, test=test,
                              n_boot=n_boot, seed=seed, alpha=alpha, ci=ci, power=power,
                              target_difference=target_difference, comparisons=pairs,
                              **({"primary": chosen} if chosen else {}))
    _need_run_dir(run_dir)
    analysis = analyze_dir(run_dir, options)
    files = [run_dir / "analysis.json", run_dir / "analysis.csv"]
    if as_json:
        print(json.dumps({"comparisons": len(analysis.comparisons), "files": [str(f) for f in files]}))
        return
    _comparison_table(analysis)
    err.print(f"analysis of {run_dir}: {len(analysis.comparisons)} comparisons -> {files[0]}, {files[1]}",
              highlight=False)


@app.command()
@handled
def report(run_dir: Annotated[Path, typer.Argument(help="A run directory of `harness run`.")],
           push: Annotated[str | None, typer.Option(help="Hub repo id to push the results to.")] = None,
           private: Annotated[bool, typer.Option("--private", help="Create the Hub repo private.")] = False,
           as_json: Annotated[bool, typer.Option("--json", help="Print what was written as JSON.")] = False,
           ) -> None:
    """Write report.md, report.html and figures; optionally push records and report to the Hub."""
    from harness.report.report import write_report

    _need_run_dir(run_dir)
    path = write_report(run_dir)
    figures = sorted((run_dir / "figures").glob("*.png"))
    result = {"report": str(path), "html": str(run_dir / "report.html"), "figures": [str(f) for f in figures]}
    if push:
        from harness.report.publish import push_results

        result["pushed"] = push_results(run_dir, push, private=private)
    if as_json:
        print(json.dumps(result))
        return
    err.print(f"report -> {path} and {result['html']} (open it in a browser)", highlight=False)
    err.print(f"figures -> {run_dir / 'figures'}: " + ", ".join(f.name for f in figures), highlight=False)
    if push:
        err.print(f"pushed -> {result['pushed']}", highlight=False)


@app.command()
@handled
def table(run_dir: Annotated[Path, typer.Argument(help="A run directory with analysis.json.")],
          out: Annotated[Path, typer.Option("--out", help="Markdown file to write, e.g. BENCHMARKS.md.")],
          title: Annotated[str, typer.Option(help="Heading of the table.")] = "Portability benchmark") -> None:
    """Write the headline table (BENCHMARKS.md) from the analysis."""
    from harness.analysis.analyze import load_analysis
    from harness.report.headline import headline_table

    out.write_text(headline_table(load_analysis(run_dir), title=title))
    err.print(f"table -> {out}", highlight=False)


def _pairs(values: list[str] | None, option: str) -> tuple[tuple[str, str], ...] | None:
    if not values:
        return None
    bad = [c for c in values if c.count(":") != 1]
    if bad:
        raise ConfigError(f"{option} '{bad[0]}' is not A:B", f"e.g. {option} ported:scratch")
    return tuple(tuple(c.split(":")) for c in values)


def estimate(specs, out: Path) -> str:
    """The time the runs not yet done would take, from the step and evaluation rates measured in out's records."""
    import json as json_lib

    steps = seconds = evals = eval_seconds = 0.0
    done = set()
    for path in sorted((out / "runs").glob("*.json")) if (out / "runs").is_dir() else []:
        try:
            record = json_lib.loads(path.read_text(encoding="utf-8"))
            reached = 0
            for budget in sorted(record.get("metrics") or {}, key=int):
                m = record["metrics"][budget]
                steps, seconds = steps + int(budget) - reached, seconds + float(m.get("train_seconds") or 0)
                evals, eval_seconds = evals + 1, eval_seconds + float(m.get("eval_seconds") or 0)
                reached = int(budget)
            done.add(record["run_id"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
    todo = [s for s in specs if s.run_id not in done]
    total_steps = sum(max(s.budgets, default=0) for s in todo if s.condition != "host")
    total_evals = sum(1 if s.condition == "host" else len(s.budgets) for s in todo)
    if not steps or not evals:
        return (f"{len(todo)} runs to do, {total_steps} training steps, {total_evals} evaluations; no step rate "
                f"measured in {out} yet (run one seed first, e.g. --seeds 0, then dry-run again for an estimate)")
    eta = total_steps * seconds / steps + total_evals * eval_seconds / evals
    return (f"{len(todo)} runs to do, {total_steps} training steps, {total_evals} evaluations: about "
            f"{eta / 60:.1f} min at the {seconds / steps:.3f} s/step and {eval_seconds / evals:.2f} s/evaluation "
            f"measured in {out} (one worker; originating modules not included)")


def _need_run_dir(run_dir: Path) -> None:
    if not (run_dir / "runs").is_dir() and not (run_dir / "analysis.json").is_file():
        raise ConfigError(f"{run_dir} is not a run directory (no runs/ or analysis.json in it)",
                          "pass the --out folder of `harness run`")


def _comparison_table(analysis) -> None:
    """Every comparison in one table: cell, a − b with its interval, corrected p, verdict."""
    from rich.table import Table

    from harness.analysis.verdicts import fmt_p, pts

    table = Table("family", "budget", "comparison", "difference (points)", "p corrected", "verdict")
    table.columns[-1].overflow = "fold"
    for c in analysis.comparisons:
        r = c.result
        diff = pts(r.mean_diff) + ("" if r.constant else f" [{pts(r.diff_ci[0])}, {pts(r.diff_ci[1])}]")
        table.add_row(f"{c.cell.family}/{c.cell.library}", str(c.cell.budget), f"{c.a} − {c.b}", diff,
                      "untested" if r.constant else fmt_p(c.p_corr), c.verdict)
    err.print(table)


def default_resolvers(out: Path) -> dict:
    """`demo:origin`, `demo:receiving`, `demo:independent`, `demo:task`: the demo hosts (built once, cached by
    recipe under $HUBPORT_CACHE/demo, default ~/.cache/hubport/demo; `independent` is pretrained apart, from
    another seed) and the demo task (written under <out>/demo)."""

    @functools.cache
    def hosts(seed: int = 0):
        from hubport.demo.hosts import build_demo_hosts, demo_cache_dir

        return build_demo_hosts(demo_cache_dir(), seed=seed)

    def demo(name: str) -> str:
        if name == "task":
            from hubport.demo.task import write_demo_task

            return str(write_demo_task(out / "demo" / "task"))
        if name in ("origin", "receiving"):
            return str(getattr(hosts(), name))
        if name == "independent":
            from hubport.demo.hosts import INDEPENDENT_SEED

            return str(hosts(INDEPENDENT_SEED).receiving)
        from harness.grid.check import unknown

        raise unknown("demo reference", name, ("origin", "receiving", "independent", "task"))

    return {"demo": demo}


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
