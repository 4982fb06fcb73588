"""The journal's schema: its tables (runs, results, hosts, and foobar_ops_meta, which holds the
schema's version) and the migrations that bring a journal of an older foobar_ops to this one's,
one process at a time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Float, Index, Integer, MetaData, String, Table, Text, insert, inspect, select, text
from sqlalchemy.engine import Connection, Engine

from .errors import FoobarOpsError
from .spool import flocked
from .version import __version__

__all__ = ["ALERTS", "HOSTS", "META", "METADATA", "RESULTS", "RUNS", "SCHEMA_VERSION", "TABLES", "migrate"]

SCHEMA_VERSION = 7

METADATA = MetaData()
RUNS = Table(
    "runs",
    METADATA,
    Column("run_id", String(64), primary_key=True),
    Column("started", String(40), nullable=False),
    Column("finished", String(40)),
    Column("user", String(255)),
    Column("command", Text),
    Column("runbook", String(255)),
    Column("parameters", Text),
    Column("inventory", Text),
    Column("inventory_sha256", String(64)),
    Column("version", String(32)),
    Column("git_commit", String(64)),
    Column("test", Integer),
    Column("status", String(32), nullable=False),
    Column("output_notebook", Text),
    Column("error", Text),
    Column("output_html", Text),
    Column("machine_id", String(255)),  # the control machine (core.machine.machine_id)
    Column("pid", Integer),  # the run's process there ...
    Column("pid_start", String(32)),  # ... and when it started (a reused pid is another process)
    Column("heartbeat", String(40)),  # the last sign of life of a run still running
    # change control (stack.change_control): who made the plan a run applies, who approved it, and
    # the digest of that plan; an approval (`plan approve`) records the plan's author and digest
    # where `user` came from: FOOBAR_OPS_USER (an identity given explicitly), sudo or login
    Column("user_source", String(32)),
    Column("planned_by", String(255)),
    Column("approved_by", String(255)),
    Column("plan_digest", String(64)),
)
RESULTS = Table(
    "results",
    METADATA,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), nullable=False),
    Column("at", String(40), nullable=False),
    Column("host", String(255), nullable=False),
    Column("state_id", Text, nullable=False),
    Column("state", String(64)),
    Column("name", Text),
    Column("result", Integer),
    Column("changed", Integer),
    Column("run", Integer),
    Column("changes", Text),
    Column("comment", Text),
    Column("diff", Text),
    Column("duration_ms", Float),
    Column("status", String(16)),
)
Index("results_run", RESULTS.c.run_id)
Index("results_host_at", RESULTS.c.host, RESULTS.c.at)
HOSTS = Table(
    "hosts",
    METADATA,
    Column("run_id", String(64), primary_key=True),
    Column("host", String(255), primary_key=True),
    Column("outcome", String(16), nullable=False),
    Column("error", Text),
    Column("round_trips", Integer),
)
#: Alerts that Alertmanager delivered to foobar_ops's webhook: one row per firing and per resolution
#: of an alert (a repeated delivery of the same one is kept once).
ALERTS = Table(
    "alerts",
    METADATA,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("at", String(40), nullable=False),  # when foobar_ops received it
    Column("name", String(255), nullable=False),
    Column("severity", String(32)),
    Column("instance", String(255)),
    Column("state", String(16), nullable=False),  # firing or resolved
    Column("since", String(40)),  # when it began firing (Alertmanager's startsAt)
    Column("ended", String(40)),  # when it resolved (endsAt), for a resolution
    Column("fingerprint", String(64)),
    Column("summary", Text),
    Column("labels", Text),
)
Index("alerts_at", ALERTS.c.at)
# one row per firing and per resolution of an alert, whichever process receives it (and however often)
Index("alerts_once", ALERTS.c.name, ALERTS.c.fingerprint, ALERTS.c.since, ALERTS.c.state, unique=True)
META = Table("foobar_ops_meta", METADATA, Column("name", String(64), primary_key=True), Column("value", String(255)))

#: Changes to journals made before the schema was versioned in foobar_ops_meta (SQLite ones, by
#: their PRAGMA user_version): entry N takes one from version N to N + 1.
_SQLITE_MIGRATIONS = [
    """CREATE TABLE IF NOT EXISTS runs (
      run_id TEXT PRIMARY KEY, started TEXT NOT NULL, finished TEXT, user TEXT, command TEXT,
      runbook TEXT, parameters TEXT, inventory TEXT, inventory_sha256 TEXT, version TEXT,
      git_commit TEXT, test INTEGER, status TEXT NOT NULL, output_notebook TEXT, error TEXT);
    CREATE TABLE IF NOT EXISTS results (
      seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL REFERENCES runs(run_id), at TEXT NOT NULL,
      host TEXT NOT NULL, state_id TEXT NOT NULL, state TEXT, name TEXT, result INTEGER, changed INTEGER,
      run INTEGER, changes TEXT, comment TEXT, diff TEXT, duration_ms REAL)""",
    """ALTER TABLE results ADD COLUMN status TEXT;
    UPDATE results SET status = CASE WHEN run = 0 THEN 'not_run' WHEN result = 0 THEN 'failed'
      WHEN result IS NULL THEN 'pending' WHEN changed = 1 THEN 'changed' ELSE 'ok' END;
    CREATE TABLE IF NOT EXISTS hosts (run_id TEXT NOT NULL REFERENCES runs(run_id), host TEXT NOT NULL,
      outcome TEXT NOT NULL, error TEXT, round_trips INTEGER, PRIMARY KEY (run_id, host))""",
    "ALTER TABLE runs ADD COLUMN output_html TEXT",
]


def _add_liveness(conn: Connection) -> None:
    """Schema 3 to 4: where a run's process runs, so that a run whose process died shows so."""
    for name, kind in (
        ("machine_id", "VARCHAR(255)"),
        ("pid", "INTEGER"),
        ("pid_start", "VARCHAR(32)"),
        ("heartbeat", "VARCHAR(40)"),
    ):
        conn.execute(text(f"ALTER TABLE runs ADD COLUMN {name} {kind}"))


