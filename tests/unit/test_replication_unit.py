"""The database pair without hosts: GTID positions; the mysql states (exact grants with global
ones, versioned migrations, the primary, every branch of a replica's plan); the stack's database
topology and read weights; replication health judged from ReplicationInfo values; the inventory
file kept in step (comments kept, atomically); and the quoting filters of the templates, checked
by parsing their output the way systemd and MariaDB read it."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from foobar_ops import states as s
from foobar_ops.core import gtid
from foobar_ops.core.engine.host import HostApply
from foobar_ops.core.errors import ConnectionFailed, FoobarOpsError, InventoryError
from foobar_ops.core.facts import Account, Peer, ReplicationFact, ReplicationInfo, SQLFact, SQLRows
from foobar_ops.core.gtid import GTID
from foobar_ops.core.inventory import load_inventory as core_load_inventory
from foobar_ops.core.journal import Journal
from foobar_ops.core.result import Status
from foobar_ops.core.secrets import Secret
from foobar_ops.core.states.base import StateError
from foobar_ops.core.states.mysql import native_hash, parse_grants, sql_string
from foobar_ops.core.templating import mysql_option, render, systemd_env
from foobar_ops.stack import load_inventory, topology
from foobar_ops.stack.inventory_file import set_host_vars
from foobar_ops.stack.mariadb import Standing
from foobar_ops.stack.replication import NodeStatus, ReplicationStatus, _describe, _judge, status
from foobar_ops.stack.roles.base import template
from foobar_ops.stack.topology import TopologyError
from tests.unit.fakes import FakeRemote
from tests.unit.inventories import write_doc
from tests.unit.mariadb_said import node, slave

LAB = Path(__file__).resolve().parents[2] / "inventories" / "lab.yml"
APP_PW = "app-Pa55-q7"
REPL_PW = "it's a \\ repl pw $x"  # a quote and a backslash: SQL string escaping matters
CNF = "/etc/mysql/foobar-replication.cnf"
STAGED_SQL = 'mysql < "$FOOBAR_STAGE"/sql'
STAGED_CHANGE = 'mysql < "$FOOBAR_STAGE"/change'


@pytest.fixture(autouse=True)
def _secrets(monkeypatch):
    monkeypatch.setenv("TEST_APP_PW", APP_PW)
    monkeypatch.setenv("TEST_REPL_PW", REPL_PW)


def statements(upload: bytes) -> list[str]:
    """The statements of a staged SQL file (each ends with `;` and a newline)."""
    text = upload.decode()
    assert text.endswith(";\n"), text
    return text[: -len(";\n")].split(";\n")


def plan_text(plan: Any) -> str:
    """What of a plan is shown, run as a command line or journaled: changes, commands, comment, error."""
    shown = {"changes": plan.changes, "commands": plan.commands, "comment": plan.comment, "error": plan.error}
    return json.dumps(shown, default=str)


# --- gtid ------------------------------------------------------------------------------------


def test_gtid_parse_reads_domain_server_sequence():
    assert gtid.parse("0-11-42,1-11-3") == [GTID(0, 11, 42), GTID(1, 11, 3)]
    assert gtid.parse(" 0-11-42,\n0-12-7 ") == [GTID(0, 11, 42), GTID(0, 12, 7)]
    assert [str(g) for g in gtid.parse("0-11-42,1-11-3")] == ["0-11-42", "1-11-3"]


@pytest.mark.parametrize("position", ["", None, ",", "\n"])
def test_gtid_parse_of_no_position_is_empty(position):
    assert gtid.parse(position) == []


@pytest.mark.parametrize(
    "position, part",
    [
        ("0-11", "0-11"),
        ("0-11-x", "0-11-x"),
        ("0_11_42", "0_11_42"),
        ("0-11-42-7", "0-11-42-7"),
        ("-1-2-3", "-1-2-3"),
        ("0-11-42,junk", "junk"),
        ("0-11-42; DROP TABLE items", "0-11-42; DROP TABLE items"),
    ],
)
def test_gtid_parse_refuses_what_is_not_a_gtid_naming_it(position, part):
    with pytest.raises(FoobarOpsError, match="is not a GTID") as info:
        gtid.parse(position)
    assert repr(part) in str(info.value)


def test_gtid_missing_compares_each_domain_and_originating_server():
    assert gtid.missing("0-11-40", "0-11-42") == []  # behind: nothing missing
    assert gtid.missing("0-11-42", "0-11-42") == []
    assert gtid.missing("0-11-43", "0-11-42") == [GTID(0, 11, 43)]  # ahead on the same server
    # a transaction of another server (the replica's own: errant) is missing whatever the sequence
    assert gtid.missing("0-11-42,0-12-7", "0-11-50") == [GTID(0, 12, 7)]
    assert gtid.missing("1-11-5", "0-11-9") == [GTID(1, 11, 5)]  # another domain
    assert gtid.missing("0-11-5", "0-11-3,0-11-9") == []  # the highest of a server counts
    assert gtid.missing("0-12-7,1-13-2", "") == [GTID(0, 12, 7), GTID(1, 13, 2)]
    assert gtid.missing("", "0-11-3") == [] and gtid.missing(None, None) == []


def test_gtid_covers_when_every_gtid_of_the_target_was_seen():
    assert gtid.covers("0-11-42,0-12-7", "0-11-40,0-12-7")
    assert gtid.covers("0-11-42", "")
    assert gtid.covers(None, None)
    assert not gtid.covers("0-11-41", "0-11-42")
    assert not gtid.covers("0-11-42", "0-11-42,0-12-1")
    assert not gtid.covers("", "0-11-1")


def test_gtid_missing_and_covers_refuse_bad_input():
    with pytest.raises(FoobarOpsError, match="'x'"):
        gtid.missing("0-11-1", "x")
    with pytest.raises(FoobarOpsError, match="'0-11'"):
        gtid.covers("0-11", "0-11-1")


# --- mysql.user: exact grants, global ones included --------------------------------------------

WHO = "'foobar'@'10.77.0.12'"
SHOWN = "`foobar`@`10.77.0.12`"
APP_GRANTS = {"`foobar`.*": ["SELECT", "INSERT"], "*.*": ["SLAVE MONITOR"]}
USAGE = f"GRANT USAGE ON *.* TO {SHOWN} IDENTIFIED BY PASSWORD '{native_hash(APP_PW)}'"
MONITOR = f"GRANT SLAVE MONITOR ON *.* TO {SHOWN} IDENTIFIED BY PASSWORD '{native_hash(APP_PW)}'"
ON_DB = f"GRANT SELECT, INSERT ON `foobar`.* TO {SHOWN}"


def app_user(grants: dict | None = None) -> Any:
    return s.mysql.user("foobar", host="10.77.0.12", password=Secret("env:TEST_APP_PW"), grants=grants or APP_GRANTS)


def account(*lines: str, auth: str | None = None) -> Account:
    """An existing account as AccountFact reads it: its hash and its SHOW GRANTS lines."""
    return Account(auth or native_hash(APP_PW), lines)


def test_parse_grants_of_real_show_grants_lines():
    assert parse_grants([MONITOR, ON_DB]) == {"*.*": ["SLAVE MONITOR"], "`foobar`.*": ["INSERT", "SELECT"]}
    assert parse_grants([USAGE]) == {}  # the bare USAGE is no grant
    assert parse_grants([f"GRANT SELECT ON `foobar`.* TO {SHOWN} WITH GRANT OPTION"]) == {
        "`foobar`.*": ["GRANT OPTION", "SELECT"]
    }
    assert parse_grants([f"GRANT USAGE ON *.* TO {SHOWN} WITH GRANT OPTION"]) == {"*.*": ["GRANT OPTION"]}
    assert parse_grants([ON_DB, f"GRANT UPDATE ON `foobar`.* TO {SHOWN}"]) == {
        "`foobar`.*": ["INSERT", "SELECT", "UPDATE"]
    }


def test_user_with_global_and_database_grants_is_created_with_both():
    plan = app_user().plan(None)
    assert plan.commands == [STAGED_SQL]
    assert statements(plan.uploads["sql"]) == [
        f"CREATE USER {WHO} IDENTIFIED BY PASSWORD '{native_hash(APP_PW)}'",
        f"GRANT SLAVE MONITOR ON *.* TO {WHO}",
        f"GRANT INSERT, SELECT ON `foobar`.* TO {WHO}",
    ]
    assert plan.changes == {
        "old": None,
        "new": {"grants": {"*.*": ["SLAVE MONITOR"], "`foobar`.*": ["INSERT", "SELECT"]}},
    }
    assert APP_PW not in plan_text(plan) and APP_PW.encode() not in plan.uploads["sql"]


def test_user_holding_exactly_its_grants_is_left_alone():
    plan = app_user().plan(account(MONITOR, ON_DB))
    assert not plan.needed and plan.commands == [] and plan.uploads == {}


@pytest.mark.parametrize(
    "lines, held",
    [
        # an extra global privilege
        (
            (f"GRANT PROCESS, SLAVE MONITOR ON *.* TO {SHOWN} IDENTIFIED BY PASSWORD '{native_hash(APP_PW)}'", ON_DB),
            {"*.*": ["PROCESS", "SLAVE MONITOR"], "`foobar`.*": ["INSERT", "SELECT"]},
        ),
        # a grant on another database
        (
            (MONITOR, ON_DB, f"GRANT SELECT ON `other`.* TO {SHOWN}"),
            {"*.*": ["SLAVE MONITOR"], "`foobar`.*": ["INSERT", "SELECT"], "`other`.*": ["SELECT"]},
        ),
        # the global grant missing
        ((USAGE, ON_DB), {"`foobar`.*": ["INSERT", "SELECT"]}),
        # the right privileges, with GRANT OPTION
        (
            (MONITOR, ON_DB + " WITH GRANT OPTION"),
            {"*.*": ["SLAVE MONITOR"], "`foobar`.*": ["GRANT OPTION", "INSERT", "SELECT"]},
        ),
    ],
    ids=["extra-global", "other-database", "missing-global", "grant-option"],
)
def test_user_grants_other_than_the_wanted_ones_are_revoked(lines, held):
    plan = app_user().plan(account(*lines))
    assert statements(plan.uploads["sql"]) == [
        f"REVOKE ALL PRIVILEGES, GRANT OPTION FROM {WHO}",
        f"GRANT SLAVE MONITOR ON *.* TO {WHO}",
        f"GRANT INSERT, SELECT ON `foobar`.* TO {WHO}",
    ]
    assert plan.changes == {
        "old": {"grants": held},
        "new": {"grants": {"*.*": ["SLAVE MONITOR"], "`foobar`.*": ["INSERT", "SELECT"]}},
    }
    assert "grants" in plan.comment


def test_user_holding_a_role_is_not_in_the_wanted_state():
    """A role granted to the account gives it privileges too: it is one of the grants to revoke."""
    plan = app_user().plan(account(MONITOR, ON_DB, f"GRANT `reporting` TO {SHOWN}"))
    assert plan.needed
    assert any(st.startswith("REVOKE") and "`reporting`" in st for st in statements(plan.uploads["sql"]))


def test_user_declared_with_an_old_privilege_name_converges():
    """MariaDB 10.5+ shows REPLICATION CLIENT as BINLOG MONITOR: once granted, it is in the wanted state."""
    monitor = s.mysql.user(
        "monitor", host="10.77.0.12", password=Secret("env:TEST_APP_PW"), grants={"*.*": ["REPLICATION CLIENT"]}
    )
    shown = f"GRANT BINLOG MONITOR ON *.* TO `monitor`@`10.77.0.12` IDENTIFIED BY PASSWORD '{native_hash(APP_PW)}'"
    assert not monitor.plan(account(shown)).needed


def test_user_grants_are_checked_when_declared():
    with pytest.raises(StateError, match="is not \\*\\.\\* or `database`\\.\\*"):
        app_user({"foobar.*": ["SELECT"]})
    with pytest.raises(StateError, match="is not \\*\\.\\* or `database`\\.\\*"):
        app_user({"`foobar`.`items`": ["SELECT"]})
    with pytest.raises(StateError, match="unknown privilege.*SUPER"):
        app_user({"*.*": ["SUPER"]})
    with pytest.raises(StateError, match="give database= and privileges=, or grants="):
        s.mysql.user("foobar", host="10.77.0.12", password=Secret("env:TEST_APP_PW"))
    # privileges are normalised; an empty list is no grant at all
    user = app_user({"`foobar`.*": ["select", "Insert"], "*.*": []})
    assert user.grants == {"`foobar`.*": ["INSERT", "SELECT"]}


# --- mysql.schema: versioned migrations recorded in the database ------------------------------

M1 = ("0001_items", "CREATE TABLE items (id INT);\n")
M2 = ("0002_tags", "-- tags for items\nCREATE TABLE tags (id INT);\nCREATE INDEX tags_id ON tags (id);")
M3 = ("0003_notes", "ALTER TABLE items ADD note TEXT")
TABLE = "`foobar`.`schema_migrations`"


def sha(sql: str) -> str:
    return hashlib.sha256(sql.encode()).hexdigest()


def schema(*migrations: tuple[str, str]) -> Any:
    return s.mysql.schema("foobar", list(migrations or (M1, M2, M3)))


def test_schema_fact_reads_the_migrations_table_and_a_missing_one_as_none_applied():
    fact = schema().fact()
    assert isinstance(fact, SQLFact) and fact.missing_table_is_empty
    assert fact.sql == f"SELECT version, checksum FROM {TABLE} ORDER BY version"
    missing = "ERROR 1146 (42S02) at line 1: Table 'foobar.schema_migrations' doesn't exist\nsql-exit=1\n"
    assert fact.parse(missing) == SQLRows()


def recorded(version: str, sql: str) -> str:
    return f"INSERT INTO {TABLE} (version, checksum) VALUES ('{version}', '{sha(sql)}');\n"


def test_schema_with_nothing_applied_applies_every_migration_in_order_recording_each():
    plan = schema().plan(SQLRows())
    assert plan.needed and plan.commands == [STAGED_SQL]
    sql = plan.uploads["sql"].decode()
    create, rest = sql.split(";\n", 1)
    assert create.startswith(f"CREATE TABLE IF NOT EXISTS {TABLE} (version VARCHAR(64) PRIMARY KEY")
    assert rest == (
        "USE `foobar`;\n"
        "CREATE TABLE items (id INT);\n"
        + recorded(*M1)
        + "-- tags for items\nCREATE TABLE tags (id INT);\nCREATE INDEX tags_id ON tags (id);\n"
        + recorded(*M2)
        + "ALTER TABLE items ADD note TEXT;\n"
        + recorded(*M3)
    )
    assert plan.changes == {"old": [], "new": ["0001_items", "0002_tags", "0003_notes"]}
    assert plan.comment == "migrations 0001_items, 0002_tags, 0003_notes applied to foobar"


def test_schema_with_some_applied_applies_only_the_rest():
    plan = schema().plan(SQLRows((("0001_items", sha(M1[1])),)))
    sql = plan.uploads["sql"].decode()
    assert "CREATE TABLE items" not in sql and recorded(*M1) not in sql
    assert sql.endswith(
        "USE `foobar`;\n-- tags for items\nCREATE TABLE tags (id INT);\nCREATE INDEX tags_id ON tags (id);\n"
        + recorded(*M2)
        + "ALTER TABLE items ADD note TEXT;\n"
        + recorded(*M3)
    )
    assert plan.changes == {"old": ["0001_items"], "new": ["0001_items", "0002_tags", "0003_notes"]}


def test_schema_with_everything_applied_is_left_alone():
    plan = schema().plan(SQLRows(tuple((v, sha(sql)) for v, sql in (M1, M2, M3))))
    assert not plan.needed and plan.commands == [] and plan.uploads == {}
    assert plan.comment == "schema of foobar is at 0003_notes"


def test_schema_refuses_a_migration_changed_after_it_was_applied():
    applied = SQLRows((("0001_items", sha(M1[1])), ("0002_tags", sha("CREATE TABLE tags (id BIGINT);"))))
    plan = schema().plan(applied)
    assert plan.error and "migration 0002_tags of foobar changed after it was applied" in plan.error
    assert not plan.needed and plan.commands == []


@pytest.mark.parametrize("versions", [["0002", "0001"], ["0001", "0003", "0002"], ["0001", "0001"], ["2", "10"]])
def test_schema_refuses_versions_out_of_order_when_declared(versions):
    with pytest.raises(StateError, match="unique and in order"):
        s.mysql.schema("foobar", [(v, "SELECT 1") for v in versions])


# --- mysql.primary -----------------------------------------------------------------------------

WEB_01 = Peer("web-01", "10.77.0.11", 3306)
WEB_02 = Peer("web-02", "10.77.0.12", 3306)
WEB_03 = Peer("web-03", "10.77.0.13", 3306)


def said(read_only: bool = True, binlog: str = "0-11-42") -> dict[str, str]:
    """What a peer says of itself (PEER_SQL)."""
    return {
        "server_id": "11",
        "read_only": "1" if read_only else "0",
        "gtid_binlog_pos": binlog,
        "gtid_binlog_state": binlog,
    }


def primary_state() -> Any:
    return s.mysql.primary("web-01", client_cnf=CNF, peers=[WEB_02, WEB_03])


def test_primary_asks_itself_and_its_peers():
    st = primary_state()
    assert st.id == "mysql:primary"
    fact = st.fact()
    assert isinstance(fact, ReplicationFact) and fact.client_cnf == CNF and fact.peers == (WEB_02, WEB_03)


def test_primary_that_is_writable_is_left_alone():
    info = ReplicationInfo(node(read_only=False, binlog="0-11-42"), {}, {"web-02": said(), "web-03": said()})
    plan = primary_state().plan(info)
    assert not plan.needed and plan.error is None
    assert plan.comment == "web-01 is the writable primary"


def test_primary_that_is_read_only_is_made_writable():
    plan = primary_state().plan(ReplicationInfo(node(), {}, {"web-02": said(), "web-03": said()}))
    assert plan.needed
    assert [shlex.split(c) for c in plan.commands] == [["mysql", "-e", "SET GLOBAL read_only = 0"]]
    assert plan.changes == {"old": {"read_only": True}, "new": {"read_only": False}}


def test_primary_that_replicates_is_refused_naming_its_source():
    plan = primary_state().plan(ReplicationInfo(node(), slave("10.77.0.12"), {"web-02": said(read_only=False)}))
    assert plan.error and plan.error.startswith("web-01 replicates from web-02 but the inventory calls it the primary")
    assert "switchover" in plan.error and not plan.needed
    elsewhere = primary_state().plan(ReplicationInfo(node(), slave("10.9.9.9"), {}))
    assert elsewhere.error and "replicates from 10.9.9.9" in elsewhere.error


def test_primary_is_refused_while_a_peer_is_writable():
    info = ReplicationInfo(node(), {}, {"web-02": said(), "web-03": said(read_only=False)})
    plan = primary_state().plan(info)
    assert plan.error and plan.error.startswith("web-03 is writable too")
    assert plan.commands == [] and not plan.needed


@pytest.mark.parametrize(
    "version", ["8.0.36", "8.0.36-0ubuntu0.22.04.1", "10.5.23-MariaDB-0+deb11u1", "10.3.39-MariaDB"]
)
def test_primary_refuses_mysql_and_mariadb_before_10_6(version):
    plan = primary_state().plan(ReplicationInfo(node(read_only=False, version=version), {}, {}))
    assert plan.error and f"the server is {version}" in plan.error and "MariaDB 10.6 or newer" in plan.error


def test_mariadb_10_6_is_enough():
    info = ReplicationInfo(node(read_only=False, version="10.6.0-MariaDB"), {}, {})
    assert info.mariadb() == (10, 6, 0)
    assert primary_state().plan(info).error is None


# --- mysql.replica: every branch ----------------------------------------------------------------


def replica_state(seed: Any = None, connect_wait: int = 30) -> Any:
    return s.mysql.replica(
        "web-02",
        primary=WEB_01,
        user="repl",
        password=Secret("env:TEST_REPL_PW"),
        client_cnf=CNF,
        seed=seed,
        connect_wait=connect_wait,
    )


def change_master(*extra: str) -> str:
    return (
        "CHANGE MASTER TO MASTER_HOST='10.77.0.11', MASTER_PORT=3306, MASTER_USER='repl', "
        f"MASTER_PASSWORD={sql_string(REPL_PW)}, MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1"
        + "".join(f", {e}" for e in extra)
    )


def seen(local: dict | None = None, replica: dict | None = None, primary: Any = None) -> ReplicationInfo:
    """What the replica's fact reads: itself, its replica status, and what the primary says."""
    return ReplicationInfo(
        local or node(), replica or {}, {"web-01": said(read_only=False) if primary is None else primary}
    )


