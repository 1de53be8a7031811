"""Text from modules, hosts and configs made safe for a terminal: no control sequences, no rich markup.

A module's config is attacker-controlled: a base_model_name_or_path holding ESC sequences can rewrite the screen,
and `[bold]...` would be read as rich markup. Every such string goes through `safe` before it is printed.
"""

from __future__ import annotations

import os
import re

from rich.markup import escape

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
