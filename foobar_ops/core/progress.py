"""Progress while an apply runs: one line per finished state, and a bar per host."""

from __future__ import annotations

import sys
import threading
from typing import Any, TextIO

from .result import Result, Status

_MARKS = {Status.OK: "✓", Status.CHANGED: "✓", Status.PENDING: "~", Status.FAILED: "✗", Status.NOT_RUN: "-"}


class Progress:
    """An on_result callback that prints each finished state and keeps a progress bar per host.

    lines: where the state lines go (default: stdout).
    bars: show a bar per host (tqdm, on stderr).
    """

    def __init__(self, lines: TextIO | None = None, bars: bool = True) -> None:
        self.lines, self.show_bars = lines, bars
        self.bars: dict[str, Any] = {}
        self.lock = threading.Lock()

    def __call__(self, result: Result) -> None:
        with self.lock:
            out = self.lines or sys.stdout
            print(
                f"{result.host:<10} {_MARKS[result.status]} {result.state:<16} {result.name}  {result.comment}",
                file=out,
                flush=True,
            )
            if self.show_bars:
                self._bar(result.host).update(1)

    def _bar(self, host: str) -> Any:
        if host not in self.bars:
            from tqdm import tqdm

            self.bars[host] = tqdm(desc=host, unit=" states", file=sys.stderr, leave=True, position=len(self.bars))
        return self.bars[host]

    def close(self) -> None:
        """Close the bars."""
        with self.lock:
            for bar in self.bars.values():
                bar.close()
            self.bars.clear()