class Seed:
    """A seed that records whether it was called (plan() must never call it)."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> bytes:
        self.calls += 1
        return b"-- a dump\n"


def test_a_saved_plan_of_a_running_replica_holds_while_the_primary_takes_writes():
    """A primary that takes writes moves every GTID position and the lag; the same run may make
    the primary writable before the replica's turn: none of that is drift of the replica."""
    from foobar_ops.core.engine.host import digest

    state = replica_state()
    planned = seen(node(binlog="0-12-5"), slave(), primary=said(read_only=True, binlog="0-11-42"))
    later = seen(
        node(binlog="0-12-5"),
        slave(Gtid_IO_Pos="0-11-977", Seconds_Behind_Master="3"),
        primary=said(read_only=False, binlog="0-11-977"),
    )
    assert state.plan(planned).comment != state.plan(later).comment  # the comment names the position
    assert digest(state, planned) == digest(state, later)
    stopped = seen(node(binlog="0-12-5"), slave(sql="No"), primary=said(read_only=False))
    assert digest(state, stopped) != digest(state, planned)  # replication stopped: a change is due


def test_a_saved_plan_of_a_primary_drifts_when_a_peer_turns_writable_not_when_positions_move():
    from foobar_ops.core.engine.host import digest

    state = primary_state()
    planned = ReplicationInfo(node(read_only=False, binlog="0-11-42"), {}, {"web-02": said(), "web-03": said()})
    moved = ReplicationInfo(
        node(read_only=False, binlog="0-11-99"), {}, {"web-02": said(binlog="0-11-99"), "web-03": said()}
    )
    assert digest(state, planned) == digest(state, moved)
    split = ReplicationInfo(node(read_only=False), {}, {"web-02": said(read_only=False), "web-03": said()})
    assert digest(state, split) != digest(state, planned)


