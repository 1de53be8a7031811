"""The `hubport` command line (typer + rich). Heavy libraries are imported inside the commands.

Every command ends with one or two lines that say what it did (or `--json`). Every HubportError becomes one red
line and an exit code from EXIT_CODES (documented in EXIT_TABLE, `hubport --help` and the README); anything else is
a bug and prints one line too, with the traceback only when HUBPORT_DEBUG=1. The libraries' own chatter is held
back unless -v (hubport.terminal).
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import sys
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.console import Console

from hubport import __version__, errors
from hubport.terminal import safe, scrub

FLAG = " "  # the metavar of flags: they take no value (typer would print <bool>)

# ---- exit codes -------------------------------------------------------------------------------------------------

EXIT_CODES: dict[type[errors.HubportError], int] = {
    errors.NotFoundError: 3,
    errors.FormatError: 4,
    errors.UnknownNameError: 4,
    errors.NotAHostError: 4,
    errors.IncompatibleError: 5,
    errors.OutputError: 6,
    errors.HubError: 7,
    errors.ConfigError: 8,
    errors.HubportError: 9,
}
EXIT_TABLE: tuple[tuple[int, str], ...] = (
    (0, "done (check: a full port is possible)"),
    (1, "check: a full copy-port is not possible; harness run: some runs failed"),
    (2, "usage error: an unknown option, a missing argument, nothing to do (click's own)"),
    (3, "not found: a path, repo, file or revision"),
    (4, "unreadable or unknown input: a file format, a name (did-you-mean), not a T5 host"),
    (5, "incompatible: tensors that do not fit, another lineage"),
    (6, "the output folder already exists"),
    (7, "the Hub refused or could not be reached (tokens included)"),
    (8, "a harness grid, option or statistics input that does not validate"),
    (9, "any other problem hubport reports"),
    (70, "internal error (a bug): HUBPORT_DEBUG=1 shows the traceback"),
    (130, "interrupted: nothing was written"),
)


def exit_code(exc: errors.HubportError) -> int:
    for cls in type(exc).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return EXIT_CODES[errors.HubportError]


def exit_table_text() -> str:
    """The exit-code table as help text (one line per code)."""
    return "\n\n".join(f"{code:>3}  {meaning}" for code, meaning in EXIT_TABLE)


# ---- the app, its global options and the error boundary ----------------------------------------------------------

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode="rich",
                  context_settings={"help_option_names": ["-h", "--help"]},
                  help="Port PEFT modules (LoRA, IA3, prefix/prompt tuning, adapters, Compacter) between T5 hosts.",
                  epilog="[bold]Exit codes[/]\n\n" + exit_table_text())
out = Console()
err = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        out.print(f"hubport {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _options(ctx: typer.Context,
             verbose: Annotated[bool, typer.Option("--verbose", "-v", metavar=FLAG, help="Show the libraries' own "
                                                   "warnings and progress bars too (as does HUBPORT_DEBUG=1).")] = False,
             version: Annotated[bool, typer.Option("--version", metavar=FLAG, callback=_version, is_eager=True,
                                                   help="Print hubport's version and exit.")] = False) -> None:
    ctx.obj = {"verbose": verbose}


def _verbose() -> bool:
    ctx = click.get_current_context(silent=True)
    root = ctx.find_root() if ctx is not None else None
    return bool(root is not None and (root.obj or {}).get("verbose"))


def handled(fn):
    """Map hubport's errors to one line and an exit code; keep tracebacks for HUBPORT_DEBUG=1."""
    from hubport.terminal import quiet_libraries

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with quiet_libraries(_verbose()):
                return fn(*args, **kwargs)
        except errors.HubportError as exc:
            if os.environ.get("HUBPORT_DEBUG"):
                raise
            err.print(f"[red]error:[/] {safe(scrub(exc.one_line()))}", highlight=False, markup=True, soft_wrap=True)
            raise typer.Exit(exit_code(exc)) from None
        except KeyboardInterrupt:
            err.print("[red]interrupted[/]: nothing was written")
            raise typer.Exit(130) from None
        except typer.Exit:
            raise
        except click.exceptions.ClickException as exc:  # a usage error found inside a command: click's code (2)
            err.print(f"[red]usage error:[/] {exc.format_message()}", highlight=False, soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None
        except Exception as exc:  # a bug: still one line unless debugging
            if os.environ.get("HUBPORT_DEBUG"):
                raise
            err.print(f"[red]internal error:[/] {type(exc).__name__}: {safe(scrub(str(exc)[:200]))} "
                      "(set HUBPORT_DEBUG=1 for the traceback)", highlight=False, soft_wrap=True)
            raise typer.Exit(70) from None

    return wrapper


def _print_json(data: dict) -> None:
    out.print_json(json.dumps(data, default=str))


# ---- shared options ---------------------------------------------------------------------------------------------

MODULE_HELP = "Module folder or Hub id owner/name\\[@rev]."
HOST_HELP = "Target host: folder or Hub id owner/name\\[@rev]."
Rev = Annotated[str | None, typer.Option("--revision", metavar="REV",
                                            help="Source revision (branch, tag or commit).")]
TargetRev = Annotated[str | None, typer.Option("--target-revision", metavar="REV",
                                                  help="Target host revision (branch, tag or commit).")]
Base = Annotated[str | None, typer.Option("--base", metavar="HOST", help="The host the module was trained on, "
                                             "if it does not record it (folder or Hub id).")]
Sub = Annotated[str | None, typer.Option("--subfolder", metavar="DIR", help="The module's folder inside the repo "
                                         "or folder (like peft's subfolder=; also owner/name:sub).")]
Json = Annotated[bool, typer.Option("--json", metavar=FLAG, help="Print the result as JSON instead of text.")]
Private = Annotated[bool, typer.Option("--private", metavar=FLAG,
                                       help="Create the Hub repo private (if it does not exist).")]


def _examples(*lines: str) -> str:
    return "[bold]Examples[/]\n\n" + "\n\n".join(f"  $ {line}" for line in lines)


# ---- commands ---------------------------------------------------------------------------------------------------


@app.command(epilog=_examples("hubport inspect user/lora-sst2", "hubport inspect ./lora --json"))
@handled
def inspect(source: Annotated[str, typer.Argument(metavar="MODULE", help=MODULE_HELP)],
            revision: Rev = None, subfolder: Sub = None, as_json: Json = False) -> None:
    """Format, family, config, the base it was trained on, parameter count and tensor slots (every module of a
    repo that holds several)."""
    from hubport import api
    from hubport.render import inspect_report

    info = api.inspect(source, revision=revision, subfolder=subfolder)
    if as_json:
        _print_json(info)
        return
    for sub, one in (info["modules"].items() if "modules" in info else [(None, info)]):
        if sub is not None:
            out.print(f"[bold]module in {safe(sub)}[/] (select with --subfolder {safe(sub)})")
        inspect_report(out, one)


@app.command(epilog=_examples("hubport check user/lora-sst2 --to google/flan-t5-base",
                              "hubport check ./lora --to ./other-host --all --json"))
@handled
def check(source: Annotated[str, typer.Argument(metavar="MODULE", help=MODULE_HELP)],
          to: Annotated[str, typer.Option("--to", metavar="HOST", help=HOST_HELP)],
          base: Base = None, revision: Rev = None, target_revision: TargetRev = None, subfolder: Sub = None,
          as_json: Json = False, show_all: Annotated[bool, typer.Option("--all", metavar=FLAG,
                                                  help="List every tensor, not only the refused.")] = False,
          deep: Annotated[bool, typer.Option("--deep", metavar=FLAG, help="Read whole host matrices and the "
                                             "embedding rows port fits on (default: bounded samples, under 16 MB "
                                             "whatever the host).")] = False,
          ) -> None:
    """The report before porting; exit code 0 when a full port is possible, 1 when not."""
    from hubport import api
    from hubport.render import check_report

    plan = api.check(source, to, base=base, revision=revision, target_revision=target_revision,
                     subfolder=subfolder, deep=deep)
    if as_json:
        _print_json(plan.to_dict())
    else:
        check_report(out, plan, show_all=show_all)
    raise typer.Exit(0 if plan.full and plan.lineage.copy_is_right else 1)


PORT_EXAMPLES = _examples(
    "hubport port user/lora-sst2 --to google/flan-t5-base --out ./lora-flan --verify    # same lineage",
    "hubport port user/lora-sst2 --to t5-base --out ./lora-t5 --map weights             # another lineage",
    "hubport port user/lora-small --to google/t5-v1_1-base --out ./lora-base --map probe  # another size",
    "hubport port user/lora-sst2 --to google/flan-t5-base --push me/lora-flan            # push",
    "hubport port user/lora-sst2 --to google/flan-t5-base --out ./lora-flan --evaluate glue/sst2 "
    "--template 'sst2 sentence: {text}' --labels negative,positive --train-steps 200    # evaluate",
    "hubport port user/lora-sst2 --to google/flan-t5-base --map distill --data sst2/train.jsonl "
    "--template 'sentiment: {text}' --out ./lora-flan    # another lineage, where no map holds: distil "
    "(the source host + module teach a student on the target; only the text field is read, labels never)")


@app.command(epilog=PORT_EXAMPLES)
@handled
def port(source: Annotated[str, typer.Argument(metavar="MODULE", help=MODULE_HELP)],
         to: Annotated[str, typer.Option("--to", metavar="HOST", help=HOST_HELP)],
         out_dir: Annotated[Path | None, typer.Option("--out", metavar="DIR",
                                                         help="Output folder (must not exist).")] = None,
         allow_partial: Annotated[bool, typer.Option("--allow-partial", metavar=FLAG,
                                                       help="Drop what cannot port.")] = False,
         force: Annotated[bool, typer.Option("--force", metavar=FLAG,
                                               help="Copy onto another lineage anyway.")] = False,
         safetensors: Annotated[bool | None, typer.Option("--safetensors/--no-safetensors", metavar=FLAG,
                                                             help="Weights file kind (default: the source's).")] = None,
         map_tier: Annotated[str, typer.Option("--map", metavar="TIER", help="copy, embed, weights, probe or "
                                               "distill: how tensors cross to another lineage or size "
                                               "(naive:zero_pad, naive:drop: the study's baselines).")] = "copy",
         data: Annotated[str | None, typer.Option("--data", metavar="DATA", help="--map distill: inputs (JSON "
                                                    "Lines file, data folder or Hub id\\[@rev]); default: the "
                                                    "dataset the module names.")] = None,
         distill_steps: Annotated[int, typer.Option("--distill-steps", metavar="N",
                                                    help="--map distill: optimiser steps.")] = 300,
         init: Annotated[str, typer.Option("--init", metavar="TIER", help="--map distill: start from "
                                           "auto|copy|embed|weights|probe|fresh (auto: the tier check says will "
                                           "run, else fresh).")] = "auto",
         verify: Annotated[bool, typer.Option("--verify", metavar=FLAG,
                                                help="Load target + module with its library and run it.")] = False,
         base: Base = None, revision: Rev = None, target_revision: TargetRev = None, subfolder: Sub = None,
         push: Annotated[str | None, typer.Option("--push", metavar="REPO",
                                                     help="Push the result to this Hub repo owner/name.")] = None,
         private: Private = False,
         evaluate: Annotated[str | None, typer.Option("--evaluate", metavar="DATA", help="Data set to evaluate "
                                                         "on: a local folder/file or a Hub id owner/name\\[@rev].")] = None,
         template: Annotated[str | None, typer.Option("--template", metavar="TEXT", help="Input template with "
                                                         "{text}, for --evaluate and --map distill (default: the "
                                                         "module's, from hubport.json).")] = None,
         labels: Annotated[str | None, typer.Option("--labels", metavar="A,B,...", help="Label words, one per "
                                                       "class in label order (default: the module's).")] = None,
         metric: Annotated[str | None, typer.Option("--metric", metavar="NAME", help="accuracy, macro_f1 or "
                                                       "mcc (default: the module's, else accuracy).")] = None,
         train_steps: Annotated[int, typer.Option("--train-steps", metavar="N",
                                                  help="Train N further steps before evaluating.")] = 0,
         as_json: Json = False) -> None:
    """Port a module onto another host, write it in its own format with hubport.json, optionally push it."""
    import shutil
    import tempfile

    from hubport import api
    from hubport.render import port_summary

    if out_dir is None and not push:
        raise click.UsageError("nothing to do: give --out DIR, --push REPO, or both")
    if (labels or metric or train_steps or (template and map_tier != "distill")) and not evaluate:
        raise click.UsageError("--template, --labels, --metric and --train-steps need --evaluate DATA")
    scratch = None if out_dir else Path(tempfile.mkdtemp(prefix="hubport-port-"))
    target_dir = out_dir or scratch / "module"
    try:
        run_eval = _evaluator(source, revision, evaluate, template, labels, metric, train_steps)
        report = api.port(source, to, target_dir, allow_partial=allow_partial, force=force,
                          safetensors=safetensors, map=map_tier, verify=verify, base=base, revision=revision,
                          target_revision=target_revision, command=scrub(shlex.join(["hubport", *sys.argv[1:]])),
                          evaluate=run_eval, subfolder=subfolder, init=init,
                          settings={"data": data, "steps": distill_steps,
                                    "template": template or _module_template(source, revision),
                                    "progress": out.is_terminal and not as_json})
        summary = report.to_dict()
        if push:
            from hubport.hub import push_module

            summary["pushed"] = push_module(report.out, push, private=private)
        if scratch is not None:
            summary["out"] = None  # pushed only: the temporary copy goes
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    _print_json(summary) if as_json else port_summary(out, summary)


def _module_template(source: str, revision: str | None) -> str:
    """The input template the module's hubport.json names (an earlier --evaluate), else the bare text."""
    from hubport.evaluate import named_task

    return named_task(source, revision).get("template") or "{text}"


def _evaluator(source: str, revision: str | None, data: str | None, template: str | None, labels: str | None,
               metric: str | None, train_steps: int):
    """The `evaluate` hook of api.port for --evaluate, with the task taken from the options or the module."""
    if not data:
        return None
    from hubport.evaluate import EvalTask, evaluate_module

    task = EvalTask.resolve(data, template=template, labels=labels, metric=metric, module=source,
                            revision=revision)

    def run(folder: Path, target_files) -> dict:
        return evaluate_module(folder, target_files.local_dir(), task, train_steps=train_steps, console=err)

    return run


@app.command(epilog=_examples("hubport push ./lora-flan me/lora-flan", "hubport push ./lora-flan me/lora-flan "
                              "--private --json"))
@handled
def push(folder: Annotated[Path, typer.Argument(metavar="DIR", help="A folder written by `hubport port`.")],
         repo: Annotated[str, typer.Argument(metavar="REPO", help="Hub repo id owner/name.")],
         private: Private = False, as_json: Json = False) -> None:
    """Push a ported module with its model card in one commit (creating the repo if needed)."""
    from hubport.hub import push_module
    from hubport.render import pushed_line

    result = push_module(folder, repo, private=private)
    _print_json({"folder": str(folder), **result}) if as_json else pushed_line(out, result, folder)


@app.command(epilog=_examples("hubport serve --root ./hub --token-file tokens.txt",
                              "HUBPORT_WRITE_TOKENS=secret hubport serve --root ./hub --port 8080"))
@handled
def serve(root: Annotated[Path, typer.Option("--root", metavar="DIR", help="Folder that holds the repos.")],
          host: Annotated[str, typer.Option("--host", metavar="ADDR", help="Address to bind (default: loopback "
                                            "only).")] = "127.0.0.1",
          port: Annotated[int, typer.Option("--port", metavar="N", help="Port; 0 picks a free one.")] = 0,
          token_file: Annotated[Path | None, typer.Option("--token-file", metavar="FILE", help="Tokens, one a "
                                                             "line; 'read:TOKEN' for read-only.")] = None,
          as_json: Annotated[bool, typer.Option("--json", metavar=FLAG,
                                                 help="Announce the server as one JSON line.")] = False,
          ) -> None:
    """Serve a folder as a Hugging Face Hub-compatible endpoint (point clients at it with HF_ENDPOINT).

    Tokens come from --token-file or HUBPORT_WRITE_TOKENS / HUBPORT_READ_TOKENS (comma-separated), never from the
    command line, where `ps` would show them.
    """
    from hubport import server

    writes = [t for t in os.environ.get("HUBPORT_WRITE_TOKENS", "").split(",") if t.strip()]
    reads = [t for t in os.environ.get("HUBPORT_READ_TOKENS", "").split(",") if t.strip()]
    if token_file is not None:
        more_w, more_r = server.load_token_file(token_file)
        writes, reads = writes + list(more_w), reads + list(more_r)
    server.serve(root, host=host, port=port, write_tokens=[t.strip() for t in writes],
                 read_tokens=[t.strip() for t in reads], as_json=as_json)


@app.command(epilog=_examples("hubport env", "hubport env --json"))
@handled
def env(as_json: Json = False) -> None:
    """The versions and settings a bug report needs (tokens: only whether one is set)."""
    from hubport.render import env_report

    info = environment()
    _print_json(info) if as_json else env_report(out, info)


ENV_PACKAGES = ("torch", "transformers", "peft", "adapters", "huggingface_hub", "safetensors", "accelerate",
                "datasets", "typer", "rich")
ENV_VARIABLES = ("HF_ENDPOINT", "HF_HOME", "HF_HUB_OFFLINE", "HUBPORT_CACHE", "HUBPORT_DEBUG")


def environment() -> dict:
    """Python, platform, package versions, accelerator, Hub settings."""
    import platform
    from importlib import metadata

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    info = {"hubport": __version__, "python": platform.python_version(), "platform": platform.platform(),
            "packages": {name: version(name) for name in ENV_PACKAGES},
            "environment": {k: os.environ.get(k) for k in ENV_VARIABLES},
            "token": "set" if os.environ.get("HF_TOKEN") else "not set in HF_TOKEN (a saved login may exist)"}
    try:
        import torch

        info["accelerator"] = (torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none (CPU)")
    except ImportError:
        info["accelerator"] = "unknown (torch not importable)"
    return info


def main() -> None:
    # huggingface_hub logs every retry of an unreachable endpoint; hubport says it once, in one line
    os.environ.setdefault("HF_HUB_VERBOSITY", "error")
    app()


if __name__ == "__main__":
    main()
