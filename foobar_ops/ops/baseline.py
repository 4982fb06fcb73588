"""The baseline a scheduled load test's collected runs are judged against."""

from __future__ import annotations

from typing import Any

from ..stack import scheduled


def loadtest_baseline(name: str, run_id: str) -> dict[str, Any]:
    """Make a collected run the baseline of its schedule; return it: {"run_id", "rps", "p95_ms"}.

    name: the schedule.
    run_id: a collected run of it.
    """
    return scheduled.set_baseline(name, run_id)
