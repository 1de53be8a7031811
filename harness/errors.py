"""Every error the harness raises on purpose, in one hierarchy under HarnessError.

The harness is built on hubport, so HarnessError is a kind of hubport.errors.HubportError: both render as one
line (`one_line()`), and a failed run's record says what went wrong the same way whichever raised it. The
harness CLI maps these classes to exit codes in its own table (harness.cli.EXIT_CODES).
"""

from __future__ import annotations

from hubport.errors import HubportError


class HarnessError(HubportError):
    """Base class: a problem with the study's input or run folder, not a bug in the harness."""


class ConfigError(HarnessError):
    """A grid file, grid axis or harness option that does not validate."""

    hint = "see configs/paper.yaml for a complete example"


class StatsError(HarnessError):
    """Input to a statistical function or analysis with the wrong shape or too little data."""

    hint = "see the function's docstring for the expected array shapes"


class RecordError(HarnessError):
    """A run record or run folder that cannot be read as one: a newer format, or the wrong kind of file."""

    hint = "analyse it with the harness version that wrote it, or rerun the grid into a new --out"


class BusyError(HarnessError):
    """A run folder that another harness driver is using right now."""

    hint = "wait for it to finish or choose another --out"
