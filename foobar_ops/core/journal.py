"""The change journal: one row per run, one per state result and one per host outcome, written as
they come in (SQLite in the records folder by default), queryable as DataFrames."""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import re
import sqlite3
import subprocess
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from . import paths
from .errors import FoobarOpsError
from .result import HostOutcome, Result
from .secrets import mask_deep, mask_known
from .version import __version__

#: The source checkout, when foobar_ops runs from one (its git commit is recorded).
CHECKOUT = Path(__file__).resolve().parents[2]
SCHEMA_VERSION = 3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  run_id TEXT PRIMARY KEY, started TEXT NOT NULL, finished TEXT, user TEXT, command TEXT,
  runbook TEXT, parameters TEXT, inventory TEXT, inventory_sha256 TEXT, version TEXT,
  git_commit TEXT, test INTEGER, status TEXT NOT NULL, output_notebook TEXT, error TEXT);
CREATE TABLE IF NOT EXISTS results (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL REFERENCES runs(run_id), at TEXT NOT NULL,
  host TEXT NOT NULL, state_id TEXT NOT NULL, state TEXT, name TEXT, result INTEGER, changed INTEGER,
  run INTEGER, changes TEXT, comment TEXT, diff TEXT, duration_ms REAL);
CREATE INDEX IF NOT EXISTS results_run ON results(run_id);
CREATE INDEX IF NOT EXISTS results_host_at ON results(host, at);
"""

#: Schema changes, in order; entry N takes a journal from version N to N + 1.
_MIGRATIONS = [
    "",  # 0 -> 1: the base schema above
    """ALTER TABLE results ADD COLUMN status TEXT;
    UPDATE results SET status = CASE WHEN run = 0 THEN 'not_run' WHEN result = 0 THEN 'failed'
      WHEN result IS NULL THEN 'pending' WHEN changed = 1 THEN 'changed' ELSE 'ok' END;
    CREATE TABLE IF NOT EXISTS hosts (run_id TEXT NOT NULL REFERENCES runs(run_id), host TEXT NOT NULL,
      outcome TEXT NOT NULL, error TEXT, round_trips INTEGER, PRIMARY KEY (run_id, host));""",
    # 2 -> 3: a runbook run links its HTML rendering too
    "ALTER TABLE runs ADD COLUMN output_html TEXT;",
]


class JournalError(FoobarOpsError):
    """The journal could not be read or written, or a query was malformed."""


_context: dict[str, str | None] = {}


def set_context(runbook: str | None = None, output_notebook: str | None = None) -> None:
    """Link every run this process journals from now on to a runbook and its output notebook
    (set by a runbook's first cell).

    runbook: the runbook's name.
    output_notebook: its output notebook.
    """
    _context.update(runbook=runbook, output_notebook=output_notebook)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def default_path() -> Path:
    """Return the journal path: $FOOBAR_OPS_JOURNAL, else journal.sqlite in the records folder."""
    return paths.journal_path()


def git_commit(folder: Path = CHECKOUT) -> str | None:
    """Return the project's git commit (with "+dirty" when the tree has changes), or None."""
    try:
        head = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if head.returncode != 0 or not (folder / "pyproject.toml").exists():
            return None
        dirty = subprocess.run(
            ["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.TimeoutExpired):
        return None


def whoami() -> str:
    """Return who is running: the sudo user when run through sudo, else the login name."""
    return os.environ.get("SUDO_USER") or getpass.getuser()


class Journal:
    """The journal at a path (created on first use); safe to share between threads.

    path: the SQLite file (default: default_path()).
    """

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path else default_path()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self._migrate()
        except (OSError, sqlite3.Error) as err:
            raise JournalError(f"journal {self.path}: {err}") from None
        self.lock = threading.Lock()

    def _version(self) -> int:
        version = int(self.db.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"journal {self.path} has schema version {version}, newer than this foobar_ops "
                f"({__version__}, schema {SCHEMA_VERSION}): upgrade foobar_ops to use it"
            )
        return version

    def _migrate(self) -> None:
        """Bring the journal's schema to SCHEMA_VERSION (PRAGMA user_version counts the steps), one
        process at a time (a lock file beside the journal); a newer journal is refused."""
        if self._version() == SCHEMA_VERSION:
            return
        with open(self.path.with_name(self.path.name + ".migrate.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            version = self._version()  # another process may have migrated it meanwhile
            if version == 0:
                self.db.executescript(_SCHEMA)
            for step in range(max(version, 1), SCHEMA_VERSION):
                self.db.executescript(_MIGRATIONS[step])
            if version < SCHEMA_VERSION:
                self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                self.db.commit()

    def _write(self, sql: str, args: tuple[Any, ...]) -> None:
        try:
            with self.lock:
                self.db.execute(sql, args)
                self.db.commit()
        except sqlite3.Error as err:
            raise JournalError(f"journal {self.path}: cannot write: {err}") from None

    def start_run(
        self,
        *,
        command: str,
        inventory: Any = None,
        test: bool = False,
        parameters: dict[str, Any] | None = None,
        runbook: str | None = None,
        output_notebook: str | None = None,
        run_id: str | None = None,
    ) -> str:
        """Record the start of a run; return its id.

        command: the command line or entry point.
        inventory: the Inventory (path and hash are recorded).
        test: dry-run.
        parameters: parameters (masked: secrets never stored).
        runbook: the runbook's path when a runbook runs.
        output_notebook: where the run's output notebook is written.
        run_id: a given id (default: a new one).
        """
        run_id = run_id or datetime.now().strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        runbook = runbook or _context.get("runbook")
        output_notebook = output_notebook or _context.get("output_notebook")
        params = mask_known(json.dumps(mask_deep(parameters or {}), default=str, sort_keys=True))
        self._write(
            "INSERT INTO runs (run_id, started, user, command, runbook, parameters, inventory, "
            "inventory_sha256, version, git_commit, test, status, output_notebook) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                run_id,
                _now(),
                whoami(),
                mask_known(command),
                runbook,
                params,
                str(inventory.path) if inventory else None,
                inventory.sha256 if inventory else None,
                __version__,
                git_commit(),
                int(test),
                "running",
                output_notebook,
            ),
        )
        return run_id

    def add_result(self, run_id: str, r: Result) -> None:
        """Record one state result at once (a crash later keeps it).

        run_id: the run.
        r: a Result (already masked by the engine; masked again here).
        """
        self._write(
            "INSERT INTO results (run_id, at, host, state_id, state, name, status, result, changed, run, "
            "changes, comment, diff, duration_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                run_id,
                _now(),
                r.host,
                mask_known(r.id),
                r.state,
                mask_known(r.name),
                r.status.value,
                None if r.result is None else int(r.result),
                int(r.changed),
                int(r.status.value != "not_run"),
                mask_known(json.dumps(mask_deep(r.changes), default=str)),
                mask_known(r.comment),
                mask_known(r.diff) if r.diff else None,
                r.duration_ms,
            ),
        )

    def set_outputs(self, run_id: str, notebook: str | None, html: str | None) -> None:
        """Link a run to its output notebook and its HTML rendering.

        run_id: the run.
        notebook, html: their paths.
        """
        self._write("UPDATE runs SET output_notebook = ?, output_html = ? WHERE run_id = ?", (notebook, html, run_id))

    def add_outcome(self, run_id: str, outcome: HostOutcome) -> None:
        """Record how one host fared in a run.

        run_id: the run.
        outcome: the HostOutcome.
        """
        self._write(
            "INSERT OR REPLACE INTO hosts (run_id, host, outcome, error, round_trips) VALUES (?,?,?,?,?)",
            (
                run_id,
                outcome.host,
                outcome.outcome.value,
                mask_known(outcome.error) if outcome.error else None,
                outcome.round_trips,
            ),
        )

    def finish_run(self, run_id: str, status: str, error: str | None = None) -> None:
        """Record how a run ended: ok, failed or error (with its message, masked).

        run_id: the run.
        status: ok | failed | error.
        error: what went wrong, when it did.
        """
        self._write(
            "UPDATE runs SET finished=?, status=?, error=? WHERE run_id=?",
            (_now(), status, mask_known(error) if error else None, run_id),
        )

    @contextmanager
    def recording(self, **start: Any) -> Iterator["RunRecord"]:
        """Record one run around a block: yields a RunRecord whose add() journals a result at once;
        the run ends "ok", "failed" (a result was False) or "error" (the block raised, with why).

        start: start_run's arguments.
        """
        run = RunRecord(self, self.start_run(**start))
        try:
            yield run
        except BaseException as err:
            self.finish_run(run.id, "error", f"{type(err).__name__}: {err}")
            raise
        self.finish_run(run.id, "failed" if run.failed else "ok")

    def outcomes(self, run_id: str) -> Any:
        """Return how each host fared in one run, as a DataFrame."""
        import pandas as pd

        with self.lock:
            return pd.read_sql_query("SELECT * FROM hosts WHERE run_id = ? ORDER BY rowid", self.db, params=(run_id,))

    def runs(self, limit: int | None = None) -> Any:
        """Return runs, newest first, as a DataFrame (with counts of results, changes and failures)."""
        import pandas as pd

        sql = (
            "SELECT r.*, COUNT(x.seq) AS results, COALESCE(SUM(x.changed),0) AS changed, "
            "COALESCE(SUM(x.result = 0),0) AS failed, (SELECT COUNT(*) FROM hosts h WHERE h.run_id = r.run_id "
            "AND h.outcome = 'unreachable') AS unreachable FROM runs r LEFT JOIN results x USING (run_id) "
            "GROUP BY r.run_id ORDER BY r.started DESC" + (" LIMIT ?" if limit else "")
        )
        with self.lock:
            return pd.read_sql_query(sql, self.db, params=(limit,) if limit else ())

    def results(self, run_id: str) -> Any:
        """Return every result of one run as a DataFrame, in the order they came."""
        import pandas as pd

        with self.lock:
            frame = pd.read_sql_query("SELECT * FROM results WHERE run_id = ? ORDER BY seq", self.db, params=(run_id,))
        if frame.empty and not self.run(run_id):
            raise JournalError(f"no run {run_id!r} in {self.path}")
        return frame

    def run(self, run_id: str) -> dict[str, Any] | None:
        """Return one run's row as a dict, or None."""
        with self.lock:
            cur = self.db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,))
            row = cur.fetchone()
            return dict(zip([d[0] for d in cur.description], row, strict=True)) if row else None

    def changes(self, host: str | None = None, since: Any = None, state: str | None = None, test: bool = False) -> Any:
        """Return the results that changed a host, newest first, as a DataFrame.

        host: only this host.
        since: only after this: a datetime, an ISO date/time, or an age such as "7d", "12h", "30m".
        state: only this state function (e.g. "file.managed") or state id.
        test: include pending changes of test-mode runs instead of real changes.
        """
        import pandas as pd

        where = ["x.changed = 1" if not test else "x.result IS NULL AND x.changes != '{}'"]
        args: list[Any] = []
        if host:
            where.append("x.host = ?")
            args.append(host)
        if since is not None:
            where.append("x.at >= ?")
            args.append(parse_since(since))
        if state:
            where.append("(x.state = ? OR x.state_id = ?)")
            args += [state, state]
        sql = (
            "SELECT x.at, x.run_id, r.user, r.command, r.runbook, x.host, x.state_id, x.state, x.name, "
            "x.comment, x.changes, x.diff FROM results x JOIN runs r USING (run_id) WHERE "
            + " AND ".join(where)
            + " ORDER BY x.seq DESC"
        )
        with self.lock:
            return pd.read_sql_query(sql, self.db, params=args)

    def close(self) -> None:
        """Close the database."""
        with self.lock:
            self.db.close()


class RunRecord:
    """One run being recorded (see Journal.recording).

    journal: the Journal.
    id: the run id.
    """

    def __init__(self, journal: Journal, run_id: str) -> None:
        self.journal, self.id, self.failed = journal, run_id, False
        self._lock = threading.Lock()

    def add(self, result: Result) -> None:
        """Journal one result now.

        result: a Result.
        """
        with self._lock:
            self.failed = self.failed or result.failed
        self.journal.add_result(self.id, result)

    def add_outcome(self, outcome: HostOutcome) -> None:
        """Journal how one host fared.

        outcome: a HostOutcome.
        """
        with self._lock:
            self.failed = self.failed or outcome.outcome.value != "ok"
        self.journal.add_outcome(self.id, outcome)


def parse_since(since: Any) -> str:
    """Return an ISO UTC timestamp from an age ("7d", "12h", "30m", "2w") or a date/time.

    since: the age or date/time.
    """
    if isinstance(since, datetime):
        moment = since if since.tzinfo else since.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat(timespec="milliseconds")
    text = str(since).strip()
    m = re.fullmatch(r"(\d+)\s*([smhdw])", text)
    if m:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[m.group(2)]
        return (datetime.now(UTC) - timedelta(**{unit: int(m.group(1))})).isoformat(timespec="milliseconds")
    try:
        return parse_since(datetime.fromisoformat(text))
    except ValueError:
        raise JournalError(
            f"--since {text!r}: give an age such as 7d, 12h, 30m, or a date such as 2026-11-01"
        ) from None


def runs(path: Path | str | None = None, limit: int | None = None) -> Any:
    """Return the journal's runs as a DataFrame (newest first).

    path: the journal (default: default_path()).
    limit: at most this many.
    """
    return Journal(path).runs(limit)


def changes(
    host: str | None = None, since: Any = None, state: str | None = None, path: Path | str | None = None
) -> Any:
    """Return recorded changes as a DataFrame; see Journal.changes.

    host, since, state: filters.
    path: the journal (default: default_path()).
    """
    return Journal(path).changes(host=host, since=since, state=state)