def test_replica_asks_itself_and_the_primary():
    st = replica_state()
    assert st.id == "mysql:replica"
    fact = st.fact()
    assert isinstance(fact, ReplicationFact) and fact.client_cnf == CNF and fact.peers == (WEB_01,)


@pytest.mark.parametrize("using", ["Slave_Pos", "Current_Pos"])
def test_replica_that_replicates_from_the_primary_is_left_alone(using):
    plan = replica_state().plan(seen(node(binlog="0-11-42"), slave(using=using)))
    assert not plan.needed and plan.error is None
    assert plan.comment == "replicating from web-01 (lag 0 s, at 0-11-42)"


def test_replica_stopped_by_an_sql_error_is_refused_with_the_error():
    error = "Could not execute Write_rows_v1 event on table foobar.items; Duplicate entry '7' for key 'PRIMARY'"
    plan = replica_state().plan(seen(node(), slave(sql="No", Last_SQL_Errno="1062", Last_SQL_Error=error)))
    assert plan.error == (f"replication from web-01 is broken: 1062: {error}; the data may differ: repair it by hand")
    assert plan.commands == []


@pytest.mark.parametrize("io, sql", [("No", "No"), ("Yes", "No"), ("Connecting", "Yes")])
def test_replica_with_stopped_threads_is_started(io, sql):
    plan = replica_state().plan(seen(node(binlog="0-11-42"), slave(io=io, sql=sql)))
    assert plan.needed and plan.uploads == {}
    assert shlex.split(plan.commands[0]) == ["mysql", "-e", "START SLAVE"]
    assert plan.commands[1] == replica_state()._wait_running()
    assert plan.changes == {"old": {"io": io, "sql": sql}, "new": {"io": "Yes", "sql": "Yes"}}
    assert plan.comment == "replication from web-01 restarted"


