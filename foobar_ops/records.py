"""The change journal: one row per run and one per state result, written as results come in
(SQLite, `records/journal.sqlite` in the project by default), queryable as DataFrames."""
from __future__ import annotations

import getpass
import json
import os
import re
import sqlite3
import subprocess
import threading
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

from . import __version__
from .errors import FoobarOpsError
from .secrets import mask_deep, mask_known

PROJECT = Path(__file__).resolve().parent.parent
DEFAULT_PATH = PROJECT / "records" / "journal.sqlite"

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


class JournalError(FoobarOpsError):
    """The journal could not be read or written, or a query was malformed."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def default_path() -> Path:
    """Return the journal path: $FOOBAR_OPS_JOURNAL, else records/journal.sqlite in the project."""
    return Path(os.environ.get("FOOBAR_OPS_JOURNAL") or DEFAULT_PATH)


def git_commit(folder: Path = PROJECT) -> str | None:
    """Return the project's git commit (with "+dirty" when the tree has changes), or None."""
    try:
        head = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=5)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
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
            self.db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as err:
            raise JournalError(f"journal {self.path}: {err}") from None
        self.lock = threading.Lock()

    def _write(self, sql: str, args: tuple) -> None:
        with self.lock:
            self.db.execute(sql, args)
            self.db.commit()

    def start_run(self, *, command: str, inventory=None, test: bool = False, parameters: dict | None = None,
                  runbook: str | None = None, output_notebook: str | None = None, run_id: str | None = None) -> str:
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
        params = mask_known(json.dumps(mask_deep(parameters or {}), default=str, sort_keys=True))
        self._write("INSERT INTO runs (run_id, started, user, command, runbook, parameters, inventory, "
                    "inventory_sha256, version, git_commit, test, status, output_notebook) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (run_id, _now(), whoami(), mask_known(command), runbook, params,
                     str(inventory.path) if inventory else None, inventory.sha256 if inventory else None,
                     __version__, git_commit(), int(test), "running", output_notebook))
        return run_id

    def add_result(self, run_id: str, r) -> None:
        """Record one state result at once (a crash later keeps it).

        run_id: the run.
        r: a Result (already masked by the engine; masked again here).
        """
        self._write("INSERT INTO results (run_id, at, host, state_id, state, name, result, changed, run, "
                    "changes, comment, diff, duration_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (run_id, _now(), r.host, mask_known(r.id), r.state, mask_known(r.name),
                     None if r.result is None else int(r.result), int(r.changed), int(r.run),
                     mask_known(json.dumps(mask_deep(r.changes), default=str)),
                     mask_known(r.comment), mask_known(r.diff) if r.diff else None, r.duration_ms))

    def finish_run(self, run_id: str, status: str, error: str | None = None) -> None:
        """Record how a run ended: ok, failed or error (with its message, masked).

        run_id: the run.
        status: ok | failed | error.
        error: what went wrong, when it did.
        """
        self._write("UPDATE runs SET finished=?, status=?, error=? WHERE run_id=?",
                    (_now(), status, mask_known(error) if error else None, run_id))

    @contextmanager
    def recording(self, **start):
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

    def runs(self, limit: int | None = None):
        """Return runs, newest first, as a DataFrame (with counts of results, changes and failures)."""
        import pandas as pd
        sql = ("SELECT r.*, COUNT(x.seq) AS results, COALESCE(SUM(x.changed),0) AS changed, "
               "COALESCE(SUM(x.result = 0),0) AS failed FROM runs r LEFT JOIN results x USING (run_id) "
               "GROUP BY r.run_id ORDER BY r.started DESC" + (" LIMIT ?" if limit else ""))
        with self.lock:
            return pd.read_sql_query(sql, self.db, params=(limit,) if limit else ())

    def results(self, run_id: str):
        """Return every result of one run as a DataFrame, in the order they came."""
        import pandas as pd
        with self.lock:
            frame = pd.read_sql_query("SELECT * FROM results WHERE run_id = ? ORDER BY seq", self.db,
                                      params=(run_id,))
        if frame.empty and not self.run(run_id):
            raise JournalError(f"no run {run_id!r} in {self.path}")
        return frame

    def run(self, run_id: str) -> dict | None:
        """Return one run's row as a dict, or None."""
        with self.lock:
            cur = self.db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,))
            row = cur.fetchone()
            return dict(zip([d[0] for d in cur.description], row)) if row else None

    def changes(self, host: str | None = None, since=None, state: str | None = None, test: bool = False):
        """Return the results that changed a host, newest first, as a DataFrame.

        host: only this host.
        since: only after this: a datetime, an ISO date/time, or an age such as "7d", "12h", "30m".
        state: only this state function (e.g. "file.managed") or state id.
        test: include pending changes of test-mode runs instead of real changes.
        """
        import pandas as pd
        where = ["x.changed = 1" if not test else "x.result IS NULL AND x.changes != '{}'"]
        args: list = []
        if host:
            where.append("x.host = ?"); args.append(host)
        if since is not None:
            where.append("x.at >= ?"); args.append(parse_since(since))
        if state:
            where.append("(x.state = ? OR x.state_id = ?)"); args += [state, state]
        sql = ("SELECT x.at, x.run_id, r.user, r.command, r.runbook, x.host, x.state_id, x.state, x.name, "
               "x.comment, x.changes, x.diff FROM results x JOIN runs r USING (run_id) WHERE "
               + " AND ".join(where) + " ORDER BY x.seq DESC")
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

    def add(self, result) -> None:
        """Journal one result now.

        result: a Result.
        """
        self.journal.add_result(self.id, result)
        self.failed = self.failed or result.result is False


def parse_since(since) -> str:
    """Return an ISO UTC timestamp from an age ("7d", "12h", "30m", "2w") or a date/time.

    since: the age or date/time.
    """
    if isinstance(since, datetime):
        moment = since if since.tzinfo else since.replace(tzinfo=timezone.utc)
        return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds")
    text = str(since).strip()
    m = re.fullmatch(r"(\d+)\s*([smhdw])", text)
    if m:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}[m.group(2)]
        return (datetime.now(timezone.utc) - timedelta(**{unit: int(m.group(1))})).isoformat(timespec="milliseconds")
    try:
        return parse_since(datetime.fromisoformat(text))
    except ValueError:
        raise JournalError(f"--since {text!r}: give an age such as 7d, 12h, 30m, or a date such as 2026-11-01") from None


def runs(path=None, limit=None):
    """Return the journal's runs as a DataFrame (newest first).

    path: the journal (default: default_path()).
    limit: at most this many.
    """
    return Journal(path).runs(limit)


def changes(host=None, since=None, state=None, path=None):
    """Return recorded changes as a DataFrame; see Journal.changes.

    host, since, state: filters.
    path: the journal (default: default_path()).
    """
    return Journal(path).changes(host=host, since=since, state=state)
