"""Everything the command line prints goes through :func:`echo`, which makes it safe for
a terminal: remote servers choose the text of posts, names and errors, and a post with
escape sequences could otherwise retitle the window, clear the screen, forge output or
reorder it (bidi overrides, "Trojan Source")."""

from __future__ import annotations

import re
import sys

__all__ = ["clean", "echo"]

_UNSAFE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"  # CSI (7- or 8-bit): colours, cursor moves, clearing
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"  # OSC, DCS...
    r"|\x1b[ -/]*[0-~]?"  # any other escape (and a lone ESC)
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]"  # C0 but tab and newline, DEL, C1 (8-bit CSI, OSC...)
    r"|[\u202a-\u202e\u2066-\u2069]"  # bidi embeddings, overrides and isolates
)


def clean(text: str) -> str:
    """``text`` without terminal control: escape sequences, control and bidi characters."""
    return _UNSAFE.sub("", text)


def echo(text: str = "", *, err: bool = False, end: str = "\n", flush: bool = False) -> None:
    """Print ``text``, cleaned, to stdout (stderr with ``err``), like :func:`print`."""
    print(clean(text), file=sys.stderr if err else sys.stdout, end=end, flush=flush)