def test_replica_that_is_a_writable_primary_is_refused():
    plan = replica_state().plan(seen(node(read_only=False, binlog="0-12-9", schemas=1)))
    assert plan.error and plan.error.startswith(
        "web-02 is a writable primary (it replicates from nobody) but the inventory calls it a replica of web-01"
    )
    assert "switchover" in plan.error and plan.commands == []


def test_replica_refused_when_the_primary_cannot_be_asked():
    down = "web-01 (10.77.0.11): ERROR 2002 (HY000): Can't connect to server on '10.77.0.11' (115)"
    plan = replica_state().plan(seen(node(), {}, down))
    assert plan.error == f"cannot ask the primary web-01 (10.77.0.11) for its GTID position: {down}"


@pytest.mark.parametrize("replica", [{}, slave("10.77.0.13")], ids=["not-replicating", "other-source"])
def test_replica_holding_errant_transactions_is_refused_never_overwritten(replica):
    plan = replica_state().plan(seen(node(binlog="0-11-42,0-12-3,1-12-1"), replica, said(binlog="0-11-50")))
    assert plan.error and plan.error.startswith(
        "web-02 holds transactions the primary web-01 lacks (errant GTIDs 0-12-3, 1-12-1)"
    )
    assert plan.commands == [] and plan.uploads == {}


@pytest.mark.parametrize(
    "replica", [slave("10.77.0.13"), slave("10.77.0.11", using="No")], ids=["other-source", "no-gtid"]
)
def test_replica_of_another_source_or_without_gtid_is_re_pointed(replica):
    plan = replica_state().plan(seen(node(binlog="0-11-40"), replica))
    assert plan.commands == [STAGED_CHANGE, replica_state()._wait_running()]
    assert statements(plan.uploads["change"]) == ["STOP SLAVE", change_master(), "START SLAVE"]
    assert plan.changes == {"old": {"source": replica["Master_Host"]}, "new": {"source": "web-01", "gtid": "slave_pos"}}
    assert plan.comment == f"re-point replication from {replica['Master_Host']} to web-01"


def test_former_primary_rejoins_from_its_own_position():
    plan = replica_state().plan(seen(node(binlog="0-11-40"), {}, said(binlog="0-11-42")))
    assert plan.commands == [STAGED_CHANGE, replica_state()._wait_running()]
    assert statements(plan.uploads["change"]) == [change_master("MASTER_DEMOTE_TO_SLAVE=1"), "START SLAVE"]
    assert plan.changes == {"old": {"source": None}, "new": {"source": "web-01", "gtid": "slave_pos"}}
    assert plan.comment == "rejoin as a replica of web-01 from its own position 0-11-40"


def test_replica_with_databases_but_no_replication_history_is_refused():
    plan = replica_state(seed=Seed()).plan(seen(node(schemas=1)))
    assert plan.error and plan.error.startswith("web-02 holds databases but no replication history")
    assert plan.commands == [] and plan.uploads == {}


def test_new_replica_is_seeded_from_the_primary_without_calling_the_seed():
    seed = Seed()
    plan = replica_state(seed=seed).plan(seen(node(), {}, said(binlog="0-11-42")))
    assert seed.calls == 0  # the copy is made when the plan is applied, never to plan
    assert plan.uploads["seed"] is seed
    assert statements(plan.uploads["change"]) == [change_master(), "START SLAVE"]
    assert [shlex.split(c) for c in plan.commands[:1]] == [["mysql", "-e", "STOP SLAVE; RESET SLAVE ALL; RESET MASTER"]]
    assert plan.commands[1:] == [
        """{ echo 'SET SESSION sql_log_bin = 0;'; cat "$FOOBAR_STAGE"/seed; } | mysql""",
        STAGED_CHANGE,
        replica_state()._wait_running(),
    ]
    assert plan.changes == {"old": {"source": None}, "new": {"source": "web-01", "seeded": True}}
    assert plan.comment == "seeded from a consistent copy of web-01 (at 0-11-42) and replicating"


def test_new_replica_without_a_seed_is_refused():
    plan = replica_state(seed=None).plan(seen(node()))
    assert plan.error == "web-02 is a new replica and no seed (a copy of the primary) was given"


def vertical(row: dict[str, str]) -> str:
    """A row as mysql's vertical format (a query ending in \\G) prints it."""
    width = max(map(len, row))
    return "*" * 27 + " 1. row " + "*" * 27 + "\n" + "".join(f"{k:>{width}}: {v}\n" for k, v in row.items())


def test_the_engine_makes_the_seed_only_when_the_plan_is_applied():
    """What a new node's fact prints, planned (test mode: the seed is never made), then applied."""
    output = (
        f"@@local\n{vertical(node())}sql-exit=0\n@@replica\nsql-exit=0\n"
        f"@@peer web-01\n{vertical(said(read_only=False))}sql-exit=0\n"
    )
    host = SimpleNamespace(name="web-02", address="10.77.0.12", user="root")
    seed = Seed()
    st = replica_state(seed=seed)
    planned = HostApply(host, [st], FakeRemote({st: output}, host="web-02"), True, lambda r: None).execute()
    assert [r.status for r in planned] == [Status.PENDING] and seed.calls == 0
    remote = FakeRemote({st: output}, host="web-02")
    applied = HostApply(host, [st], remote, False, lambda r: None).execute()
    assert [r.status for r in applied] == [Status.CHANGED] and seed.calls == 1
    uploaded = {path.rsplit("/", 1)[1]: data for path, data in remote.uploads.items()}
    assert uploaded["seed"] == b"-- a dump\n" and b"CHANGE MASTER TO" in uploaded["change"]
    assert REPL_PW not in "".join(remote.scripts)  # the password travels in the staged file only


@pytest.mark.parametrize("version", ["8.0.36", "10.5.23-MariaDB-0+deb11u1"])
def test_replica_refuses_mysql_and_mariadb_before_10_6(version):
    plan = replica_state(seed=Seed()).plan(seen(node(version=version)))
    assert plan.error and "MariaDB 10.6 or newer" in plan.error and version in plan.error


@pytest.mark.parametrize(
    "local, replica, primary",
    [
        (node(binlog="0-11-40"), slave("10.77.0.13"), None),  # re-point
        (node(binlog="0-11-40"), {}, None),  # rejoin
        (node(), {}, None),  # seed
    ],
    ids=["re-point", "rejoin", "seed"],
)
def test_replication_password_is_only_in_the_staged_change(local, replica, primary):
    plan = replica_state(seed=Seed()).plan(seen(local, replica, primary))
    assert plan.needed
    assert REPL_PW not in plan_text(plan) and sql_string(REPL_PW) not in plan_text(plan)
    assert "MASTER_PASSWORD" not in plan_text(plan)
    assert f"MASTER_PASSWORD={sql_string(REPL_PW)}".encode() in plan.uploads["change"]


def test_sql_string_escapes_quotes_and_backslashes():
    assert sql_string("repl") == "'repl'"
    assert sql_string("it's") == "'it\\'s'"
    assert sql_string("a\\b") == "'a\\\\b'"
    assert sql_string("\\'") == "'\\\\\\''"  # a backslash then a quote: neither ends the literal
    assert sql_string("") == "''"


