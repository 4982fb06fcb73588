"""Plain text tables for the terminal."""

from __future__ import annotations

import math
from typing import Any


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """Render rows as a plain aligned text table.

    rows: dicts keyed by column.
    columns: the columns, in order.
    """
    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]

    def line(values: list[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    return "\n".join([line([c.upper() for c in columns])] + [line(row) for row in cells])


def cell(value: Any, width: int = 60) -> str:
    """Render one table cell on one line, cut to width."""
    text = "-" if value is None else " ".join(str(value).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def rows(frame: Any) -> list[dict[str, Any]]:
    """Return a DataFrame's rows as dicts, with NaN as None (JSON-ready)."""
    out = frame.to_dict(orient="records")
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()} for r in out]


def ago(seconds: float | None) -> str | None:
    """Render a duration as 1h02m03s or 2m03s."""
    if seconds is None:
        return None
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"
