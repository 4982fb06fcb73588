"""The change journal: one row per run, one per state result and one per host outcome, written as
they come in, queryable as DataFrames. Embedded (SQLite in the records folder) by default; a
database URL (MariaDB, PostgreSQL) puts every SRE's runs into one audit trail. The schema is
versioned and migrated when the journal is opened (SQLAlchemy, one schema for every backend)."""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import os
import re
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Table, and_, case, create_engine, event, func, insert, or_, select, update
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from . import machine, paths, privacy
from .errors import FoobarOpsError, IdentityError, JournalError
from .heartbeat import Heartbeat, died
from .result import HostOutcome, Result, Status
from .run import new_run_id
from .schema import ALERTS, HOSTS, RESULTS, RUNS, TABLES, migrate
from .secrets import Secret, mask_command, mask_deep, mask_known
from .spool import Refused, Spool
from .version import __version__

#: The command an approval of a saved plan is recorded as (see ops.approve_plan).
APPROVE_COMMAND = "plan approve"

#: The source checkout, when foobar_ops runs from one (its git commit is recorded).
CHECKOUT = Path(__file__).resolve().parents[2]


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


#: What FOOBAR_OPS_USER may be: a plain name (an account, an e-mail address).
_IDENTITY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}")


def whoami() -> str:
    """Return who is running: $FOOBAR_OPS_USER when set (an identity given explicitly, e.g. by a
    shared automation account acting for a person), else the sudo user when run through sudo, else
    the login name. An identity that is not a plain name is refused (IdentityError)."""
    return identity()[0]


def identity() -> tuple[str, str]:
    """Return who is running and where that came from: FOOBAR_OPS_USER (given explicitly), sudo
    (SUDO_USER) or login (see whoami)."""
    given = os.environ.get("FOOBAR_OPS_USER")
    if given is not None:
        if not _IDENTITY.fullmatch(given):
            raise IdentityError(
                f"FOOBAR_OPS_USER {given[:80]!r} is not a plain name: 1 to 64 letters, digits or ._@+- "
                "(starting with a letter or digit)"
            )
        return given, "FOOBAR_OPS_USER"
    if os.environ.get("SUDO_USER"):
        return os.environ["SUDO_USER"], "sudo"
    return getpass.getuser(), "login"


