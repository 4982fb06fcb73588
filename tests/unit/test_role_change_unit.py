"""Role changes without hosts: everything that can fail is checked before the first change (the
replication password, MariaDB versions, the inventory edit); whatever ends a switchover early
leaves exactly one writable node; the next `db status` settles a role change that died part-way
and fences a stale primary by its topology epoch; mysql.primary fails closed; inventory edits
change exactly the hosts named; secret uploads are private from their creation."""

from __future__ import annotations

import json
import shlex
from contextlib import nullcontext
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from foobar_ops import states as s
from foobar_ops.core.errors import ConnectionFailed, InventoryError
from foobar_ops.core.facts import Peer, ReplicationInfo, SQLRows
from foobar_ops.core.ssh import STAGE_PREFIX, stage
from foobar_ops.core.states.mysql import MarkerFact, Settled, Topology
from foobar_ops.stack import load_inventory, replication, rolechange
from foobar_ops.stack.inventory_file import check_host_vars, set_host_vars
from foobar_ops.stack.mariadb import MARKER, Node, Standing
from tests.unit.mariadb_said import MARIADB, node, slave

LAB = Path(__file__).resolve().parents[2] / "inventories" / "lab.yml"
REPL_PW = "repl-Pa55-word-9"


@pytest.fixture(autouse=True)
def _secrets(monkeypatch):
    monkeypatch.setenv("TEST_APP_PW", "app-Pa55-q7")
    monkeypatch.setenv("TEST_REPL_PW", REPL_PW)


class DB:
    """Stands for stack.mariadb.Node on one host: its live state (read_only, replication source,
    marker, topology row), changed by what it is asked to run; every call is logged."""

    def __init__(self, name: str, *, writable: bool, source: str | None = None, version: str = MARIADB) -> None:
        self.name, self.read_only, self.source, self.version = name, not writable, source, version
        self.marker: dict | None = None
        self.epoch: tuple[int, str] | None = (1, "web-01")
        self.guard = False
        self.log: list[str] = []
        self.down = False  # every call raises ConnectionFailed
        self.on: dict[str, BaseException] = {}  # call name -> raised when it is made

    def _call(self, what: str) -> None:
        self.log.append(what)
        if self.down:
            raise ConnectionFailed(self.name, "connection lost")
        if what in self.on:
            raise self.on.pop(what)

    def info(self) -> ReplicationInfo:
        self._call("info")
        return ReplicationInfo(
            node(self.read_only, "0-11-42", schemas=1, version=self.version), slave(self.source) if self.source else {}
        )

    def standing(self, database: str) -> Standing:
        info = self.info()
        return Standing(info, self.marker, self.epoch)

    def query(self, sql: str, timeout: float | None = None) -> list[dict[str, str]]:
        self._call("query")
        if "MASTER_GTID_WAIT" in sql:
            self._call("catch-up")
            return [{"w": "0"}]
        return [{"pos": "0-11-42"}]

    def execute(self, sql: str, secret_sql: str | None = None, *, before: str = "") -> None:
        self._call("execute")
        self.log.append(sql + (" +secret" if secret_sql else ""))
        if before:
            self.marker = {"phase": "promoted"}
        if "RESET SLAVE ALL" in sql:
            self.source = None
        if "epoch" in sql:
            self.epoch = (int(sql.split("VALUES (1, ")[1].split(",")[0]), self.name)
        if "read_only = 0" in sql:
            self.read_only = False
        if "read_only = 1" in sql:
            self.read_only = True
        if secret_sql and "CHANGE MASTER" in secret_sql:  # demoted, or re-pointed
            self.source = secret_sql.split("MASTER_HOST='")[1].split("'")[0]

    def fence(self, marker: dict, guard_s: float) -> None:
        self._call("fence")
        self.marker, self.guard, self.read_only = marker, True, True

    def disarm(self, marker: dict) -> bool:
        self._call("disarm")
        self.guard = False
        self.marker = marker
        return self.read_only

    def restore(self, sql: str) -> bool:
        self._call("restore")
        if self.source:
            return False
        self.execute(sql)
        self.marker, self.guard = None, False
        return True

    def settle(self) -> None:
        self._call("settle")
        self.marker, self.guard = None, False

    def answers(self) -> bool:
        return not self.down

    def reachable(self) -> bool:
        return not self.down

    def close(self) -> None:
        pass


