"""The one shape of what an operation returns: `ok`, `as_json()` (a JSON-ready dict),
`_repr_html_()` (a notebook's view) and a one-line `str()` (a terminal's)."""

from __future__ import annotations

import html
from typing import Any, Protocol, runtime_checkable

GOOD = "#1a7f37"
BAD = "#cf222e"
WARN = "#9a6700"


@runtime_checkable
class Shaped(Protocol):
    """A result as a user gets it back from an operation."""

    @property
    def ok(self) -> bool: ...

    def as_json(self) -> dict[str, Any]: ...

    def _repr_html_(self) -> str: ...

    def __str__(self) -> str: ...


def one_line(text: object) -> str:
    """Return text on one line: every run of whitespace (line breaks included) as one space."""
    return " ".join(str(text).split())


def headline(line: str, ok: bool | None) -> str:
    """Return a result's line as an HTML paragraph, escaped, green when ok, red when not, amber
    when neither (None)."""
    tone = WARN if ok is None else GOOD if ok else BAD
    return f"<p style='color:{tone}'><b>{html.escape(one_line(line))}</b></p>"


def plural(n: int, word: str) -> str:
    """Return "1 host", "2 hosts"."""
    return f"{n} {word}{'' if n == 1 else 's'}"
