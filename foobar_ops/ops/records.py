"""What the records hold: the journal's runs, results and changes, and where records are kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core import paths
from ..core.journal import Journal
from .common import journal_of


def open_journal(journal: Journal | str | Path | None = None) -> Journal:
    """Return the journal, opened (None: the records folder's, or $FOOBAR_OPS_JOURNAL).

    journal: a Journal, a path, a database URL, or None.
    """
    return journal_of(journal)


def records_runs(journal: Journal | str | Path | None = None, limit: int | None = None) -> Any:
    """Return the journal's runs, newest first, as a DataFrame (a run whose process is gone: `died`).

    journal: the journal (default: the records folder's).
    limit: at most this many runs.
    """
    return journal_of(journal).runs(limit)


def records_results(run_id: str, journal: Journal | str | Path | None = None) -> Any:
    """Return every result of one run, in the order they came, as a DataFrame.

    run_id: the run.
    journal: the journal (default: the records folder's).
    """
    return journal_of(journal).results(run_id)


def records_run(run_id: str, journal: Journal | str | Path | None = None) -> dict[str, Any]:
    """Return one run whole: {"run": its row, "results": its results, "hosts": each host's outcome}
    (the results and outcomes as DataFrames).

    run_id: the run.
    journal: the journal (default: the records folder's).
    """
    opened = journal_of(journal)
    results = opened.results(run_id)  # refuses a run the journal does not hold
    return {"run": opened.run(run_id), "results": results, "hosts": opened.outcomes(run_id)}


def records_changes(
    journal: Journal | str | Path | None = None,
    *,
    host: str | None = None,
    since: Any = None,
    state: str | None = None,
) -> Any:
    """Return the results that changed a host, newest first, as a DataFrame.

    journal: the journal (default: the records folder's).
    host: only this host.
    since: only since then (an age such as 7d, 12h, 30m, or a date).
    state: only this state function (file.managed) or state id.
    """
    return journal_of(journal).changes(host=host, since=since, state=state)


def record_paths() -> dict[str, str]:
    """Return where records (the journal, output notebooks) and caches are kept, and the lab CA's
    certificate (what a client of the lab's site trusts): {what: path}."""
    from ..lab import LAB_CA

    return {**paths.describe(), "lab_ca": str(LAB_CA)}