#: Changes from SCHEMA_VERSION on, for every backend: entry N takes a journal from N to N + 1
#: (e.g. a function of the connection that adds a column).
def _add_alerts(conn: Connection) -> None:
    """Schema 4 to 5: the alerts delivered to foobar_ops's webhook."""
    ALERTS.create(conn, checkfirst=True)
    for index in ALERTS.indexes:
        index.create(conn, checkfirst=True)


def _add_change_control(conn: Connection) -> None:
    """Schema 5 to 6: who planned, approved and applied a plan."""
    for name, kind in (("planned_by", "VARCHAR(255)"), ("approved_by", "VARCHAR(255)"), ("plan_digest", "VARCHAR(64)")):
        conn.execute(text(f"ALTER TABLE runs ADD COLUMN {name} {kind}"))


def _add_user_source(conn: Connection) -> None:
    """Schema 6 to 7: where each run's user came from (FOOBAR_OPS_USER, sudo, login)."""
    conn.execute(text("ALTER TABLE runs ADD COLUMN user_source VARCHAR(32)"))


_MIGRATIONS: dict[int, Any] = {3: _add_liveness, 4: _add_alerts, 5: _add_change_control, 6: _add_user_source}

#: The tables a spooled record may name.
TABLES = {t.name: t for t in (RUNS, RESULTS, HOSTS)}


def migrate(engine: Engine, path: Path | None = None) -> None:
    """Bring a journal's schema to SCHEMA_VERSION, one process at a time (a FoobarOpsError for a
    journal of a newer foobar_ops).

    engine: the journal's engine.
    path: an embedded journal's file (its migration lock is a file beside it); None on a server.
    """
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        if _version(conn, sqlite) == SCHEMA_VERSION:
            return
    with _migration_lock(engine, path), engine.begin() as conn:
        version = _version(conn, sqlite)  # another process may have migrated it meanwhile
        if version == 0:
            METADATA.create_all(conn)
        elif version < 3:  # an embedded journal from before foobar_ops_meta
            for step in range(version, 3):
                for statement in _SQLITE_MIGRATIONS[step].split(";"):
                    if statement.strip():
                        conn.exec_driver_sql(statement)
            META.create(conn, checkfirst=True)
        for step in range(max(version, 3), SCHEMA_VERSION) if version else ():  # new: made as it is
            _MIGRATIONS[step](conn)
        conn.execute(META.delete().where(META.c.name == "schema_version"))
        conn.execute(insert(META).values(name="schema_version", value=str(SCHEMA_VERSION)))
        if sqlite:  # what older foobar_ops read
            conn.exec_driver_sql(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _version(conn: Connection, sqlite: bool) -> int:
    names = set(inspect(conn).get_table_names())
    if "foobar_ops_meta" in names:
        row = conn.execute(select(META.c.value).where(META.c.name == "schema_version")).first()
        version = int(row[0]) if row else 0
    elif sqlite and "runs" in names:
        version = max(1, int(conn.exec_driver_sql("PRAGMA user_version").scalar() or 0))
    else:
        version = 0
    if version > SCHEMA_VERSION:
        raise FoobarOpsError(
            f"it has schema version {version}, newer than this foobar_ops ({__version__}, schema "
            f"{SCHEMA_VERSION}): upgrade foobar_ops to use it"
        )
    return version


@contextmanager
def _migration_lock(engine: Engine, path: Path | None) -> Iterator[None]:
    """Hold the journal's migration lock: a lock file beside SQLite, a named lock on a server."""
    if path is not None:
        with flocked(path.with_name(path.name + ".migrate.lock")):
            yield
        return
    with engine.connect() as conn:
        name = engine.dialect.name
        if name in ("mysql", "mariadb"):
            conn.execute(text("SELECT GET_LOCK('foobar_ops_journal', 60)"))
        elif name == "postgresql":
            conn.execute(text("SELECT pg_advisory_lock(5150)"))
        try:
            yield
        finally:
            if name in ("mysql", "mariadb"):
                conn.execute(text("SELECT RELEASE_LOCK('foobar_ops_journal')"))
            elif name == "postgresql":
                conn.execute(text("SELECT pg_advisory_unlock(5150)"))
