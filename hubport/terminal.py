"""What the terminal shows: hubport's own lines, made safe, and nothing of the libraries' unless asked.

Text from modules, hosts and configs is attacker-controlled: a base_model_name_or_path holding ESC sequences can
rewrite the screen, and `[bold]...` would be read as rich markup, so every such string goes through `safe`; token
values never appear in a message (`scrub`).

The libraries hubport drives (transformers, adapters, peft, huggingface_hub, datasets, accelerate) print warnings,
deprecation notes and tqdm bars of their own. Inside `quiet_libraries()` those are held back (their loggers at
ERROR, Python warnings ignored, their progress bars off) and everything is put back as it was on the way out, so
that embedding hubport in a program changes nothing outside the call. hubport's own progress goes through rich.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from contextvars import ContextVar

from rich.markup import escape

LIBRARY_LOGGERS = ("transformers", "adapters", "peft", "huggingface_hub", "datasets", "accelerate", "torch",
                   "urllib3", "filelock")
QUIET_ENV = {"TRANSFORMERS_VERBOSITY": "error", "HF_HUB_VERBOSITY": "error", "HF_HUB_DISABLE_PROGRESS_BARS": "1",
             "HF_DATASETS_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1"}


def verbose_requested(flag: bool = False) -> bool:
    """-v on the command line, or HUBPORT_DEBUG=1 in the environment."""
    return flag or bool(os.environ.get("HUBPORT_DEBUG"))


@contextlib.contextmanager
def quiet_libraries(verbose: bool = False) -> Iterator[None]:
    """Hold back the libraries' warnings and bars for the duration (a no-op when verbose)."""
    if verbose_requested(verbose):
        yield
        return
    saved_env = {k: os.environ.get(k) for k in QUIET_ENV}
    loggers = [logging.getLogger(name) for name in LIBRARY_LOGGERS]
    levels = [lg.level for lg in loggers]
    os.environ.update({k: v for k, v in QUIET_ENV.items() if saved_env[k] is None})
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), _hub_bars_off():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)


@contextlib.contextmanager
def _hub_bars_off() -> Iterator[None]:
    """huggingface_hub reads its progress-bar switch at import; once imported, flip it through its own API."""
    hub = sys.modules.get("huggingface_hub.utils")
    if hub is None or hub.are_progress_bars_disabled():
        yield
        return
    hub.disable_progress_bars()
    try:
        yield
    finally:
        hub.enable_progress_bars()


def progress_columns() -> tuple:
    """The columns of every hubport / harness progress bar: what, bar, done/total, elapsed, eta, and a status."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[status]}"))


@contextlib.contextmanager
def step_progress(console, description: str, total: int) -> Iterator:
    """A rich bar for a loop of `total` steps; yields `update(step, loss=None)`. Transient: the final line says
    what happened, the bar only shows it happening."""
    from rich.progress import Progress

    if total <= 0:
        yield lambda step, loss=None: None
        return
    with Progress(*progress_columns(), console=console, transient=True) as progress:
        bar = progress.add_task(description, total=total, status="")
        stride = max(1, total // 100)  # a loss on the GPU costs a sync to read: read it at most 100 times

        def update(step: int, loss=None) -> None:
            if step % stride and step != total:
                progress.update(bar, completed=step)
                return
            progress.update(bar, completed=step, status=f"loss {float(loss):.4f}" if loss is not None else "")

        yield update


# Who hears a training loop's steps: set by whoever draws the bar (the harness's local executor), read by the code
# that calls train(), so the layers in between need not pass a callback along. Unset (None) costs nothing.
_STEP_LISTENER: ContextVar[Callable | None] = ContextVar("hubport_step_listener", default=None)


def step_listener() -> Callable | None:
    """The `on_step(step, loss)` to hand to train(), or None."""
    return _STEP_LISTENER.get()


@contextlib.contextmanager
def listening(on_step: Callable) -> Iterator[None]:
    """Send the steps of every train() called inside to `on_step(step, loss)`."""
    token = _STEP_LISTENER.set(on_step)
    try:
        yield
    finally:
        _STEP_LISTENER.reset(token)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
TOKEN_VARIABLES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUBPORT_TOKEN")


def visible(value: object) -> str:
    """C0 and C1 control characters (ESC, CR, BEL, newlines...) shown as \\xNN, nothing else changed."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value))


def safe(value: object) -> str:
    """`visible`, then rich's markup escaping: the text prints literally."""
    return escape(visible(value))


def scrub(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Any token value (given, or from the environment) replaced by `***` wherever it appears in a message."""
    values = [*secrets, *(os.environ.get(v, "") for v in TOKEN_VARIABLES)]
    for value in sorted({v for v in values if len(v) >= 4}, key=len, reverse=True):
        text = text.replace(value, "***")
    return text