@pytest.mark.parametrize("value", ["it's", "a\\b", "\\'", "x\\", "' OR '1'='1", '$x `id` "q" %', "é ✓"])
def test_sql_string_reads_back_as_the_value(value):
    """Read the literal the way MariaDB reads a quoted string (backslash escapes, no NO_BACKSLASH_ESCAPES)."""
    literal = sql_string(value)
    assert literal[0] == literal[-1] == "'"
    out, i, body = [], 0, literal[1:-1]
    while i < len(body):
        ch = body[i]
        assert ch != "'" or (i and body[i - 1] == "\\"), f"an unescaped quote ends the literal early: {literal}"
        if ch == "\\":
            i += 1
            ch = body[i]
        out.append(ch)
        i += 1
    assert "".join(out) == value


def wait_stub(io: str, sql: str) -> str:
    status = f"Slave_IO_Running: {io}\\nSlave_SQL_Running: {sql}\\nMaster_Host: 10.77.0.11\\n"
    asked = shlex.quote("-e SHOW SLAVE STATUS" + chr(92) + "G")
    return f"""mysql() {{ [ "$*" = {asked} ] || return 9; printf '{status}'; }}"""


def test_replica_waits_until_both_threads_run():
    wait = replica_state(connect_wait=1)._wait_running()
    done = subprocess.run(
        ["sh", "-c", wait_stub("Yes", "Yes") + "\n" + wait], capture_output=True, text=True, timeout=10
    )
    assert done.returncode == 0, done.stderr


def test_replica_that_does_not_start_fails_with_its_status():
    wait = replica_state(connect_wait=1)._wait_running()
    assert "-ge 5 " in wait  # connect_wait seconds, polled every 0.2 s
    done = subprocess.run(
        ["sh", "-c", wait_stub("Connecting", "Yes") + "\n" + wait], capture_output=True, text=True, timeout=10
    )
    assert done.returncode == 1
    assert "replication did not start" in done.stderr and "Slave_IO_Running: Connecting" in done.stderr


# --- topology: database hosts and read weights --------------------------------------------------


def db_doc() -> dict:
    """A stack with three database hosts (the primary listed second) and an app host."""
    return {
        "secrets": {"mysql_app_password": "env:TEST_APP_PW", "mysql_repl_password": "env:TEST_REPL_PW"},
        "hosts": {
            "db-02": {"address": "10.77.0.22", "roles": ["mysql"], "vars": {"mysql_role": "replica"}},
            "db-01": {"address": "10.77.0.21", "roles": ["mysql"], "vars": {"mysql_role": "primary"}},
            "db-03": {"address": "10.77.0.23", "roles": ["mysql"], "vars": {"mysql_role": "replica"}},
            "web-01": {"address": "10.77.0.11", "roles": ["nginx", "app"]},
        },
    }


def inventory_of(tmp_path: Path, doc: dict, name: str = "db.yml", load: Any = load_inventory) -> Any:
    return load(write_doc(tmp_path, doc, name))


def names(hosts: list[Any]) -> list[str]:
    return [h.name for h in hosts]


def test_database_hosts_primary_and_replicas(tmp_path):
    inv = inventory_of(tmp_path, db_doc())
    assert names(topology.db_hosts(inv)) == ["db-02", "db-01", "db-03"]
    assert topology.db_primary(inv).name == "db-01"
    assert names(topology.db_replicas(inv)) == ["db-02", "db-03"]
    assert {h.name: topology.db_role(h, inv) for h in topology.db_hosts(inv)} == {
        "db-02": "replica",
        "db-01": "primary",
        "db-03": "replica",
    }


def test_read_pool_is_every_database_host_primary_first(tmp_path):
    inv = inventory_of(tmp_path, db_doc())
    assert names(topology.db_read_pool(inv)) == ["db-01", "db-02", "db-03"]
    assert [topology.read_weight(h) for h in topology.db_hosts(inv)] == [1, 1, 1]


def test_read_weights_and_the_read_pool_switch(tmp_path):
    doc = db_doc()
    doc["hosts"]["db-02"]["vars"]["mysql_read_weight"] = 3
    doc["hosts"]["db-03"]["vars"].update(mysql_read_weight=5, mysql_read_pool=False)
    doc["hosts"]["db-01"]["vars"]["mysql_read_pool"] = True
    inv = inventory_of(tmp_path, doc)
    assert {h.name: topology.read_weight(h) for h in topology.db_hosts(inv)} == {"db-02": 3, "db-01": 1, "db-03": 0}


def test_read_pool_leaves_out_the_hosts_of_weight_0(tmp_path):
    doc = db_doc()
    doc["hosts"]["db-03"]["vars"]["mysql_read_weight"] = 0
    assert names(topology.db_read_pool(inventory_of(tmp_path, doc))) == ["db-01", "db-02"]
    doc["hosts"]["db-01"]["vars"]["mysql_read_pool"] = False  # the primary only takes the writes
    assert names(topology.db_read_pool(inventory_of(tmp_path, doc, "b.yml"))) == ["db-02"]


@pytest.mark.parametrize("weight", [-1, "2", 1.5, True, None])
def test_a_bad_read_weight_is_a_topology_error_naming_host_and_key(tmp_path, weight):
    doc = db_doc()
    doc["hosts"]["db-03"]["vars"]["mysql_read_weight"] = weight
    inv = inventory_of(tmp_path, doc, load=core_load_inventory)  # the stack loader refuses it at load
    with pytest.raises(TopologyError, match="host 'db-03': key 'vars.mysql_read_weight'"):
        topology.read_weight(inv.host("db-03"))


@pytest.mark.parametrize("switch", ["no", 0])
def test_a_read_pool_switch_that_is_not_true_or_false_is_a_topology_error(tmp_path, switch):
    doc = db_doc()
    doc["hosts"]["db-03"]["vars"]["mysql_read_pool"] = switch
    inv = inventory_of(tmp_path, doc, load=core_load_inventory)  # the stack loader refuses it at load
    with pytest.raises(TopologyError, match="host 'db-03': key 'vars.mysql_read_pool'"):
        topology.read_weight(inv.host("db-03"))


def test_a_bad_database_role_is_a_topology_error_naming_file_host_and_key(tmp_path):
    doc = db_doc()
    doc["hosts"]["db-03"]["vars"]["mysql_role"] = "master"
    inv = inventory_of(tmp_path, doc, "bad-role.yml", load=core_load_inventory)  # refused at load too
    with pytest.raises(TopologyError) as info:
        topology.db_hosts(inv)
    assert str(info.value) == (
        f"{tmp_path / 'bad-role.yml'}: host 'db-03': key 'vars.mysql_role': must be primary or replica, not 'master'"
    )


def test_two_primaries_are_refused(tmp_path):
    doc = db_doc()
    doc["hosts"]["db-03"]["vars"]["mysql_role"] = "primary"
    inv = inventory_of(tmp_path, doc, "two.yml")
    for ask in (topology.db_primary, topology.db_replicas, topology.db_read_pool):
        with pytest.raises(TopologyError, match=r"two\.yml: the stack needs exactly one .*\(found: db-01, db-03\)"):
            ask(inv)


def test_database_settings_defaults(tmp_path):
    db = topology.db_settings(inventory_of(tmp_path, db_doc()))
    assert (db["name"], db["user"], db["replication_user"], db["max_lag_s"]) == ("foobar", "foobar", "repl", 5.0)
    assert db["password"].reveal() == APP_PW and db["replication_password"].reveal() == REPL_PW


def test_database_settings_from_the_stack(tmp_path):
    doc = db_doc()
    doc["stack"] = {"database": {"name": "shop", "user": "shop_app", "replication_user": "replicator", "max_lag_s": 2}}
    db = topology.db_settings(inventory_of(tmp_path, doc))
    assert (db["name"], db["user"], db["replication_user"], db["max_lag_s"]) == ("shop", "shop_app", "replicator", 2.0)
    assert db["password"].reveal() == APP_PW and db["replication_password"].reveal() == REPL_PW