@pytest.fixture
def pair(tmp_path, monkeypatch):
    """The lab's pair as fakes (web-01 primary, web-02 its replica) and a copy of the lab inventory."""
    doc = yaml.safe_load(LAB.read_text())
    doc["secrets"] = {"mysql_app_password": "env:TEST_APP_PW", "mysql_repl_password": "env:TEST_REPL_PW"}
    path = tmp_path / "lab.yml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    dbs = {"web-01": DB("web-01", writable=True), "web-02": DB("web-02", writable=False, source="10.77.0.11")}
    monkeypatch.setattr(rolechange, "Node", lambda host, inventory: dbs[host.name])
    monkeypatch.setattr(rolechange, "_app_sees", lambda inventory, primary: ([], []))
    monkeypatch.setattr(rolechange.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(rolechange, "RECONNECT_S", 0.0)
    return SimpleNamespace(path=path, dbs=dbs, inv=lambda: load_inventory(path))


def changes(dbs: dict[str, DB]) -> list[str]:
    return [line for db in dbs.values() for line in db.log if line not in ("info", "query", "standing")]


def writers(dbs: dict[str, DB]) -> list[str]:
    return [db.name for db in dbs.values() if not db.read_only]


# --- preflight: everything that can fail is checked before the first change ---------------------


def test_a_switchover_whose_replication_password_cannot_be_read_changes_nothing(pair, monkeypatch):
    monkeypatch.delenv("TEST_REPL_PW")
    before = pair.path.read_text()
    change = rolechange.switchover(pair.inv())
    assert not change.ok and "the replication password cannot be read" in change.error
    assert "TEST_REPL_PW" in change.error and "nothing changed" in change.error
    assert changes(pair.dbs) == []  # before: the replica was promoted, then the demotion failed
    assert writers(pair.dbs) == ["web-01"] and pair.path.read_text() == before
    assert not [r for r in change.results if r.status.value == "changed"]


def test_a_switchover_to_demote_a_mariadb_without_master_demote_to_slave_changes_nothing(pair):
    pair.dbs["web-01"].version = "10.6.16-MariaDB-0+deb12u1-log"  # the role accepts it; DEMOTE needs 10.10
    change = rolechange.switchover(pair.inv())
    assert not change.ok and "web-01: runs 10.6.16" in change.error and "MASTER_DEMOTE_TO_SLAVE" in change.error
    assert changes(pair.dbs) == [] and writers(pair.dbs) == ["web-01"]


def test_a_switchover_checks_show_every_preflight_refusal_with_test(pair, monkeypatch):
    monkeypatch.delenv("TEST_REPL_PW")
    pair.dbs["web-01"].version = "10.9.8-MariaDB"
    change = rolechange.switchover(pair.inv(), test=True)
    failed = [r.comment for r in change.results if r.status.value == "failed"]
    assert len(failed) == 2 and "password" in failed[0] and "10.9.8" in failed[1]
    assert changes(pair.dbs) == []


def test_a_switchover_whose_inventory_cannot_be_updated_changes_nothing(pair, monkeypatch):
    monkeypatch.setattr("os.access", lambda path, mode: False)  # the folder is read-only
    before = pair.path.read_text()
    change = rolechange.switchover(pair.inv())
    assert not change.ok and "the inventory cannot be updated" in change.error and "is not writable" in change.error
    assert changes(pair.dbs) == [] and writers(pair.dbs) == ["web-01"] and pair.path.read_text() == before


THREE = """\
secrets:
  mysql_app_password: env:TEST_APP_PW
  mysql_repl_password: env:TEST_REPL_PW
hosts:
  web-01:
    address: 10.77.0.11
    roles: [mysql]
    vars: {mysql_role: primary}
  web-02:
    address: 10.77.0.12
    roles: [mysql]
    vars: &replica     # the replicas share their vars
      mysql_role: replica
  web-03:
    address: 10.77.0.13
    roles: [mysql]
    vars: *replica
"""


def test_a_switchover_to_a_replica_sharing_anchored_vars_makes_only_it_the_primary(pair):
    pair.path.write_text(THREE)
    pair.dbs["web-03"] = DB("web-03", writable=False, source="10.77.0.11")
    change = rolechange.switchover(pair.inv(), "web-02")
    assert change.ok, change.error
    roles = {name: h["vars"]["mysql_role"] for name, h in yaml.safe_load(pair.path.read_text())["hosts"].items()}
    assert roles == {"web-01": "replica", "web-02": "primary", "web-03": "replica"}  # before: web-03 too
    assert "# the replicas share their vars" in pair.path.read_text()


def test_a_switchover_refuses_while_a_dead_role_change_is_unsettled(pair):
    pair.dbs["web-02"].marker = {"run": "r1", "kind": "switchover", "old": "web-01", "new": "web-02", "phase": "fenced"}
    change = rolechange.switchover(pair.inv())
    assert not change.ok and "ended part-way" in change.error
    assert changes(pair.dbs) == []


# --- any way out before the promotion: the old primary is the one writer ------------------------


def test_a_switchover_runs_fence_catch_up_disarm_promote_inventory_demote_settle(pair):
    change = rolechange.switchover(pair.inv(), run="run-1")
    assert change.ok, change.error
    done = [r.name for r in change.results if r.status.value == "changed"]
    assert done == ["read-only", "catch-up", "promote", "inventory", "inventory", "demote"]
    assert writers(pair.dbs) == ["web-02"] and pair.dbs["web-02"].epoch == (2, "web-02")
    assert pair.dbs["web-01"].source and not pair.dbs["web-01"].guard
    assert pair.dbs["web-01"].marker is None and pair.dbs["web-02"].marker is None
    assert "mysql_role: primary" in pair.path.read_text().split("web-02:")[1].split("loadgen-01")[0]
    # the demotion carries the replication password as a staged file, never in a statement on a
    # command line, and no step's record holds it
    assert [line for line in pair.dbs["web-01"].log if "+secret" in line] == [" +secret"]
    assert not [line for db in pair.dbs.values() for line in db.log if REPL_PW in line]
    assert REPL_PW not in json.dumps(change.as_json())


@pytest.mark.parametrize(
    "breaks",
    [
        ("web-02", "catch-up", KeyboardInterrupt()),  # Ctrl-C (or SIGTERM) in the catch-up wait
        ("web-01", "query", ConnectionFailed("web-01", "connection reset")),  # lost between steps
        ("web-02", "info", RuntimeError("a bug")),  # any error at all
        ("web-01", "disarm", ConnectionFailed("web-01", "connection reset")),
    ],
)
def test_a_switchover_ended_before_the_promotion_leaves_the_old_primary_the_one_writer(pair, breaks):
    host, call, error = breaks
    db = pair.dbs[host]
    seen = {"n": 0}
    original = db._call

    def call_then_break(what: str) -> None:
        original(what)
        if what == call and pair.dbs["web-01"].read_only:  # once the primary is fenced
            seen["n"] += 1
            if seen["n"] == 1:
                raise error

    db._call = call_then_break
    before = pair.path.read_text()
    with nullcontext() if isinstance(error, ConnectionFailed) else pytest.raises(type(error)):
        change = rolechange.switchover(pair.inv())
        assert not change.ok
    assert writers(pair.dbs) == ["web-01"]  # before the fix: both read-only (no restore)
    assert pair.dbs["web-01"].marker is None and not pair.dbs["web-01"].guard
    assert pair.dbs["web-02"].source and pair.path.read_text() == before


def test_a_switchover_whose_old_primary_cannot_be_reached_to_restore_it_leaves_it_to_its_guard(pair):
    old = pair.dbs["web-01"]
    original = old._call

    def cut(what: str) -> None:
        original(what)
        if what == "fence":
            old.down = True  # the link goes right after the primary was fenced

    old._call = cut
    change = rolechange.switchover(pair.inv())
    assert not change.ok
    restore = [r for r in change.results if r.name == "restore"]
    assert restore and "its guard does so" in restore[0].comment
    assert old.guard and old.marker["phase"] == "fenced"  # the guard on its host is still armed
    assert writers(pair.dbs) == []  # ... and makes web-01 writable on its own (see the lab test)


# --- after the promotion: the new primary, named by the inventory ----------------------------------


def test_a_switchover_that_fails_after_the_promotion_still_names_the_new_primary(pair):
    pair.dbs["web-01"].on["execute"] = ConnectionFailed("web-01", "connection reset")  # the demotion
    change = rolechange.switchover(pair.inv())
    assert not change.ok and "demote" in [r.name for r in change.results if r.status.value == "failed"]
    assert writers(pair.dbs) == ["web-02"]
    assert "mysql_role: primary" in pair.path.read_text().split("web-02:")[1].split("loadgen-01")[0]
    assert pair.dbs["web-02"].marker is None  # settled: the next apply rejoins web-01


@pytest.mark.parametrize("kind", ["switchover", "failover"])
def test_a_role_change_interrupted_after_the_promotion_updates_the_inventory(pair, monkeypatch, kind):
    pair.dbs["web-01"].down = kind == "failover"  # a failover's primary is gone
    real = rolechange._update_inventory
    calls = {"n": 0}

    def interrupted(*args: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt()
        real(*args)

    monkeypatch.setattr(rolechange, "_update_inventory", interrupted)
    with pytest.raises(KeyboardInterrupt):
        getattr(rolechange, kind)(pair.inv())
    assert [name for name in writers(pair.dbs) if not pair.dbs[name].down] == ["web-02"] and calls["n"] == 2
    assert "mysql_role: primary" in pair.path.read_text().split("web-02:")[1].split("loadgen-01")[0]


# --- failover: the primary is gone -----------------------------------------------------------------


def test_a_failover_refuses_while_the_primary_answers_and_changes_nothing(pair):
    before = pair.path.read_text()
    change = rolechange.failover(pair.inv())
    assert not change.ok and "the primary still answers: use `foobar-ops db switchover`" in change.error
    assert changes(pair.dbs) == [] and writers(pair.dbs) == ["web-01"] and pair.path.read_text() == before


def test_a_failover_promotes_the_replica_under_a_new_epoch_and_the_inventory_names_it(pair):
    old, new = pair.dbs["web-01"], pair.dbs["web-02"]
    old.down = True  # no SSH, no database port
    change = rolechange.failover(pair.inv(), run="run-2")
    assert change.ok and change.new == "web-02", change.error
    assert [r.name for r in change.results if r.status.value == "changed"] == [
        "catch-up",
        "promote",
        "inventory",
        "inventory",
    ]
    assert not new.read_only and new.source is None and new.epoch == (2, "web-02") and new.marker is None
    assert "not reachable now" in next(r.comment for r in change.results if r.host == "web-01" and r.name == "verify")
    roles = {
        name: h["vars"]["mysql_role"]
        for name, h in yaml.safe_load(pair.path.read_text())["hosts"].items()
        if "vars" in h and "mysql_role" in h["vars"]
    }
    assert roles == {"web-01": "replica", "web-02": "primary"}


# --- the next run: settle what a dead role change left, fence a stale primary ---------------------


def test_settle_undoes_a_role_change_killed_before_the_promotion(pair):
    old = pair.dbs["web-01"]
    old.read_only, old.guard = True, True
    old.marker = {"run": "r1", "kind": "switchover", "old": "web-01", "new": "web-02", "phase": "fenced"}
    status = replication.status(pair.inv(), pair.dbs)
    assert rolechange.unsettled(status) and "ended part-way" in status.node("web-01").error
    results = rolechange.settle(pair.inv())
    assert [r.name for r in results if r.status.value == "changed"] == ["restore"]
    assert writers(pair.dbs) == ["web-01"] and old.marker is None and old.epoch[0] == 2


def test_settle_finishes_a_role_change_killed_after_the_promotion(pair):
    old, new = pair.dbs["web-01"], pair.dbs["web-02"]
    marker = {"run": "r1", "kind": "switchover", "old": "web-01", "new": "web-02"}
    old.read_only, old.marker = True, {**marker, "phase": "promoting"}
    new.read_only, new.source, new.marker, new.epoch = False, None, {**marker, "phase": "promoted"}, (2, "web-02")
    rolechange.settle(pair.inv())
    assert writers(pair.dbs) == ["web-02"] and old.marker is None and new.marker is None
    assert "mysql_role: primary" in pair.path.read_text().split("web-02:")[1].split("loadgen-01")[0]


def test_settle_fences_the_old_primary_that_a_newer_epoch_supersedes(pair):
    new = pair.dbs["web-02"]
    new.read_only, new.source, new.epoch = False, None, (2, "web-02")  # a failover made it the primary
    assert rolechange.unsettled(replication.status(pair.inv(), pair.dbs))
    results = rolechange.settle(pair.inv())
    fenced = [r for r in results if r.name == "fence"]
    assert [(r.host, r.status.value) for r in fenced] == [("web-01", "changed")]
    assert "topology epoch 1; web-02 is the primary at epoch 2" in fenced[0].comment
    assert writers(pair.dbs) == ["web-02"]


def test_settle_does_not_guess_between_two_primaries_without_epochs(pair):
    new = pair.dbs["web-02"]
    new.read_only, new.source = False, None
    pair.dbs["web-01"].epoch = new.epoch = None
    results = rolechange.settle(pair.inv())
    assert [r.status.value for r in results] == ["failed"] and "no topology epoch" in results[0].comment
    assert sorted(writers(pair.dbs)) == ["web-01", "web-02"]


# --- mysql.primary fails closed -------------------------------------------------------------------


def primary_state() -> Any:
    peers = [Peer("web-02", "10.77.0.12", 3306)]
    return s.mysql.primary("web-01", client_cnf="/etc/x.cnf", peers=peers, inventory_path="inv/lab.yml")


def test_primary_is_not_made_writable_while_a_peer_cannot_be_asked():
    info = ReplicationInfo(node(True, "0-11-42", 1), {}, {"web-02": "web-02 (10.77.0.12): ERROR 2002: Can't connect"})
    plan = primary_state().plan(info)
    assert not plan.needed and plan.commands == []  # before: made writable, counting only who answered
    assert plan.error.startswith("cannot ask web-02 whether it is writable")
    assert "fail closed" in plan.error and "`foobar-ops db unfence -i inv/lab.yml --peer-gone web-02`" in plan.error


def test_a_first_primary_holding_no_database_is_made_writable_before_its_peers_run_mariadb():
    # the first deploy of the pair: the primary is set up before its peers have MariaDB at all
    fresh = node(read_only=True, binlog="", schemas=0)
    info = ReplicationInfo(fresh, {}, {"web-02": "web-02 (10.77.0.12): ERROR 2002: Can't connect"})
    plan = primary_state().plan(info)
    assert plan.error is None and plan.needed
    holding = {**fresh, "user_schemas": "1"}  # the same node once it holds the app's database
    refused = primary_state().plan(ReplicationInfo(holding, {}, {"web-02": "web-02: ERROR 2002"}))
    assert refused.error is not None and "fail closed" in refused.error and not refused.needed


def test_a_writable_primary_whose_peer_cannot_be_asked_is_left_as_it_is():
    info = ReplicationInfo(node(False, "0-11-42", 1), {}, {"web-02": "web-02: no answer"})
    plan = primary_state().plan(info)
    assert plan.error is None and not plan.needed


def test_unfence_refuses_a_peer_that_answers_and_makes_the_primary_writable_when_it_is_gone(pair):
    old, peer = pair.dbs["web-01"], pair.dbs["web-02"]
    old.read_only = True
    refused = rolechange.unfence(pair.inv(), ["web-02"])
    assert not refused.ok and "it answers: it is not gone" in refused.error and writers(pair.dbs) == []
    peer.down = True
    done = rolechange.unfence(pair.inv(), ["web-02"])
    assert done.ok and writers(pair.dbs) == ["web-01"] and old.epoch == (2, "web-01")


@pytest.mark.parametrize("name", ["web-01", "web-09"])
def test_unfence_refuses_a_name_that_is_not_a_peer_in_one_line_changing_nothing(pair, name):
    pair.dbs["web-01"].read_only = True
    refused = rolechange.unfence(pair.inv(), [name])
    assert not refused.ok and refused.error == f"not a peer of web-01: {name}"
    assert changes(pair.dbs) == [] and writers(pair.dbs) == []


# --- the topology row and the role-change marker as states ----------------------------------------


def test_topology_row_is_made_then_left_alone_then_bumped_when_it_names_another_node():
    st = Topology("web-01", database="foobar")
    first = st.plan(SQLRows())
    assert first.needed and first.changes["new"] == {"epoch": 1, "primary": "web-01"}
    assert "INSERT INTO `foobar`.`foobar_topology`" in first.uploads["sql"].decode()
    assert not st.plan(SQLRows([("4", "web-01")])).needed
    bumped = st.plan(SQLRows([("4", "web-02")]))
    assert bumped.changes["new"] == {"epoch": 5, "primary": "web-01"}


def test_a_role_change_marker_refuses_apply_naming_db_status():
    marker = {"run": "r1", "kind": "switchover", "old": "web-01", "new": "web-02", "phase": "fenced"}
    fact = MarkerFact(MARKER)
    assert fact.parse("") is None and fact.parse(json.dumps(marker)) == marker
    assert fact.parse("{half a marke") == fact.parse("[]") == {"phase": "unreadable"}  # still a marker
    st = Settled("web-01", path=MARKER, inventory_path="inv/lab.yml")
    assert st.plan(None).error is None
    refused = st.plan(marker).error
    assert "a switchover (run r1) from web-01 to web-02 (phase fenced) ended part-way" in refused
    assert "`foobar-ops db status -i inv/lab.yml`" in refused


# --- inventory edits change exactly the hosts named -----------------------------------------------


ANCHORED = """\
# the database pair
hosts:
  web-01:
    address: 10.0.0.1
    vars: &db
      mysql_role: primary   # the writer
      mysql_read_weight: 1
  web-02:
    address: 10.0.0.2
    vars: *db
"""


def test_set_host_vars_on_hosts_sharing_anchored_vars_changes_only_the_host_named(tmp_path):
    path = tmp_path / "inv.yml"
    path.write_text(ANCHORED)
    set_host_vars(path, {"web-02": {"mysql_role": "replica"}})  # before: web-01 became a replica too
    doc = yaml.safe_load(path.read_text())
    assert doc["hosts"]["web-01"]["vars"] == {"mysql_role": "primary", "mysql_read_weight": 1}
    assert doc["hosts"]["web-02"]["vars"] == {"mysql_role": "replica", "mysql_read_weight": 1}
    assert "# the writer" in path.read_text()


def test_set_host_vars_swapping_anchored_roles_gives_each_host_its_own(tmp_path):
    path = tmp_path / "inv.yml"
    path.write_text(ANCHORED)
    check_host_vars(path, {"web-01": {"mysql_role": "replica"}, "web-02": {"mysql_role": "primary"}})
    assert path.read_text() == ANCHORED  # a check changes nothing
    set_host_vars(path, {"web-01": {"mysql_role": "replica"}, "web-02": {"mysql_role": "primary"}})
    doc = yaml.safe_load(path.read_text())
    assert doc["hosts"]["web-01"]["vars"]["mysql_role"] == "replica"
    assert doc["hosts"]["web-02"]["vars"]["mysql_role"] == "primary"


def test_set_host_vars_refuses_an_edit_it_cannot_keep_to_one_host_and_changes_nothing(tmp_path):
    path = tmp_path / "inv.yml"
    text = "hosts:\n  web-01: &h\n    address: 10.0.0.1\n    vars: {mysql_role: primary}\n  web-02: *h\n"
    path.write_text(text)
    with pytest.raises(InventoryError, match="the same YAML node as another host's"):
        set_host_vars(path, {"web-02": {"mysql_role": "replica"}})
    assert path.read_text() == text


def test_check_host_vars_refuses_a_folder_it_cannot_replace_the_file_in(tmp_path, monkeypatch):
    path = tmp_path / "inv.yml"
    path.write_text(ANCHORED)
    monkeypatch.setattr("os.access", lambda p, mode: False)
    with pytest.raises(InventoryError, match="is not writable"):
        check_host_vars(path, {"web-02": {"mysql_role": "replica"}})


# --- secret uploads: private from their creation, in a folder of their own --------------------------


class SFTP:
    def __init__(self, ignore_mode: bool = False) -> None:
        self.calls: list[tuple] = []
        self.modes: dict[str, int] = {}
        self.ignore_mode = ignore_mode

    def mkdir(self, path: str, mode: int) -> None:
        self.calls.append(("mkdir", path, mode))
        self.modes[path] = 0o755 if self.ignore_mode else mode

    def stat(self, path: str) -> Any:
        return SimpleNamespace(st_mode=0o040000 | self.modes[path])

    def rmdir(self, path: str) -> None:
        self.calls.append(("rmdir", path))

    def open(self, path: str, mode: str) -> Any:
        sftp = self

        class File:
            def __enter__(self):
                sftp.calls.append(("open", path, mode))
                return self

            def __exit__(self, *exc):
                return False

            def chmod(self, m: int) -> None:
                sftp.calls.append(("chmod", path, m))

            def write(self, data: bytes) -> None:
                sftp.calls.append(("write", path, data))

        return File()


def remote_with(sftp: SFTP) -> Any:
    return SimpleNamespace(
        open=lambda: SimpleNamespace(sftp=lambda: sftp), round_trips=0, host=SimpleNamespace(name="web-01")
    )


def test_stage_makes_a_private_folder_of_its_own_before_any_secret_is_written():
    sftp = SFTP()
    folder = stage(remote_with(sftp), {"sql": b"CHANGE MASTER TO MASTER_PASSWORD='x'"})
    assert folder.startswith(STAGE_PREFIX) and len(folder) > len(STAGE_PREFIX) + 8
    assert sftp.calls[0] == ("mkdir", folder, 0o700)  # the mode travels with the request
    assert sftp.calls[1] == ("open", f"{folder}/sql", "wbx")  # a new file, never one that exists
    assert sftp.calls[2] == ("chmod", f"{folder}/sql", 0o600)
    assert sftp.calls[3][0] == "write"  # the secret only after all that


def test_stage_refuses_a_folder_the_sftp_server_did_not_make_private():
    sftp = SFTP(ignore_mode=True)
    with pytest.raises(ConnectionFailed, match="did not create it private"):
        stage(remote_with(sftp), {"sql": b"secret"})
    assert [c[0] for c in sftp.calls] == ["mkdir", "rmdir"]  # nothing written


def test_a_statement_with_a_secret_is_staged_read_and_removed_by_one_command(monkeypatch):
    host = SimpleNamespace(name="web-01", user="root", address="10.77.0.11")
    node = Node.__new__(Node)
    node.host, node.inventory = host, None
    sftp = SFTP()
    ran: list[str] = []
    node.remote = SimpleNamespace(
        open=lambda: SimpleNamespace(sftp=lambda: sftp),
        round_trips=0,
        host=host,
        run=lambda line, sudo=False, timeout=None: ran.append(line) or SimpleNamespace(ok=True, stdout="", stderr=""),
    )
    node.execute("STOP SLAVE", f"CHANGE MASTER TO MASTER_PASSWORD='{REPL_PW}'")
    folder = sftp.calls[0][1]
    assert folder.startswith(STAGE_PREFIX) and not folder.startswith("/tmp/.foobar-sql")
    (line,) = ran
    script = shlex.split(line)[-1]
    assert REPL_PW not in line  # never on a command line
    assert f"mysql < {folder}/sql" in script and script.endswith(f"rm -rf {folder}; exit $rc")


# --- what a node says of its standing, in one round trip -------------------------------------------

PRIMARY_OUT = json.loads((Path(__file__).parent / "fixtures/facts/replication/primary.json").read_text())["output"]
ALONE = PRIMARY_OUT.split("@@peer")[0]  # the node itself and its replication, no peers asked


def node_saying(output: str) -> Node:
    node = Node.__new__(Node)
    node.host, node.inventory = SimpleNamespace(name="web-01", user="root", address="10.77.0.11"), None
    node.remote = SimpleNamespace(run=lambda line, sudo=False, timeout=None: SimpleNamespace(ok=True, stdout=output))
    return node


def test_a_standing_reads_the_marker_and_the_topology_row_with_the_markers_one_parser():
    marker = {"run": "r1", "kind": "switchover", "old": "web-01", "new": "web-02", "phase": "fenced"}
    said = f"{ALONE}@@@marker\n{json.dumps(marker)}\n\n@@@epoch\n3\tweb-01\nepoch-exit=0\n"
    found = node_saying(said).standing("foobar")
    assert found.info.local["gtid_current_pos"] == "0-11-42"
    assert found.marker == marker and found.epoch == (3, "web-01")
    torn = f"{ALONE}@@@marker\n{{half\n\n@@@epoch\nERROR 1146 (42S02): Table doesn't exist\nepoch-exit=1\n"
    found = node_saying(torn).standing("foobar")
    assert found.marker == MarkerFact(MARKER).parse("{half") == {"phase": "unreadable"} and found.epoch is None
    none = node_saying(f"{ALONE}@@@marker\n\n@@@epoch\nepoch-exit=0\n").standing("foobar")
    assert none.marker is None and none.epoch is None
