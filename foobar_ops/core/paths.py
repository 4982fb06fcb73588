"""Where foobar_ops keeps what it writes: records (the journal, runbook output notebooks, load-test
runs) and caches (built wheels). Never inside the installed package.

- records: $FOOBAR_OPS_HOME, else $XDG_DATA_HOME/foobar-ops, else ~/.local/share/foobar-ops
- the journal: $FOOBAR_OPS_JOURNAL, else RECORDS/journal.sqlite
- caches: $FOOBAR_OPS_CACHE, else $XDG_CACHE_HOME/foobar-ops, else ~/.cache/foobar-ops
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["records_dir", "journal_path", "runbook_dir", "cache_dir", "describe"]


def _xdg(env: str, fallback: str) -> Path:
    base = os.environ.get(env)
    return Path(base) if base else Path.home() / fallback


def records_dir() -> Path:
    """Return the records folder (journal, output notebooks, load-test runs)."""
    home = os.environ.get("FOOBAR_OPS_HOME")
    return Path(home).expanduser() if home else _xdg("XDG_DATA_HOME", ".local/share") / "foobar-ops"


def journal_path() -> Path:
    """Return the embedded journal's path ($FOOBAR_OPS_JOURNAL, else RECORDS/journal.sqlite)."""
    named = os.environ.get("FOOBAR_OPS_JOURNAL")
    return Path(named).expanduser() if named else records_dir() / "journal.sqlite"


def runbook_dir() -> Path:
    """Return the folder where runbook output notebooks are kept."""
    return records_dir() / "runbooks"


def cache_dir() -> Path:
    """Return the cache folder (built wheels); safe to delete."""
    named = os.environ.get("FOOBAR_OPS_CACHE")
    return Path(named).expanduser() if named else _xdg("XDG_CACHE_HOME", ".cache") / "foobar-ops"


def describe() -> dict[str, str]:
    """Return every path foobar_ops uses, by name (for `foobar-ops paths`)."""
    return {
        "records": str(records_dir()),
        "journal": str(journal_path()),
        "runbooks": str(runbook_dir()),
        "cache": str(cache_dir()),
    }