def test_database_settings_take_the_passwords_by_reference(tmp_path, monkeypatch):
    """stack.database.password / replication_password hold references to other secrets (db_settings)."""
    monkeypatch.setenv("TEST_SHOP_PW", "shop-pw")
    monkeypatch.setenv("TEST_SHOP_REPL", "shop-repl")
    doc = db_doc()
    doc["secrets"] = {}
    doc["stack"] = {"database": {"password": "env:TEST_SHOP_PW", "replication_password": "env:TEST_SHOP_REPL"}}
    db = topology.db_settings(inventory_of(tmp_path, doc))
    assert db["password"].reveal() == "shop-pw" and db["replication_password"].reveal() == "shop-repl"


def test_replication_password_is_needed_only_with_a_replica(tmp_path):
    doc = db_doc()
    del doc["secrets"]["mysql_repl_password"]
    with pytest.raises(
        TopologyError,
        match=r"with a replica, the replication password must be a secret \(secrets.mysql_repl_password\)",
    ):
        topology.db_settings(inventory_of(tmp_path, doc))
    for name in ("db-02", "db-03"):
        doc["hosts"][name]["roles"] = ["nginx"]
    assert topology.db_settings(inventory_of(tmp_path, doc, "alone.yml"))["replication_password"] is None


@pytest.mark.parametrize("lag", ["soon", [1]])
def test_a_bad_lag_threshold_is_a_topology_error_naming_the_key(tmp_path, lag):
    doc = db_doc()
    doc["stack"] = {"database": {"max_lag_s": lag}}
    inv = inventory_of(tmp_path, doc, load=core_load_inventory)  # the stack loader refuses it at load
    with pytest.raises(TopologyError, match="max_lag_s"):
        topology.db_settings(inv)


# --- replication status: each node described, then judged -----------------------------------

BY_ADDRESS = {"10.77.0.11": "web-01", "10.77.0.12": "web-02", "10.77.0.13": "web-03"}


def judged(name: str, inventory_role: str, info: Any, max_lag: float = 5.0) -> tuple[NodeStatus, str | None]:
    seen = Standing(info, None, None) if isinstance(info, ReplicationInfo) else info
    described = _describe(name, inventory_role, seen, BY_ADDRESS)
    return described, _judge(described, "web-01", max_lag)


def replica_info(read_only: bool = True, **status: str) -> ReplicationInfo:
    return ReplicationInfo(node(read_only=read_only, binlog="0-11-42"), slave(**status))


def test_a_healthy_pair():
    primary, verdict = judged("web-01", "primary", ReplicationInfo(node(read_only=False, binlog="0-11-42"), {}))
    assert verdict is None
    assert primary == NodeStatus(
        "web-01", "primary", "primary", False, None, None, None, "0-11-42", None, None, "0-11-42"
    )
    replica, verdict = judged("web-02", "replica", replica_info())
    assert verdict is None
    assert replica == NodeStatus(
        "web-02", "replica", "replica", True, True, True, 0.0, "0-11-42", "web-01", None, "0-11-42"
    )
    pair = ReplicationStatus([primary, replica], 5.0)
    assert pair.ok
    assert pair.as_json()["nodes"][1] == {
        "host": "web-02",
        "role": "replica",
        "inventory_role": "replica",
        "read_only": True,
        "io_running": True,
        "sql_running": True,
        "lag_s": 0.0,
        "gtid": "0-11-42",
        "source": "web-01",
        "error": None,
        "epoch": None,  # its topology row: none in this database
        "epoch_primary": None,
        "role_change": None,  # no role change under way, nor one that died part-way
    }


@pytest.mark.parametrize(
    "io, sql, verdict",
    [
        ("No", "Yes", "replication threads stopped (io False, sql True)"),
        ("Yes", "No", "replication threads stopped (io True, sql False)"),
        ("Connecting", "Yes", "replication threads stopped (io False, sql True)"),
        ("No", "No", "replication threads stopped (io False, sql False)"),
    ],
)
def test_stopped_threads(io, sql, verdict):
    assert judged("web-02", "replica", replica_info(io=io, sql=sql))[1] == verdict


def test_lag_over_the_threshold():
    assert judged("web-02", "replica", replica_info(Seconds_Behind_Master="12"))[1] == "replication lag 12 s over 5 s"
    assert judged("web-02", "replica", replica_info(Seconds_Behind_Master="5"))[1] is None  # at it is fine
    assert judged("web-02", "replica", replica_info(Seconds_Behind_Master="7"), max_lag=10)[1] is None


@pytest.mark.parametrize("lag", ["NULL", ""])
def test_lag_unknown(lag):
    described, verdict = judged("web-02", "replica", replica_info(Seconds_Behind_Master=lag))
    assert described.lag_s is None and verdict == "replication lag unknown"


def test_a_second_writable_node():
    described, verdict = judged("web-02", "replica", ReplicationInfo(node(read_only=False, binlog="0-12-3"), {}))
    assert described.role == "primary" and described.inventory_role == "replica"
    assert verdict == "writable and not replicating: a second primary"
    assert judged("web-02", "replica", ReplicationInfo(node(), {}))[1] == "not replicating"
    assert judged("web-02", "replica", replica_info(read_only=False))[1] == "a replica that is writable"


def test_a_replica_of_the_wrong_source():
    described, verdict = judged("web-02", "replica", replica_info(host="10.77.0.13"))
    assert described.source == "web-03"
    assert verdict == "replicates from web-03, not from the primary web-01"
    assert judged("web-02", "replica", replica_info(host="10.9.9.9"))[1] == (
        "replicates from 10.9.9.9, not from the primary web-01"
    )


def test_the_inventory_primary_replicating():
    described, verdict = judged("web-01", "primary", ReplicationInfo(node(), slave("10.77.0.12")))
    assert described.role == "replica" and described.source == "web-02"
    assert verdict == "replicates from web-02 although the inventory calls it the primary"
    assert judged("web-01", "primary", ReplicationInfo(node(), {}))[1] == "read-only: no node takes writes"


def test_a_node_that_cannot_be_asked():
    described, _ = judged("web-02", "replica", "cannot be asked: web-02: Connection refused")
    assert described == NodeStatus("web-02", "replica", "replica", error="cannot be asked: web-02: Connection refused")


class FakeNode:
    """Stands for stack.mariadb.Node: info() and standing() return what the node says, or raise."""

    def __init__(self, name: str, info: ReplicationInfo | Exception) -> None:
        self.name, self._info, self.closed = name, info, 0

    def info(self) -> ReplicationInfo:
        if isinstance(self._info, Exception):
            raise self._info
        return self._info

    def standing(self, database: str) -> Standing:
        return Standing(self.info(), None, None)

    def close(self) -> None:
        self.closed += 1


def lab_pair(tmp_path: Path) -> Any:
    doc = yaml.safe_load(LAB.read_text())
    doc["secrets"] = {"mysql_app_password": "env:TEST_APP_PW", "mysql_repl_password": "env:TEST_REPL_PW"}
    return inventory_of(tmp_path, doc, "lab.yml")


def test_status_of_the_lab_pair(tmp_path):
    inv = lab_pair(tmp_path)
    nodes = {
        "web-01": FakeNode("web-01", ReplicationInfo(node(read_only=False, binlog="0-11-42"), {})),
        "web-02": FakeNode("web-02", replica_info()),
    }
    now = status(inv, nodes)
    assert now.ok and now.max_lag_s == 5.0
    assert [(n.host, n.role, n.source, n.error) for n in now.nodes] == [
        ("web-01", "primary", None, None),
        ("web-02", "replica", "web-01", None),
    ]
    assert [n.closed for n in nodes.values()] == [0, 0]  # nodes given are the caller's to close


def test_status_of_a_pair_with_a_node_down(tmp_path):
    inv = lab_pair(tmp_path)
    nodes = {
        "web-01": FakeNode("web-01", ReplicationInfo(node(read_only=False, binlog="0-11-42"), {})),
        "web-02": FakeNode("web-02", ConnectionFailed("web-02", "No route to host")),
    }
    now = status(inv, nodes)
    assert not now.ok
    assert now.node("web-01").error is None
    assert now.node("web-02").error == "cannot be asked: web-02: No route to host"


