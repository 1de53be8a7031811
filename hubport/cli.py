"""The `hubport` command line (typer + rich). Heavy libraries are imported inside the commands.

Every HubportError becomes one red line and an exit code from EXIT_CODES; anything else is a bug and prints one
line too, with the traceback only when HUBPORT_DEBUG=1.
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from hubport import errors

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Port PEFT modules (LoRA, IA3, prefix/prompt tuning, adapters, Compacter) between T5 hosts.")
out = Console()
err = Console(stderr=True)

EXIT_CODES: dict[type[errors.HubportError], int] = {
    errors.NotFoundError: 3,
    errors.FormatError: 4,
    errors.UnknownNameError: 4,
    errors.NotAHostError: 4,
    errors.IncompatibleError: 5,
    errors.OutputExistsError: 6,
    errors.HubError: 7,
    errors.ConfigError: 8,
    errors.StatsError: 8,
    errors.HubportError: 2,
}


def exit_code(exc: errors.HubportError) -> int:
    for cls in type(exc).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return 2


def handled(fn):
    """Map hubport's errors to one line and an exit code; keep tracebacks for HUBPORT_DEBUG=1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except errors.HubportError as exc:
            if os.environ.get("HUBPORT_DEBUG"):
                raise
            err.print(f"[red]error:[/] {exc.one_line()}", highlight=False, soft_wrap=True)
            raise typer.Exit(exit_code(exc)) from None
        except KeyboardInterrupt:
            err.print("[red]interrupted[/]: nothing was written")
            raise typer.Exit(130) from None
        except Exception as exc:  # a bug: still one line unless debugging
            if os.environ.get("HUBPORT_DEBUG") or isinstance(exc, typer.Exit):
                raise
            err.print(f"[red]internal error:[/] {type(exc).__name__}: {str(exc)[:200]} "
                      "(set HUBPORT_DEBUG=1 for the traceback)", highlight=False, soft_wrap=True)
            raise typer.Exit(70) from None

    return wrapper


Rev = Annotated[Optional[str], typer.Option("--revision", help="Source revision (branch, tag or commit).")]
TargetRev = Annotated[Optional[str], typer.Option("--target-revision", help="Target host revision.")]
Base = Annotated[Optional[str], typer.Option("--base", help="The host the module was trained on, if it does not "
                                                         "record it (folder or Hub id).")]