class Journal:
    """The journal at a path or database URL (created on first use); safe to share between threads.

    target: a SQLite file path, or a database URL such as mysql+pymysql://journal@db/foobar_ops
        (default: $FOOBAR_OPS_JOURNAL, else journal.sqlite in the records folder).
    password: the database password as a Secret (default: $FOOBAR_OPS_JOURNAL_PASSWORD, a reference
        such as file:PATH), never part of the URL itself.
    """

    def __init__(
        self,
        target: Path | str | None = None,
        password: Secret | None = None,
        *,
        runbook: str | None = None,
        output_notebook: str | None = None,
    ) -> None:
        #: every run journaled through this object is linked to this runbook and its output
        #: notebook (a runbook's own journal: see runbooks.context)
        self.runbook, self.output_notebook = runbook, output_notebook
        named = str(target) if target else os.environ.get("FOOBAR_OPS_JOURNAL") or str(default_path())
        self.lock = threading.Lock()
        self._heartbeat = Heartbeat(self._beat)  # for the runs this journal started and has not finished
        try:
            if "://" in named:
                url = make_url(named)
                ref = password or (
                    Secret(os.environ["FOOBAR_OPS_JOURNAL_PASSWORD"])
                    if os.environ.get("FOOBAR_OPS_JOURNAL_PASSWORD")
                    else None
                )
                if ref is not None:
                    url = url.set(password=ref.reveal())
                self.url = url
                self.path: Path | str = url.render_as_string(hide_password=True)
                self.engine: Engine = create_engine(url, pool_pre_ping=True, pool_recycle=3600)
            else:
                self.path = Path(named)
                _private_journal(self.path)
                # a connection per write (NullPool): no descriptor is held between writes, so a
                # journal made unwritable (a read-only file or mount, a full disk) is noticed at
                # the next record, and this process never holds stale SQLite locks
                self.engine = create_engine(
                    f"sqlite:///{self.path}",
                    connect_args={"timeout": 30, "check_same_thread": False},
                    poolclass=NullPool,
                )
                event.listen(self.engine, "connect", _sqlite_pragmas)
            migrate(self.engine, self.path if isinstance(self.path, Path) else None)
        except (OSError, SQLAlchemyError, FoobarOpsError) as err:
            raise JournalError(
                f"journal {self.path if hasattr(self, 'path') else named}: {mask_known(str(err).splitlines()[0])}"
            ) from None
        self.spools = _spool_paths(self.path)  # where refused records wait, in order of preference
        self.spool = self.spools[0]
        self.replay()

    @property
    def sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    # ---- writing -----------------------------------------------------------------------------

    def _write(self, statement: Any, params: dict[str, Any] | list[dict[str, Any]] | None = None) -> None:
        try:
            with self.lock, self.engine.begin() as conn:
                conn.execute(statement, params)
        except SQLAlchemyError as err:
            raise JournalError(f"journal {self.path}: cannot write: {mask_known(str(err).splitlines()[0])}") from None

    @staticmethod
    def _statement(table: Table, values: dict[str, Any], run_id: str | None) -> tuple[Any, dict[str, Any] | None]:
        """One row's write and its parameters: an insert (one compiled statement per table, the
        row as parameters); with run_id, an update of that run's row."""
        if run_id is None:
            return insert(table), values
        return update(table).where(table.c.run_id == run_id).values(**values), None

    def _keep(self, table: Table, values: dict[str, Any], run_id: str | None = None) -> None:
        """Write one row (see _statement); when the journal refuses it, keep it in the spool file,
        to be added when the journal can be written again, and raise JournalError saying where it
        is."""
        try:
            self._write(*self._statement(table, values, run_id))
        except JournalError as err:
            self._spool([{"table": table.name, "run_id": run_id, "values": values}], err)

    def _keep_rows(self, table: Table, rows: list[dict[str, Any]]) -> None:
        """Insert rows in one transaction (all or none); when the journal refuses them, keep them
        all in the spool, as _keep does."""
        if not rows:
            return
        try:
            self._write(insert(table), rows)
        except JournalError as err:
            self._spool([{"table": table.name, "run_id": None, "values": row} for row in rows], err)

    def _spool(self, records: list[dict[str, Any]], err: JournalError) -> None:
        failures = []
        for spool in self.spools:  # next to the journal; else (its folder refuses too) the records folder
            try:
                with self.lock:
                    Spool(spool).extend(records)  # all or none: never some here, all in the next
            except OSError as spool_err:
                failures.append(f"{spool}: {spool_err.strerror or spool_err}")
                continue
            raise JournalError(f"{err}; kept in {spool}, added when the journal can be written") from None
        raise JournalError(f"{err}; and no spool can be written ({'; '.join(failures)})") from None

    def replay(self) -> int:
        """Add the rows kept in the spools while the journal could not be written; return how many.
        Each spool is read and rewritten under its file lock (appending takes it too: no record
        is lost to a replay). A line that can never be added (torn, not a record, a duplicate) is
        set aside in SPOOL.rejected and reported (`rejected`, and a warning); when the journal
        still refuses, that line and the ones after it stay in the spool, in order, for later."""
        self.rejected: list[str] = []
        return sum(self._replay(spool) for spool in self.spools if spool.exists())

    def _replay(self, spool: Path) -> int:
        try:
            with self.lock:
                done = Spool(spool).replay(self._add_spooled)
        except OSError:
            return 0  # it cannot be locked or rewritten now (a read-only folder): later
        if done.rejected:
            why = "; ".join(done.rejected[:3]) + ("; ..." if len(done.rejected) > 3 else "")
            self.rejected.append(
                f"journal {self.path}: {len(done.rejected)} spooled record(s) could not be added ({why}): "
                f"set aside in {done.aside}"
            )
            _log.warning("foobar-ops: %s", self.rejected[-1])
        return done.added

    def _add_spooled(self, record: dict[str, Any]) -> None:
        """Add one spooled record (spool.Refused while the journal still refuses)."""
        statement, params = self._statement(TABLES[record["table"]], record["values"], record.get("run_id") or None)
        try:
            with self.engine.begin() as conn:
                conn.execute(statement, params)
        except (OperationalError, InterfaceError) as err:
            raise Refused(str(err)) from None

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
        approval: dict[str, str] | None = None,
    ) -> str:
        """Record the start of a run; return its id.

        command: the command line or entry point.
        inventory: the Inventory (path and hash are recorded).
        test: dry-run.
        parameters: parameters (masked: secrets never stored).
        runbook: the runbook's name when a runbook runs.
        output_notebook: where the run's output notebook is written.
        run_id: a given id (default: a new one).
        approval: for a run under change control: planned_by, approved_by and plan_digest (the
            plan's digest); an approval itself records planned_by and plan_digest.
        """
        run_id = run_id or new_run_id()
        approval = approval or {}
        user, source = identity()
        runbook = runbook or self.runbook
        output_notebook = output_notebook or self.output_notebook
        params = mask_known(json.dumps(mask_deep(parameters or {}), default=str, sort_keys=True))
        self._write(
            insert(RUNS).values(
                run_id=run_id,
                started=_now(),
                user=user,
                user_source=source,
                command=mask_command(command),
                runbook=runbook,
                parameters=params,
                inventory=str(inventory.path) if inventory else None,
                inventory_sha256=inventory.sha256 if inventory else None,
                version=__version__,
                git_commit=git_commit(),
                test=int(test),
                status="running",
                output_notebook=output_notebook,
                machine_id=machine.machine_id(),
                pid=os.getpid(),
                pid_start=machine.process_start(os.getpid()),
                heartbeat=_now(),
                planned_by=approval.get("planned_by"),
                approved_by=approval.get("approved_by"),
                plan_digest=approval.get("plan_digest"),
            )
        )
        self._heartbeat.start(run_id)
        return run_id

    def _beat(self, run_ids: list[str]) -> None:
        """Record that these runs still run (see core.heartbeat)."""
        self._write(update(RUNS).where(RUNS.c.run_id.in_(run_ids)).values(heartbeat=_now()))

    def add_result(self, run_id: str, r: Result) -> None:
        """Record one state result at once (a crash later keeps it).

        run_id: the run.
        r: a Result (already masked by the engine; masked again here).
        """
        self.add_results(run_id, [(r, _now())])

    def add_results(self, run_id: str, results: list[tuple[Result, str]]) -> None:
        """Record state results in one write (all or none).

        run_id: the run.
        results: (Result, when it was known: an ISO UTC timestamp) pairs, in order.
        """
        self._keep_rows(
            RESULTS,
            [
                {
                    "run_id": run_id,
                    "at": at,
                    "host": r.host,
                    "state_id": mask_known(r.id),
                    "state": r.state,
                    "name": mask_known(r.name),
                    "status": r.status.value,
                    "result": None if r.result is None else int(r.result),
                    "changed": int(r.changed),
                    "run": int(r.status.value != "not_run"),
                    "changes": mask_known(json.dumps(mask_deep(r.changes), default=str)),
                    "comment": mask_known(r.comment),
                    "diff": mask_known(r.diff) if r.diff else None,
                    "duration_ms": r.duration_ms,
                }
                for r, at in results
            ],
        )

    def set_plan(self, run_id: str, digest: str, planned_by: str) -> None:
        """Record on a test-mode run the digest of the plan it saved, and who made it: what an
        approval and an apply under change control hold the plan file to.

        run_id: the planning run.
        digest, planned_by: the saved plan's digest and author.
        """
        self._keep(RUNS, {"plan_digest": digest, "planned_by": planned_by}, run_id)

    def set_outputs(self, run_id: str, notebook: str | None, html: str | None) -> None:
        """Link a run to its output notebook and its HTML rendering.

        run_id: the run.
        notebook, html: their paths.
        """
        self._keep(RUNS, {"output_notebook": notebook, "output_html": html}, run_id)

    def add_outcome(self, run_id: str, outcome: HostOutcome) -> None:
        """Record how one host fared in a run.

        run_id: the run.
        outcome: the HostOutcome.
        """
        self.add_outcomes(run_id, [outcome])

    def add_outcomes(self, run_id: str, outcomes: list[HostOutcome]) -> None:
        """Record how hosts fared in a run, in one write.

        run_id: the run.
        outcomes: HostOutcomes.
        """
        self._keep_rows(
            HOSTS,
            [
                {
                    "run_id": run_id,
                    "host": outcome.host,
                    "outcome": outcome.outcome.value,
                    "error": mask_known(outcome.error) if outcome.error else None,
                    "round_trips": outcome.round_trips,
                }
                for outcome in outcomes
            ],
        )

    def finish_run(self, run_id: str, status: str, error: str | None = None) -> None:
        """Record how a run ended: ok, failed or error (with its message, masked).

        run_id: the run.
        status: ok | failed | error (runbooks: refused, timeout, kernel-died).
        error: what went wrong, when it did.
        """
        self._heartbeat.stop(run_id)
        self._keep(RUNS, {"finished": _now(), "status": status, "error": mask_known(error) if error else None}, run_id)

    def begin(self, **start: Any) -> RunRecord:
        """Record the start of a run (start_run's arguments); return its RunRecord, whose finish()
        the caller owes (see recording)."""
        return RunRecord(self, self.start_run(**start))

    @contextmanager
    def recording(self, **start: Any) -> Iterator[RunRecord]:
        """Record one run around a block: yields a RunRecord whose add() journals a result at once;
        the run ends "ok", "failed" (a result was False) or "error" (the block raised, with why).

        start: start_run's arguments.
        """
        run = self.begin(**start)  # a journal that cannot start a run stops it here
        try:
            yield run
        except BaseException as err:
            run.finish("error", f"{type(err).__name__}: {err}")
            raise
        run.finish("failed" if run.failed or run.errors else "ok")

    def import_runs(
        self, runs: list[dict[str, Any]], results: list[dict[str, Any]], hosts: list[dict[str, Any]]
    ) -> int:
        """Add finished runs recorded by another journal (e.g. the scheduler host's), with their
        results and host outcomes; a run already here is left as it is. Return how many were added.

        runs, results, hosts: rows of those tables (columns this schema lacks are left out).
        """
        keep = {t.name: {c.name for c in t.c} - {"seq"} for t in (RUNS, RESULTS, HOSTS)}
        ids = [str(r.get("run_id")) for r in runs if r.get("run_id") and r.get("finished")]
        if not ids:
            return 0
        try:
            with self.lock, self.engine.begin() as conn:
                there = {row[0] for row in conn.execute(select(RUNS.c.run_id).where(RUNS.c.run_id.in_(ids)))}
                fresh = set(ids) - there
                if not fresh:
                    return 0
                for table, rows in ((RUNS, runs), (RESULTS, results), (HOSTS, hosts)):
                    chosen = [
                        {k: v for k, v in row.items() if k in keep[table.name]}
                        for row in rows
                        if row.get("run_id") in fresh
                    ]
                    if chosen:
                        conn.execute(insert(table), chosen)
        except SQLAlchemyError as err:
            raise JournalError(f"journal {self.path}: cannot write: {mask_known(str(err).splitlines()[0])}") from None
        return len(fresh)

    def add_alerts(self, alerts: list[dict[str, Any]]) -> int:
        """Record alerts delivered by Alertmanager (see stack.alerts.rows): each firing and each
        resolution once, however often Alertmanager repeats it. Return how many were new.

        alerts: rows with name, severity, instance, state, since, ended, fingerprint, summary, labels.
        """
        fresh = []
        try:
            with self.lock, self.engine.begin() as conn:
                for row in alerts:
                    seen = conn.execute(
                        select(ALERTS.c.seq)
                        .where(
                            and_(
                                ALERTS.c.name == row["name"],
                                ALERTS.c.fingerprint == row["fingerprint"],
                                ALERTS.c.since == row["since"],
                                ALERTS.c.state == row["state"],
                            )
                        )
                        .limit(1)
                    ).first()
                    if seen is not None:
                        continue
                    values = {**row, "at": _now(), "summary": mask_known(row.get("summary") or "")}
                    try:
                        with conn.begin_nested():  # another receiver may have written it meanwhile
                            conn.execute(insert(ALERTS), values)
                    except IntegrityError:
                        continue
                    fresh.append(values)
        except SQLAlchemyError as err:
            raise JournalError(f"journal {self.path}: cannot write: {mask_known(str(err).splitlines()[0])}") from None
        return len(fresh)

    # ---- reading -----------------------------------------------------------------------------

    def alerts(self, since: Any = None, name: str | None = None) -> Any:
        """Return the alerts recorded (each firing and resolution), oldest first, as a DataFrame.

        since: only after this: an age such as "1d", "2h", or a date/time.
        name: only alerts of this name.
        """
        where = []
        if since is not None:
            where.append(ALERTS.c.at >= parse_since(since))
        if name:
            where.append(ALERTS.c.name == name)
        query = select(ALERTS).order_by(ALERTS.c.seq)
        return self._frame(query.where(and_(*where)) if where else query)

    def _frame(self, query: Any) -> Any:
        import pandas as pd

        try:
            with self.engine.connect() as conn:
                return pd.read_sql_query(query, conn)
        except SQLAlchemyError as err:
            raise JournalError(f"journal {self.path}: cannot read: {str(err).splitlines()[0]}") from None

    def outcomes(self, run_id: str) -> Any:
        """Return how each host fared in one run, as a DataFrame."""
        return self._frame(select(HOSTS).where(HOSTS.c.run_id == run_id))

    def runs(self, limit: int | None = None) -> Any:
        """Return runs, newest first, as a DataFrame (with counts of results, changes and failures)."""
        unreachable = (
            select(func.count())
            .select_from(HOSTS)
            .where(and_(HOSTS.c.run_id == RUNS.c.run_id, HOSTS.c.outcome == "unreachable"))
            .scalar_subquery()
        )
        query = (
            select(
                *RUNS.c,
                func.count(RESULTS.c.seq).label("results"),
                func.coalesce(func.sum(RESULTS.c.changed), 0).label("changed"),
                func.coalesce(func.sum(case((RESULTS.c.result == 0, 1), else_=0)), 0).label("failed"),
                unreachable.label("unreachable"),
            )
            .select_from(RUNS.outerjoin(RESULTS, RESULTS.c.run_id == RUNS.c.run_id))
            .group_by(*RUNS.c)
            .order_by(RUNS.c.started.desc())
        )
        return self._alive(self._frame(query.limit(limit) if limit else query))

    def _alive(self, frame: Any) -> Any:
        """Show a run whose process is gone as `died` (it never said how it ended), with its last
        result (`last_result`)."""
        frame["last_result"] = None
        for index in frame.index[frame["status"] == "running"]:
            if died(frame.loc[index].to_dict()):
                frame.loc[index, ["status", "last_result"]] = ["died", self._last_result(frame.loc[index, "run_id"])]
        return frame

    def _last_result(self, run_id: str) -> str | None:
        """The last result a run recorded, as "HOST STATE_ID: STATUS"."""
        query = select(RESULTS.c.host, RESULTS.c.state_id, RESULTS.c.status).where(RESULTS.c.run_id == run_id)
        with self.engine.connect() as conn:
            row = conn.execute(query.order_by(RESULTS.c.seq.desc()).limit(1)).first()
        return f"{row[0]} {row[1]}: {row[2]}" if row else None

    def results(self, run_id: str) -> Any:
        """Return every result of one run as a DataFrame, in the order they came."""
        frame = self._frame(select(RESULTS).where(RESULTS.c.run_id == run_id).order_by(RESULTS.c.seq))
        if frame.empty and not self.run(run_id):
            raise JournalError(f"no run {run_id!r} in {self.path}")
        return frame

    def run(self, run_id: str) -> dict[str, Any] | None:
        """Return one run's row as a dict, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(select(RUNS).where(RUNS.c.run_id == run_id)).mappings().first()
        if row is None:
            return None
        found = dict(row)
        if found["status"] == "running" and died(found):
            found.update(status="died", last_result=self._last_result(run_id))
        return found

    def approvals(self, digest: str) -> list[dict[str, Any]]:
        """Return the approvals recorded for the plan of this digest (runs `plan approve` that
        ended ok), oldest first: each a dict with run_id, user (the approver), started, planned_by.

        digest: the plan's digest (SavedPlan.digest()).
        """
        query = (
            select(RUNS.c.run_id, RUNS.c.user, RUNS.c.started, RUNS.c.planned_by)
            .where(and_(RUNS.c.plan_digest == digest, RUNS.c.command == APPROVE_COMMAND, RUNS.c.status == "ok"))
            .order_by(RUNS.c.started)
        )
        try:
            with self.engine.connect() as conn:
                return [dict(row) for row in conn.execute(query).mappings()]
        except SQLAlchemyError as err:
            raise JournalError(f"journal {self.path}: cannot read: {str(err).splitlines()[0]}") from None

    def changes(self, host: str | None = None, since: Any = None, state: str | None = None, test: bool = False) -> Any:
        """Return the results that changed a host, newest first, as a DataFrame.

        host: only this host.
        since: only after this: a datetime, an ISO date/time, or an age such as "7d", "12h", "30m".
        state: only this state function (e.g. "file.managed") or state id.
        test: include pending changes of test-mode runs instead of real changes.
        """
        where = [RESULTS.c.changed == 1] if not test else [RESULTS.c.result.is_(None), RESULTS.c.changes != "{}"]
        if host:
            where.append(RESULTS.c.host == host)
        if since is not None:
            where.append(RESULTS.c.at >= parse_since(since))
        if state:
            where.append(or_(RESULTS.c.state == state, RESULTS.c.state_id == state))
        query = (
            select(
                RESULTS.c.at,
                RESULTS.c.run_id,
                RUNS.c.user,
                RUNS.c.command,
                RUNS.c.runbook,
                RESULTS.c.host,
                RESULTS.c.state_id,
                RESULTS.c.state,
                RESULTS.c.name,
                RESULTS.c.comment,
                RESULTS.c.changes,
                RESULTS.c.diff,
            )
            .select_from(RESULTS.join(RUNS, RUNS.c.run_id == RESULTS.c.run_id))
            .where(and_(*where))
            .order_by(RESULTS.c.seq.desc())
        )
        return self._frame(query)

    def close(self) -> None:
        """Close the journal's connections (and stop beating for runs it did not finish)."""
        self._heartbeat.stop()
        self.engine.dispose()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