# --- the inventory file kept in step -----------------------------------------------------------


@pytest.fixture
def lab_file(tmp_path) -> Path:
    path = tmp_path / "lab.yml"
    path.write_bytes(LAB.read_bytes())
    return path


def test_set_host_vars_swaps_the_roles_keeping_everything_else(lab_file):
    before = lab_file.read_text()
    set_host_vars(lab_file, {"web-01": {"mysql_role": "replica"}, "web-02": {"mysql_role": "primary"}})
    expected = (
        before.replace("mysql_role: primary", "@@")
        .replace("mysql_role: replica", "mysql_role: primary")
        .replace("@@", "mysql_role: replica")
    )
    assert expected != before
    assert lab_file.read_text() == expected  # comments, order, flow lists and other keys as they were
    inv = load_inventory(lab_file)
    assert inv.host("web-02").vars == {"mysql_role": "primary", "mysql_read_weight": 1}
    assert inv.host("web-01").vars == {"mysql_role": "replica", "mysql_read_weight": 1}


def test_set_host_vars_adds_vars_to_a_host_without_them(lab_file):
    set_host_vars(lab_file, {"lb-01": {"mysql_read_weight": 2}})
    inv = load_inventory(lab_file)
    assert inv.host("lb-01").vars == {"keepalived_interface": "host0", "mysql_read_weight": 2}  # its group's too
    assert inv.host("web-01").vars == {"mysql_role": "primary", "mysql_read_weight": 1}
    assert "# The built-in lab" in lab_file.read_text()


def test_set_host_vars_keeps_the_file_mode(lab_file):
    os.chmod(lab_file, 0o640)
    set_host_vars(lab_file, {"web-01": {"mysql_read_weight": 3}})
    assert lab_file.stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize(
    "changes",
    [{"web-09": {"mysql_role": "primary"}}, {"web-01": {"mysql_role": "replica"}, "web-09": {"mysql_role": "primary"}}],
    ids=["unknown", "known-then-unknown"],
)
def test_set_host_vars_refuses_an_unknown_host_and_changes_nothing(lab_file, changes):
    before = lab_file.read_bytes()
    with pytest.raises(InventoryError, match="no host web-09"):
        set_host_vars(lab_file, changes)
    assert lab_file.read_bytes() == before
    assert sorted(p.name for p in lab_file.parent.iterdir()) == ["lab.yml"]


def test_set_host_vars_is_atomic_when_writing_fails(lab_file):
    before = lab_file.read_bytes()
    with pytest.raises(Exception, match="cannot represent"):  # a value YAML cannot hold: the dump fails
        set_host_vars(lab_file, {"web-01": {"mysql_role": object()}})
    assert lab_file.read_bytes() == before
    assert sorted(p.name for p in lab_file.parent.iterdir()) == ["lab.yml"]  # no temporary file left


# --- template filters: systemd_env and mysql_option ---------------------------------------------

ODD_VALUES = [
    "plain",
    'with "double" quotes',
    "it's",
    "back\\slash",
    "ends with a backslash \\",
    '\\"',
    "dollar $HOME and ${PATH} and $$",
    "two  spaces",
    "  leading and trailing  ",
    "tick `id` and $(id)",
    "hash # not a comment; semicolon",
    "tab\there",
    "équipe ✓",
    "",
]


def systemd_env_file(text: str) -> dict[str, str]:
    """Read an EnvironmentFile as systemd does (src/basic/env-file.c, parse_env_file_internal):
    KEY=VALUE lines and # or ; comments; a bare value loses its trailing spaces and a backslash
    escapes the next character; a 'single-quoted' value is taken as is; in a "double-quoted" value
    a backslash before one of " \\ ` $ is dropped, a backslash before a newline joins the lines,
    any other backslash is kept, and anything else, a newline included, is taken as is."""
    out: dict[str, str] = {}
    state, key, value = "pre_key", "", ""
    for c in text:
        if state == "pre_key":
            if c in "#;":
                state = "comment"
            elif not c.isspace():
                state, key, value = "key", c, ""
        elif state == "key":
            if c in "\n\r":
                state = "pre_key"
            elif c == "=":
                state = "pre_value"
            else:
                key += c
        elif state == "pre_value":
            if c in "\n\r":
                out[key.rstrip()] = value
                state = "pre_key"
            elif c == "'":
                state = "single"
            elif c == '"':
                state = "double"
            elif c == "\\":
                state = "value_escape"
            elif not c.isspace():
                state, value = "value", value + c
        elif state == "value":
            if c in "\n\r":
                out[key.rstrip()] = value.rstrip()
                state = "pre_key"
            elif c == "\\":
                state = "value_escape"
            else:
                value += c
        elif state == "value_escape":
            state = "value"
            if c not in "\n\r":
                value += c
        elif state == "single":
            if c == "'":
                state = "pre_value"
            else:
                value += c
        elif state == "double":
            if c == '"':
                state = "pre_value"
            elif c == "\\":
                state = "double_escape"
            else:
                value += c
        elif state == "double_escape":
            state = "double"
            if c in '"\\`$':
                value += c
            elif c != "\n":
                value += "\\" + c
        elif state == "comment" and c in "\n\r":
            state = "pre_key"
    if state not in ("pre_key", "key", "comment"):
        out[key.rstrip()] = value.rstrip() if state == "value" else value
    return out


def test_systemd_env_file_reader_reads_systemd_examples():
    """The reader above, on values whose systemd reading is known."""
    text = 'A=plain\n# c\nB="a \\"q\\" \\\\ \\$x \\`y\\` \\n"\nC=\'s $x \\\\\'\nD= bare  \n;E=no\nF="multi\nline"\n'
    assert systemd_env_file(text) == {
        "A": "plain",
        "B": 'a "q" \\ $x `y` \\n',
        "C": "s $x \\\\",
        "D": "bare",
        "F": "multi\nline",
    }


def test_systemd_env_quotes_with_escapes():
    assert systemd_env("a b") == '"a b"'
    assert systemd_env('a"b\\c$d') == '"a\\"b\\\\c\\$d"'
    assert systemd_env(5.0) == '"5.0"'


@pytest.mark.parametrize("value", ODD_VALUES)
def test_systemd_env_value_reads_back_as_systemd_reads_it(value):
    assert systemd_env_file(f"KEY={systemd_env(value)}\nNEXT=1\n") == {"KEY": value, "NEXT": "1"}


def test_systemd_env_value_with_a_newline_reads_back_as_it_was():
    assert systemd_env_file(f"KEY={systemd_env('line one' + chr(10) + 'line two')}\n") == {"KEY": "line one\nline two"}


def test_app_env_template_reads_back_as_systemd_reads_it():
    password = "p\"a\\s$s `w` 'd #x  "
    context = {
        "host": "web-02",
        "release": "1.0.0-abc",
        "db_nodes": ["web-01=10.77.0.11:3306:1", "web-02=10.77.0.12:3306:0"],
        "db_name": "foobar",
        "db_user": "foobar",
        "db_password": password,
        "max_lag_s": 5.0,
        "pool_size": 8,
    }
    assert systemd_env_file(render(template("app.env.j2"), context)) == {
        "FOOBAR_SERVED_BY": "web-02",
        "FOOBAR_RELEASE": "1.0.0-abc",
        "FOOBAR_DB_NODES": "web-01=10.77.0.11:3306:1,web-02=10.77.0.12:3306:0",
        "FOOBAR_DB_NAME": "foobar",
        "FOOBAR_DB_USER": "foobar",
        "FOOBAR_DB_PASSWORD": password,
        "FOOBAR_DB_MAX_LAG": "5.0",
        "FOOBAR_DB_POOL_SIZE": "8",
    }


_MARIADB_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "s": " ", '"': '"', "'": "'", "\\": "\\"}


