"""Every error hubport raises on purpose, in one hierarchy.

Each subclass carries the context a user needs and renders itself as one line that says what was wrong and what
to do. The CLI maps these to exit codes in one table (`hubport.cli.EXIT_CODES`); anything else is a bug and shows
a traceback only when HUBPORT_DEBUG is set.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class HubportError(Exception):
    """Base class: a problem with the user's input or environment, not a bug in hubport."""

    hint: str = ""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def one_line(self) -> str:
        """The message and the hint, joined for a single terminal line."""
        return f"{self.message}. {self.hint[:1].upper()}{self.hint[1:]}" if self.hint else self.message


class NotFoundError(HubportError):
    """A local path, Hub repo, file or revision that does not exist."""

    hint = "check the path or repo id"


class FormatError(HubportError):
    """A file that exists but cannot be read as what it claims to be (JSON, safetensors, pickle)."""

    hint = "re-save the module with its library's save_pretrained / save_adapter"


class UnsafePickleError(FormatError):
    """A .bin file that torch.load(weights_only=True) refuses: it would run code if fully unpickled."""

    hint = "hubport never unpickles arbitrary objects; convert the module to safetensors with its own library"


class UnknownNameError(HubportError):
    """A name looked up in one of hubport's registries (family, condition, map tier, config key...)."""

    def __init__(self, kind: str, name: str, known: Iterable[str]) -> None:
        known = sorted(known)
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"choose one of: {', '.join(known)}"
        super().__init__(f"unknown {kind} '{name}'", hint)
        self.kind, self.name, self.known = kind, name, known


class NotAHostError(HubportError):
    """A target or base that is not a T5-family encoder-decoder."""

    hint = "hubport ports between T5, T5 v1.1, Flan-T5 and mT5 hosts"


class IncompatibleError(HubportError):
    """A port that cannot be done as asked: tensors that do not fit, or hosts of another lineage."""

    def __init__(self, message: str, hint: str, problems: tuple[str, ...] = ()) -> None:
        super().__init__(message, hint)
        self.problems = problems


class LineageError(IncompatibleError):
    """A copy onto a host whose coordinates are unrelated to the module's base."""


class AmbiguousModuleError(HubportError):
    """A repo or folder holding several modules, none of them named."""

    def __init__(self, message: str, hint: str, root: object, where: str, commit: str | None) -> None:
        super().__init__(message, hint)
        self.root, self.where, self.commit = root, where, commit


class OutputError(HubportError):
    """An output folder that cannot be written: below a file, in a read-only place, a dangling link."""

    hint = "choose another --out in a folder you can write to"


class OutputExistsError(OutputError):
    """An output folder that is already there: hubport never overwrites a module silently."""

    hint = "choose another --out or remove the folder first"


class HubError(HubportError):
    """The Hub (or a Hub-compatible server) refused or could not be reached."""


class AuthError(HubError):
    """Missing, wrong or read-only token."""

    hint = "set HF_TOKEN to a token with write access (or run `hf auth login`)"


class ConfigError(HubportError):
    """A training, evaluation or module setting that does not validate (the grid's own errors are in
    harness.errors)."""

    hint = "see configs/paper.yaml for a complete example"
