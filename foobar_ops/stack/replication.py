"""The database pair at run time: replication health (strict), a planned switchover and a
failover when the primary is gone, each step a result; and the inventory kept in step with the
live roles (the inventory says which node is the primary)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ..core import gtid
from ..core.errors import ConnectionFailed, FoobarOpsError
from ..core.result import Result, Status
from ..core.states.mysql import sql_string
from .inventory_file import set_host_vars
from .mariadb import DBError, Node
from .topology import app_hosts, db_hosts, db_primary, db_settings, domain, ports

Emit = Callable[[Result], None]
CATCH_UP_TIMEOUT = 10.0  # seconds the new primary gets to apply what the old one wrote


class ReplicationError(FoobarOpsError):
    """A switchover or failover was refused or failed."""


@dataclass
class NodeStatus:
    """One database node as the replication status shows it.

    host: inventory name.
    role: primary (writable, replicating from nobody) or replica, as the node is now.
    inventory_role: what the inventory calls it.
    read_only, io_running, sql_running: as the node says.
    lag_s: seconds behind its primary (None: unknown or not a replica).
    gtid: its gtid_current_pos.
    source: the node it replicates from (its inventory name, else the address).
    error: what is wrong with it (None when it is healthy).
    """

    host: str
    role: str
    inventory_role: str
    read_only: bool | None = None
    io_running: bool | None = None
    sql_running: bool | None = None
    lag_s: float | None = None
    gtid: str | None = None
    source: str | None = None
    error: str | None = None
    binlog_state: str | None = field(default=None, repr=False)
    last_error: str | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("binlog_state")
        out.pop("last_error")
        return out


@dataclass
class ReplicationStatus:
    """The pair's health: ok when one primary (the inventory's) and every replica replicates from
    it with both threads running, no error and a known lag under the threshold.

    nodes: one NodeStatus per database host.
    max_lag_s: the lag threshold.
    """

    nodes: list[NodeStatus]
    max_lag_s: float

    @property
    def ok(self) -> bool:
        return all(n.error is None for n in self.nodes)

    def node(self, name: str) -> NodeStatus:
        return next(n for n in self.nodes if n.host == name)

    def as_json(self) -> dict[str, Any]:
        """`foobar-ops db status --json`."""
        return {"ok": self.ok, "max_lag_s": self.max_lag_s, "nodes": [n.as_dict() for n in self.nodes]}

    def frame(self) -> Any:
        """Return the nodes as a DataFrame."""
        import pandas as pd

        return pd.DataFrame([n.as_dict() for n in self.nodes])

    def _repr_html_(self) -> str:
        tone = "#1a7f37" if self.ok else "#cf222e"
        return (
            f"<p style='color:{tone}'><b>replication {'OK' if self.ok else 'NOT OK'}</b> "
            f"(lag threshold {self.max_lag_s:g} s)</p>" + self.frame().to_html(index=False)
        )


def _describe(name: str, inventory_role: str, info: Any, by_address: dict[str, str]) -> NodeStatus:
    if isinstance(info, str):
        return NodeStatus(name, inventory_role, inventory_role, error=info)
    rep = info.replica
    lag = rep.get("Seconds_Behind_Master")
    source = rep.get("Master_Host")
    status = NodeStatus(
        name,
        "replica" if source or info.read_only else "primary",
        inventory_role,
        info.read_only,
        (rep.get("Slave_IO_Running") == "Yes") if rep else None,
        (rep.get("Slave_SQL_Running") == "Yes") if rep else None,
        float(lag) if lag not in (None, "", "NULL") else None,
        info.local.get("gtid_current_pos"),
        by_address.get(source or "", source) if source else None,
        None,
        info.local.get("gtid_binlog_state"),
        rep.get("Last_SQL_Error") or rep.get("Last_IO_Error") or None,
    )
    return status


def _judge(status: NodeStatus, primary: str, max_lag: float) -> str | None:
    """Return what is wrong with a node (None when it is healthy)."""
    if status.inventory_role == "primary":
        if status.source:
            return f"replicates from {status.source} although the inventory calls it the primary"
        if status.read_only:
            return "read-only: no node takes writes"
        return None
    if status.source is None:
        return "writable and not replicating: a second primary" if not status.read_only else "not replicating"
    if status.source != primary:
        return f"replicates from {status.source}, not from the primary {primary}"
    if not status.io_running or not status.sql_running:
        return f"replication threads stopped (io {status.io_running}, sql {status.sql_running})" + (
            f": {status.last_error}" if status.last_error else ""
        )
    if status.lag_s is None:
        return "replication lag unknown"
    if status.lag_s > max_lag:
        return f"replication lag {status.lag_s:g} s over {max_lag:g} s"
    if not status.read_only:
        return "a replica that is writable"
    return None


def status(inventory: Any, nodes: dict[str, Node] | None = None) -> ReplicationStatus:
    """Return the replication health of every database host, strictly judged.

    inventory: the Inventory.
    nodes: Node objects to reuse (by name).
    """
    hosts = db_hosts(inventory)
    primary = db_primary(inventory).name
    by_address = {h.address: h.name for h in hosts}
    own = nodes is None
    nodes = nodes if nodes is not None else {h.name: Node(h, inventory) for h in hosts}
    out = []
    try:
        for h in hosts:
            try:
                info: Any = nodes[h.name].info()
            except (ConnectionFailed, DBError, FoobarOpsError) as err:
                info = f"cannot be asked: {err}"
            described = _describe(h.name, "primary" if h.name == primary else "replica", info, by_address)
            if described.error is None:
                described.error = _judge(described, primary, db_settings(inventory)["max_lag_s"])
                if described.error is None and not isinstance(info, str):
                    last = info.replica.get("Last_SQL_Error") or info.replica.get("Last_IO_Error")
                    described.error = f"replication error: {last}" if last else None
            out.append(described)
    finally:
        if own:
            for node in nodes.values():
                node.close()
    return ReplicationStatus(out, db_settings(inventory)["max_lag_s"])


# ---- steps as results -------------------------------------------------------------------------------


class _Steps:
    """Runs the steps of a role change and records each as a result."""

    def __init__(self, emit: Emit, test: bool) -> None:
        self.emit, self.test = emit, test
        self.results: list[Result] = []

    def record(
        self,
        host: str,
        step: str,
        status: Status,
        comment: str,
        changes: dict[str, Any] | None = None,
        started: float | None = None,
    ) -> Result:
        result = Result(
            host,
            f"mysql.role:{step}",
            step,
            "mysql.role",
            status,
            changes=changes or {},
            comment=comment,
            idempotent=False,
            duration_ms=round((time.perf_counter() - (started or time.perf_counter())) * 1000, 2),
        )
        self.results.append(result)
        self.emit(result)
        return result

    def do(
        self, host: str, step: str, comment: str, action: Callable[[], Any], changes: dict[str, Any] | None = None
    ) -> Any:
        """Run one step (or, in test mode, say it would run); raise ReplicationError when it fails."""
        if self.test:
            self.record(host, step, Status.PENDING, f"would {comment}", changes or {"step": step})
            return None
        started = time.perf_counter()
        try:
            value = action()
        except FoobarOpsError as err:
            self.record(host, step, Status.FAILED, f"{comment}: failed: {err}", changes, started)
            raise ReplicationError(f"{host}: {comment}: {err}") from None
        self.record(host, step, Status.CHANGED, comment, changes or {"step": step}, started)
        return value

    def check(self, host: str, step: str, ok: bool, comment: str) -> None:
        """Record a check; raise ReplicationError when it did not pass."""
        self.record(host, step, Status.OK if ok else Status.FAILED, comment)
        if not ok:
            raise ReplicationError(f"{host}: {comment}")


def _change_master(inventory: Any, source: Any, *extra: str) -> str:
    db = db_settings(inventory)
    if db["replication_password"] is None:
        raise ReplicationError("the inventory declares no secret mysql_repl_password")
    options = [
        f"MASTER_HOST={sql_string(source.address)}",
        f"MASTER_PORT={ports(inventory)['mysql']}",
        f"MASTER_USER={sql_string(db['replication_user'])}",
        f"MASTER_PASSWORD={sql_string(db['replication_password'].reveal())}",
        "MASTER_USE_GTID=slave_pos",
        "MASTER_CONNECT_RETRY=1",
        *extra,
    ]
    return "CHANGE MASTER TO " + ", ".join(options)


def _update_inventory(inventory: Any, steps: _Steps, primary: Any, others: list[Any]) -> None:
    """Make the inventory file say what is live: `primary` is the primary, `others` its replicas."""
    wanted = {primary.name: "primary", **{h.name: "replica" for h in others}}
    changes = {name: role for name, role in wanted.items() if inventory.hosts[name].vars.get("mysql_role") != role}

    def write() -> None:
        set_host_vars(inventory.path, {name: {"mysql_role": role} for name, role in changes.items()})

    for name, role in changes.items():
        old = inventory.hosts[name].vars.get("mysql_role")
        steps.record(
            name,
            "inventory",
            Status.PENDING if steps.test else Status.CHANGED,
            f"{'would set' if steps.test else 'set'} hosts.{name}.vars.mysql_role: {old} -> {role} in {inventory.path}",
            {"old": {"mysql_role": old}, "new": {"mysql_role": role}},
        )
    if changes and not steps.test:
        write()


def _app_sees(inventory: Any, primary: str, timeout: float = 15.0) -> tuple[list[str], list[str]]:
    """Wait until every app host that answers names `primary` in /health as the node that takes
    writes; return (the hosts that still do not, the hosts that do not answer at all)."""
    pending = {h.name: h.address for h in app_hosts(inventory)}
    silent: list[str] = []
    deadline = time.monotonic() + timeout
    while pending:
        for name, address in list(pending.items()):
            request = urllib.request.Request(
                f"http://{address}:{ports(inventory)['http']}/health", headers={"Host": domain(inventory)}
            )
            try:
                with urllib.request.urlopen(request, timeout=2) as answer:
                    checks = json.loads(answer.read()).get("checks", {})
            except urllib.error.HTTPError as err:  # it answers, but not healthy (yet)
                checks = json.loads(err.read() or b"{}").get("checks", {}) if err.code == 503 else {}
            except (OSError, ValueError):
                silent.append(name)  # powered off, or its web server is down
                pending.pop(name)
                continue
            if checks.get("db_write") == f"ok ({primary})":
                pending.pop(name)
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    return sorted(pending), sorted(silent)


# ---- switchover ---------------------------------------------------------------------------------


@dataclass
class RoleChange:
    """What a switchover or failover did.

    kind: switchover or failover.
    old, new: the old and the new primary.
    test: nothing was changed.
    ok: the new topology was verified (or, in test mode, every check passed).
    results: every step, in order.
    error: why it was refused or failed.
    """

    kind: str
    old: str
    new: str
    test: bool
    ok: bool = False
    results: list[Result] = field(default_factory=list)
    error: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "old_primary": self.old,
            "new_primary": self.new,
            "test": self.test,
            "ok": self.ok,
            "error": self.error,
            "results": [r.as_dict() for r in self.results],
        }


def _collect(change: RoleChange, emit: Emit) -> Emit:
    def both(result: Result) -> None:
        change.results.append(result)
        emit(result)

    return both


def _target(inventory: Any, to: str | None) -> tuple[Any, Any, list[Any]]:
    old = db_primary(inventory)
    replicas = [h for h in db_hosts(inventory) if h.name != old.name]
    if to is None:
        if len(replicas) != 1:
            raise ReplicationError(
                f"name the replica to promote with --to (replicas: {', '.join(h.name for h in replicas) or 'none'})"
            )
        return old, replicas[0], []
    match = [h for h in replicas if h.name == to]
    if not match:
        raise ReplicationError(
            f"{to} is not a replica in {inventory.path} (replicas: {', '.join(h.name for h in replicas) or 'none'})"
        )
    return old, match[0], [h for h in replicas if h.name != to]


def switchover(
    inventory: Any,
    to: str | None = None,
    *,
    test: bool = False,
    emit: Emit = lambda r: None,
    timeout: float = CATCH_UP_TIMEOUT,
) -> RoleChange:
    """Swap the roles of the primary and a replica without losing a committed write: the primary
    turns read-only, the replica applies everything it wrote (GTID wait), is checked for errant
    transactions and promoted, the old primary replicates from it; the inventory is updated and
    the app seen writing to the new primary. A failed check before the promotion makes the old
    primary writable again and changes nothing else.

    inventory: the Inventory.
    to: the replica to promote (default: the only one).
    test: check and say what would happen; change nothing.
    emit: called with each step's result.
    timeout: seconds the replica gets to catch up.
    """
    old, new, others = _target(inventory, to)
    change = RoleChange("switchover", old.name, new.name, test)
    steps = _Steps(_collect(change, emit), test)
    nodes = {h.name: Node(h, inventory) for h in db_hosts(inventory)}
    try:
        _switch(inventory, steps, nodes, old, new, others, timeout)
        change.ok = True
    except ReplicationError as err:
        change.error = str(err)
    finally:
        for node in nodes.values():
            node.close()
    return change


def _switch(
    inventory: Any, steps: _Steps, nodes: dict[str, Node], old: Any, new: Any, others: list[Any], timeout: float
) -> None:
    before = status(inventory, nodes)
    for seen in before.nodes:
        verdict = "healthy" if seen.error is None else seen.error
        steps.check(seen.host, "check", seen.error is None, f"{seen.role} {seen.host}: {verdict}")
    # the replica's position first, the primary's after it: under writes, the other order would take
    # a transaction the replica just received for one the primary lacks
    mine = nodes[new.name].info().local.get("gtid_binlog_state")
    errant = gtid.missing(mine, nodes[old.name].info().local.get("gtid_binlog_state"))
    steps.check(
        new.name,
        "errant",
        not errant,
        "holds nothing the primary lacks"
        if not errant
        else f"holds transactions {old.name} lacks: {', '.join(map(str, errant))}",
    )
    old_node, new_node = nodes[old.name], nodes[new.name]
    steps.do(
        old.name,
        "read-only",
        "turn the primary read-only (writes wait)",
        lambda: old_node.execute("SET GLOBAL read_only = 1"),
        {"old": {"read_only": False}, "new": {"read_only": True}},
    )
    try:
        position = "" if steps.test else old_node.query("SELECT @@gtid_binlog_pos AS pos")[0]["pos"]
        steps.do(
            new.name,
            "catch-up",
            f"apply everything {old.name} wrote ({position or 'its last GTID'})",
            lambda: _wait_gtid(new_node, position, timeout),
        )
        if not steps.test:
            late = gtid.missing(
                new_node.info().local.get("gtid_binlog_state"), old_node.info().local.get("gtid_binlog_state")
            )
            steps.check(
                new.name,
                "errant",
                not late,
                "still holds nothing the primary lacks"
                if not late
                else f"holds transactions {old.name} lacks: {', '.join(map(str, late))}",
            )
    except ReplicationError:
        if not steps.test:
            steps.do(
                old.name,
                "restore",
                "make the old primary writable again (nothing else changed)",
                lambda: old_node.execute("SET GLOBAL read_only = 0"),
            )
        raise
    steps.do(
        new.name,
        "promote",
        "stop replicating and take writes",
        lambda: new_node.execute("STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = 0"),
        {"old": {"role": "replica"}, "new": {"role": "primary"}},
    )
    steps.do(
        old.name,
        "demote",
        f"replicate from {new.name}",
        lambda: old_node.execute("", f"{_change_master(inventory, new, 'MASTER_DEMOTE_TO_SLAVE=1')}; START SLAVE"),
        {"old": {"role": "primary"}, "new": {"role": "replica", "source": new.name}},
    )
    for other in others:
        _re_point(inventory, steps, nodes[other.name], new)
    _update_inventory(inventory, steps, new, [old, *others])
    _verify(inventory, steps, nodes, new, [old, *others])


def _re_point(inventory: Any, steps: _Steps, node: Node, primary: Any) -> None:
    """Point another replica at the new primary."""
    sql = f"STOP SLAVE; {_change_master(inventory, primary)}; START SLAVE"
    steps.do(node.name, "re-point", f"replicate from {primary.name}", lambda: node.execute("", sql))


def _wait_gtid(node: Node, position: str, timeout: float) -> None:
    rows = node.query(f"SELECT MASTER_GTID_WAIT({sql_string(position)}, {timeout:g}) AS w", timeout=timeout + 15)
    if rows[0]["w"] != "0":
        raise ReplicationError(f"{node.name} did not reach {position} within {timeout:g} s")


def _verify(inventory: Any, steps: _Steps, nodes: dict[str, Node], primary: Any, replicas: list[Any]) -> None:
    """Check the new topology: the pair healthy from the new primary, the app writing to it."""
    if steps.test:
        steps.record(primary.name, "verify", Status.PENDING, "would verify the new topology and the app")
        return
    from ..core.inventory import load_inventory  # the file as updated

    updated = load_inventory(inventory.path)
    deadline = time.monotonic() + 20
    while True:
        now = status(updated, nodes)
        down = [
            n for n in now.nodes if n.error and n.host in {r.name for r in replicas} and "cannot be asked" in n.error
        ]
        judged = [n for n in now.nodes if n.error and n not in down]
        if not judged or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    for n in now.nodes:
        if n in down:
            steps.record(
                n.host,
                "verify",
                Status.OK,
                f"not reachable now ({n.error}): it rejoins as a replica "
                "when it is back and the next apply checks its GTID position",
            )
        else:
            steps.check(n.host, "verify", n.error is None, f"{n.role}: {'healthy' if n.error is None else n.error}")
    lagging, silent = _app_sees(inventory, primary.name)
    note = f" ({', '.join(silent)} not answering)" if silent else ""
    steps.check(
        primary.name,
        "app",
        not lagging,
        f"every app host that answers writes to it{note}"
        if not lagging
        else f"app hosts that do not see it as the primary: {', '.join(lagging)}",
    )


# ---- failover -----------------------------------------------------------------------------------


def failover(
    inventory: Any, *, test: bool = False, emit: Emit = lambda r: None, timeout: float = CATCH_UP_TIMEOUT
) -> RoleChange:
    """Promote the most advanced reachable replica when the primary is gone (no SSH, no database
    port). The old primary is fenced by design (every node starts read-only); when it comes back,
    the next apply checks its GTID position and makes it a replica, or refuses it.

    inventory: the Inventory.
    test: check and say what would happen; change nothing.
    emit: called with each step's result.
    timeout: seconds the chosen replica gets to apply what it already received.
    """
    old = db_primary(inventory)
    replicas = [h for h in db_hosts(inventory) if h.name != old.name]
    nodes = {h.name: Node(h, inventory) for h in db_hosts(inventory)}
    change = RoleChange("failover", old.name, "", test)
    steps = _Steps(_collect(change, emit), test)
    try:
        gone = not nodes[old.name].answers() and not nodes[old.name].reachable()
        steps.check(
            old.name,
            "gone",
            gone,
            "the primary answers neither SSH nor its database port"
            if gone
            else "the primary still answers: use `foobar-ops db switchover` (a failover would split the data)",
        )
        candidates = []
        for h in replicas:
            try:
                info = nodes[h.name].info()
            except (ConnectionFailed, DBError) as err:
                steps.record(h.name, "candidate", Status.OK, f"not a candidate: {err}")
                continue
            received = info.replica.get("Gtid_IO_Pos") or info.local.get("gtid_current_pos") or ""
            candidates.append((h, received))
            steps.record(h.name, "candidate", Status.OK, f"reachable, has received up to {received or '-'}")
        if not candidates:
            raise ReplicationError("no replica can be reached: nothing to promote")
        # the most advanced: one whose received position covers every other's (by domain and server)
        ahead = [c for c in candidates if all(gtid.covers(c[1], other[1]) for other in candidates)]
        new, received = (ahead or candidates)[0]
        change.new = new.name
        new_node = nodes[new.name]
        steps.do(
            new.name,
            "catch-up",
            f"apply what it received from {old.name} ({received or '-'})",
            lambda: _wait_gtid(new_node, received, timeout) if received else None,
        )
        steps.do(
            new.name,
            "promote",
            "stop replicating and take writes",
            lambda: new_node.execute("STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = 0"),
            {"old": {"role": "replica"}, "new": {"role": "primary"}},
        )
        others = [h for h, _ in candidates if h.name != new.name]
        for other in others:
            _re_point(inventory, steps, nodes[other.name], new)
        _update_inventory(inventory, steps, new, [old, *[h for h in replicas if h.name != new.name]])
        _verify(inventory, steps, nodes, new, [old, *others])
        change.ok = True
    except ReplicationError as err:
        change.error = str(err)
    finally:
        for node in nodes.values():
            node.close()
    return change


def probe(inventory: Any, timeout: float = 5.0) -> dict[str, bool]:
    """Write a probe row on the primary (as the admin, in a table of its own) and return, per
    replica, whether it arrived within timeout seconds.

    inventory: the Inventory.
    timeout: seconds each replica gets.
    """
    import uuid

    db = db_settings(inventory)["name"]
    mark = uuid.uuid4().hex
    table = f"`{db}`.`foobar_ops_probe`"
    primary = Node(db_primary(inventory), inventory)
    replicas = [Node(h, inventory) for h in db_hosts(inventory) if h.name != primary.name]
    try:
        primary.query(
            f"CREATE TABLE IF NOT EXISTS {table} (mark CHAR(32) PRIMARY KEY, at TIMESTAMP(6) NOT NULL "
            f"DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB; INSERT INTO {table} (mark) VALUES ('{mark}'); "
            f"DELETE FROM {table} WHERE at < NOW() - INTERVAL 1 DAY; SELECT 1 AS ok"
        )
        seen = {}
        for node in replicas:
            deadline = time.monotonic() + timeout
            while True:
                found = node.query(f"SELECT COUNT(*) AS n FROM {table} WHERE mark = '{mark}'")[0]["n"] == "1"
                if found or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            seen[node.name] = found
        return seen
    finally:
        for node in [primary, *replicas]:
            node.close()