def mariadb_option_file(text: str) -> dict[str, dict[str, str | None]]:
    """Read an option file as MariaDB does (mysys/my_default.c): one option per line, [group]
    lines, # and ; comment lines; a # outside quotes ends a line; spaces around the value go; a
    pair of matching quotes around it goes; then \\n \\t \\r \\b \\s \\" \\' \\\\ are unescaped and any
    other backslash is kept."""
    groups: dict[str, dict[str, str | None]] = {}
    group = ""
    for raw in text.split("\n"):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            group = line[1 : line.index("]")].strip()
            groups[group] = {}
            continue
        quote, escape = "", False
        for i, ch in enumerate(line):  # remove_end_comment
            if ch in "'\"" and not escape:
                quote = ch if not quote else ("" if quote == ch else quote)
            if not quote and ch == "#":
                line = line[:i]
                break
            escape = bool(quote) and ch == "\\" and not escape
        name, sep, value = line.partition("=")
        if not sep:
            groups[group][name.strip()] = None
            continue
        value = value.strip()
        if len(value) > 1 and value[0] in "'\"" and value[0] == value[-1]:
            value = value[1:-1]
        out, i = [], 0
        while i < len(value):
            if value[i] == "\\" and i != len(value) - 1:
                i += 1
                out.append(_MARIADB_ESCAPES.get(value[i], "\\" + value[i]))
            else:
                out.append(value[i])
            i += 1
        groups[group][name.strip()] = "".join(out)
    return groups


def test_mariadb_option_file_reader_reads_mariadb_examples():
    """The reader above, on values whose MariaDB reading is known."""
    text = '[client]\nuser = repl # who\npassword = "a \\"b\\" \\\\ \\x # c"\nhost=\'h\'\n# no = 1\nskip-ssl\n'
    assert mariadb_option_file(text) == {
        "client": {"user": "repl", "password": 'a "b" \\ \\x # c', "host": "h", "skip-ssl": None}
    }


def test_mysql_option_quotes_with_escapes():
    assert mysql_option("a b") == '"a b"'
    assert mysql_option('a"b\\c$d') == '"a\\"b\\\\c$d"'


@pytest.mark.parametrize("value", ODD_VALUES)
def test_mysql_option_value_reads_back_as_mariadb_reads_it(value):
    text = f"[client]\npassword = {mysql_option(value)}\nuser = repl\n"
    assert mariadb_option_file(text) == {"client": {"password": value, "user": "repl"}}


def test_mysql_option_value_with_a_newline_reads_back_as_it_was():
    text = f"[client]\npassword = {mysql_option('line one' + chr(10) + 'line two')}\nuser = repl\n"
    assert mariadb_option_file(text) == {"client": {"password": "line one\nline two", "user": "repl"}}


def test_client_option_file_template_reads_back_as_mariadb_reads_it():
    text = render(template("mysql-client.cnf.j2"), {"user": "repl", "password": Secret("env:TEST_REPL_PW")})
    assert mariadb_option_file(text) == {"client": {"user": "repl", "password": REPL_PW}}


# --- a role change holds the database hosts' run locks -------------------------------------------


@pytest.fixture
def role_change(tmp_path, monkeypatch):
    """ops.db_switchover/db_failover with the run locks of core.runlock faked (fakes.RunLocks) and
    the role change itself recorded instead of made: `seen` is (kind, locks held while it ran)."""
    from foobar_ops.core import runlock
    from foobar_ops.stack import rolechange
    from foobar_ops.stack.rolechange import RoleChange
    from tests.unit.fakes import RunLocks

    locks = RunLocks()
    monkeypatch.setattr(runlock, "locked", locks.locked)
    seen: list[tuple[str, list[str]]] = []

    def change(kind):
        def made(inventory, *args, test=False, emit=None, **kw):
            held = sorted(name for name, lock in locks.held.items() if not lock.released)
            seen.append((kind, held))
            done = RoleChange(kind, "db-01", "db-02", test)
            done.ok = True
            return done

        return made

    monkeypatch.setattr(rolechange, "switchover", change("switchover"))
    monkeypatch.setattr(rolechange, "failover", change("failover"))
    journal = Journal(tmp_path / "j.sqlite")
    return SimpleNamespace(inv=inventory_of(tmp_path, db_doc()), locks=locks, seen=seen, journal=journal)


@pytest.mark.parametrize("kind", ["switchover", "failover"])
def test_a_role_change_holds_every_database_hosts_run_lock_while_it_runs(role_change, kind):
    from foobar_ops import ops

    run = getattr(ops, f"db_{kind}")
    change = run(role_change.inv, journal=role_change.journal, command=f"foobar-ops db {kind}")
    assert change.ok and role_change.seen == [(kind, ["db-01", "db-02", "db-03"])]
    ((hosts, run_id, command, wait),) = role_change.locks.calls
    assert sorted(hosts) == ["db-01", "db-02", "db-03"] and (command, wait) == (f"foobar-ops db {kind}", 0.0)
    assert run_id == role_change.journal.runs()["run_id"].iloc[0]  # the journal's run holds them
    assert all(lock.released for lock in role_change.locks.held.values())  # let go at the end


def test_a_role_change_while_another_run_holds_a_database_host_is_refused_naming_it(role_change):
    from foobar_ops import ops
    from foobar_ops.core.runlock import Holder, RunLocked

    holder = Holder(run="20260101-090000-abc123", command="foobar-ops apply", user="alice", machine="ctl-2", pid=42)
    role_change.locks.refuse["db-02"] = RunLocked("db-02", holder, 0)
    with pytest.raises(RunLocked, match="db-02 is locked by run 20260101-090000-abc123 .*this run changed nothing"):
        ops.db_switchover(role_change.inv, journal=role_change.journal)
    assert role_change.seen == []  # nothing done
    (row,) = role_change.journal.runs().to_dict("records")
    assert row["status"] == "error" and "20260101-090000-abc123" in row["error"]


def test_a_role_change_goes_on_without_a_host_that_cannot_be_reached_but_not_one_that_refuses_sudo(role_change):
    from foobar_ops import ops
    from foobar_ops.core.errors import SudoError

    role_change.locks.refuse["db-01"] = ConnectionFailed("db-01", "No route to host")  # a failover's dead primary
    assert ops.db_failover(role_change.inv, journal=role_change.journal).ok
    assert role_change.seen == [("failover", ["db-02", "db-03"])]
    role_change.locks.refuse["db-01"] = SudoError("db-01", "sudo refused the password from env:X")
    with pytest.raises(SudoError):
        ops.db_switchover(role_change.inv, journal=role_change.journal)
    assert len(role_change.seen) == 1


def test_a_role_change_check_takes_no_lock_and_a_wait_is_passed_on(role_change, monkeypatch):
    from foobar_ops import ops

    assert ops.db_switchover(role_change.inv, test=True, journal=role_change.journal).ok
    assert role_change.locks.calls == [] and role_change.seen == [("switchover", [])]
    ops.db_switchover(role_change.inv, journal=role_change.journal, lock_wait=9)
    monkeypatch.setenv("FOOBAR_OPS_LOCK_WAIT", "4")  # not read: the wait is the parameter alone
    ops.db_failover(role_change.inv, journal=role_change.journal)
    assert [call[3] for call in role_change.locks.calls] == [9.0, 0.0]
    with pytest.raises(FoobarOpsError, match="lock_wait=-1 must be from 0 to 86400 seconds"):
        ops.db_failover(role_change.inv, journal=role_change.journal, lock_wait=-1)
    assert len(role_change.locks.calls) == 2  # refused before anything


def test_a_role_change_refused_on_two_hosts_names_the_other_run_first(role_change):
    from foobar_ops import ops
    from foobar_ops.core.errors import SudoError
    from foobar_ops.core.runlock import Holder, RunLocked

    role_change.locks.refuse["db-01"] = SudoError("db-01", "sudo refused the password from env:X")
    role_change.locks.refuse["db-02"] = RunLocked("db-02", Holder(run="20260101-090000-abc123"), 0)
    with pytest.raises(RunLocked, match="db-02 is locked by run 20260101-090000-abc123"):
        ops.db_switchover(role_change.inv, journal=role_change.journal)
    assert role_change.seen == []