class RunRecord:
    """One run being recorded (see Journal.recording). Once the run has started, a record the
    journal refuses (a full disk, a file made read-only, a database gone) never stops the run: it
    is kept in the spool (see Journal.replay) and listed in `errors`.

    journal: the Journal.
    id: the run id.
    """

    def __init__(self, journal: Journal, run_id: str) -> None:
        self.journal, self.id, self.failed = journal, run_id, False
        self.errors: list[str] = []  # what could not be written to the journal (kept in the spool)
        self._lock = threading.Lock()
        self._held: list[tuple[Result, str]] = []  # "ok" results not written yet, with when they came
        self._writing = threading.Lock()  # held from taking a batch of results to writing it

    def _safely(self, write: Any, *args: Any) -> None:
        try:
            write(self.id, *args)
        except Exception as err:  # noqa: BLE001 - the journal's trouble must not stop the run
            with self._lock:
                self.errors.append(
                    mask_known(str(err) if isinstance(err, JournalError) else f"{type(err).__name__}: {err}")
                )

    def add(self, result: Result) -> None:
        """Journal one result: a change, a failure or anything else that is not plain "ok" at once,
        with every "ok" result held before it in the same write; "ok" results (nothing was done)
        are held until then, or until flush() (the engine flushes after each host's turn).

        result: a Result.
        """
        with self._writing:  # batches are written in the order they were taken: a host's stay in order
            with self._lock:
                self.failed = self.failed or result.failed
                self._held.append((result, _now()))
                if result.status is Status.OK:
                    return
                batch, self._held = self._held, []
            self._safely(self.journal.add_results, batch)

    def flush(self) -> None:
        """Journal the results held so far."""
        with self._writing:
            with self._lock:
                batch, self._held = self._held, []
            if batch:
                self._safely(self.journal.add_results, batch)

    def add_outcome(self, outcome: HostOutcome) -> None:
        """Journal how one host fared.

        outcome: a HostOutcome.
        """
        self.add_outcomes([outcome])

    def add_outcomes(self, outcomes: list[HostOutcome]) -> None:
        """Journal how hosts fared (the held results first), in one write.

        outcomes: HostOutcomes.
        """
        self.flush()
        with self._lock:
            self.failed = self.failed or any(o.outcome.value != "ok" for o in outcomes)
        self._safely(self.journal.add_outcomes, outcomes)

    def finish(self, status: str, error: str | None = None) -> None:
        """Journal how the run ended (the held results first)."""
        self.flush()
        self._safely(self.journal.finish_run, status, error)


_log = logging.getLogger(__name__)


def _private_journal(path: Path) -> None:
    """Make an embedded journal's file (and the folder it is made in) its owner's only, or its
    team's in a shared records folder; an existing one readable by others is tightened."""
    privacy.make_dir(path.parent)
    privacy.create_file(path)
    for kept in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        privacy.tighten(kept)


def _spool_paths(journal: Path | str) -> list[Path]:
    """Where records wait while the journal cannot take them: next to an embedded journal, then in
    the records folder (one file per journal, named after its path or URL)."""
    tag = hashlib.sha256(str(journal).encode()).hexdigest()[:12]
    kept = [paths.records_dir() / f"journal-{tag}.spool.jsonl"]
    if isinstance(journal, Path):
        kept.insert(0, journal.with_name(journal.name + ".spool.jsonl"))
    return kept


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