@app.command()
@handled
def inspect(source: Annotated[str, typer.Argument(help="Module folder or Hub id owner/name[@rev].")],
            revision: Rev = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Format, family, config, the base it was trained on, parameter count and tensor slots."""
    from hubport import api
    from hubport.render import inspect_report

    info = api.inspect(source, revision=revision)
    out.print_json(json.dumps(info)) if as_json else inspect_report(out, info)


@app.command()
@handled
def check(source: Annotated[str, typer.Argument(help="Module folder or Hub id.")],
          to: Annotated[str, typer.Option("--to", help="Target host: folder or Hub id owner/name[@rev].")],
          base: Base = None, revision: Rev = None, target_revision: TargetRev = None,
          as_json: Annotated[bool, typer.Option("--json", help="Machine-readable report.")] = False,
          show_all: Annotated[bool, typer.Option("--all", help="List every tensor.")] = False,
          deep: Annotated[bool, typer.Option("--deep", help="Read whole host matrices and every embedding row "
                                             "(default: bounded samples, under 16 MB whatever the host).")] = False,
          ) -> None:
    """The report before porting; exit code 0 when a full port is possible, 1 when not."""
    from hubport import api
    from hubport.render import check_report

    plan = api.check(source, to, base=base, revision=revision, target_revision=target_revision, deep=deep)
    if as_json:
        out.print_json(json.dumps(plan.to_dict()))
    else:
        check_report(out, plan, show_all=show_all)
    raise typer.Exit(0 if plan.full and plan.lineage.copy_is_right else 1)


@app.command()
@handled
def port(source: Annotated[str, typer.Argument(help="Module folder or Hub id owner/name[@rev].")],
         to: Annotated[str, typer.Option("--to", help="Target host: folder or Hub id.")],
         out_dir: Annotated[Optional[Path], typer.Option("--out", help="Output folder (must not exist).")] = None,
         allow_partial: Annotated[bool, typer.Option("--allow-partial", help="Drop what cannot port.")] = False,
         force: Annotated[bool, typer.Option("--force", help="Copy onto another lineage anyway.")] = False,
         safetensors: Annotated[Optional[bool], typer.Option("--safetensors/--no-safetensors",
                                                             help="Weights file kind (default: the source's).")] = None,
         map_tier: Annotated[str, typer.Option("--map", help="copy|embed|weights|probe (naive:zero_pad|naive:drop: baselines)")] = "copy",
         verify: Annotated[bool, typer.Option("--verify", help="Load target + module and run it.")] = False,
         base: Base = None, revision: Rev = None, target_revision: TargetRev = None,
         push: Annotated[Optional[str], typer.Option("--push", help="Push the result to this Hub repo.")] = None,
         private: Annotated[bool, typer.Option("--private")] = False,
         evaluate: Annotated[Optional[str], typer.Option("--evaluate", help="Data set to evaluate on.")] = None,
         train_steps: Annotated[int, typer.Option("--train-steps", help="Train further before evaluating.")] = 0,
         as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Port a module onto another host, write it in its own format with hubport.json, optionally push it."""
    import tempfile

    from hubport import api
    from hubport.render import port_summary

    if out_dir is None and not push:
        raise errors.HubportError("nothing to do: give --out DIR, --push REPO, or both")
    target_dir = out_dir or Path(tempfile.mkdtemp(prefix="hubport-port-")) / "module"
    command = shlex.join(["hubport", *sys.argv[1:]])
    run_eval = None
    if evaluate:
        from hubport.evaluate import evaluate_module

        def run_eval(folder: Path, target_files) -> dict:
            return evaluate_module(folder, target_files.local_dir(), evaluate, train_steps=train_steps)

    report = api.port(source, to, target_dir, allow_partial=allow_partial, force=force, safetensors=safetensors,
                      map=map_tier, verify=verify, base=base, revision=revision, target_revision=target_revision,
                      command=command, evaluate=run_eval)
    summary = report.to_dict()
    if push:
        from hubport.hub import push_module

        summary["pushed"] = push_module(report.out, push, private=private)
    out.print_json(json.dumps(summary)) if as_json else port_summary(out, summary)


@app.command()
@handled
def push(folder: Annotated[Path, typer.Argument(help="A folder written by `hubport port`.")],
         repo: Annotated[str, typer.Argument(help="Hub repo id owner/name.")],
         private: Annotated[bool, typer.Option("--private")] = False) -> None:
    """Push a ported module with its model card in one commit (creating the repo if needed)."""
    from hubport.hub import push_module

    result = push_module(folder, repo, private=private)
    out.print(f"[green]pushed[/] {folder} to {result['repo']} at commit {result['commit']}")


@app.command()
@handled
def serve(root: Annotated[Path, typer.Option("--root", help="Folder that holds the repos.")],
          host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
          port: Annotated[int, typer.Option("--port", help="0 picks a free port.")] = 0,
          token: Annotated[Optional[list[str]], typer.Option("--token", help="A write token (repeatable).")] = None,
          read_token: Annotated[Optional[list[str]], typer.Option("--read-token", help="A read-only token.")] = None,
          token_file: Annotated[Optional[Path], typer.Option("--token-file", help="One token a line; "
                                                             "'read:TOKEN' for read-only.")] = None) -> None:
    """Serve a folder as a Hugging Face Hub-compatible endpoint (point clients at it with HF_ENDPOINT)."""
    from hubport import server

    writes, reads = list(token or []), list(read_token or [])
    if token_file is not None:
        more_w, more_r = server.load_token_file(token_file)
        writes, reads = writes + list(more_w), reads + list(more_r)
    server.serve(root, host=host, port=port, write_tokens=writes, read_tokens=reads)


def main() -> None:
    # huggingface_hub logs every retry of an unreachable endpoint; hubport says it once, in one line
    os.environ.setdefault("HF_HUB_VERBOSITY", "error")
    app()


if __name__ == "__main__":
    main()
