"""Changes of the database pair's roles, each step a result: a planned switchover, a failover
when the primary is gone, unfence (a primary whose peers are gone for good), and settling what a
role change that died part-way left. Whatever ends one, exactly one node takes writes: the old
primary is fenced under a role-change marker and a guard on its host, and any way out restores it
before the promotion or finishes the change (the inventory naming the new primary) after it."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..core import gtid
from ..core.errors import ConnectionFailed, FoobarOpsError, ReplicationError
from ..core.result import Result, Status
from ..core.states.mysql import MIN_MARIADB, MIN_MARIADB_DEMOTE, epoch_sql, marker_text, sql_string
from .inventory_file import check_host_vars, set_host_vars
from .mariadb import Node, Standing, mark
from .replication import ReplicationStatus, standings, status
from .topology import app_hosts, db_hosts, db_primary, db_settings, domain, ports

Emit = Callable[[Result], None]
CATCH_UP_TIMEOUT = 10.0  # seconds the new primary gets to apply what the old one wrote


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
            raise ReplicationError(f"{_where(host)}{comment}: {err}") from None
        self.record(host, step, Status.CHANGED, comment, changes or {"step": step}, started)
        return value

    def check(self, host: str, step: str, ok: bool, comment: str) -> None:
        """Record a check; raise ReplicationError when it did not pass."""
        self.record(host, step, Status.OK if ok else Status.FAILED, comment)
        if not ok:
            raise ReplicationError(f"{_where(host)}{comment}")


def _where(host: str) -> str:
    """The host a step's error names ('-': a step of the whole change, no host named)."""
    return "" if host == "-" else f"{host}: "


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
        set_host_vars(inventory.path, {name: {"mysql_role": role} for name, role in changes.items()})


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


# ---- role changes: fenced, guarded, finished or undone whatever way they end -------------------------


#: seconds the old primary's guard waits (beyond the catch-up wait) before it makes the old
#: primary writable again, when the run that fenced it never promoted (it died, with its machine)
GUARD_MARGIN = 20.0
#: seconds a run that must settle a role change keeps trying a host whose connection was lost
RECONNECT_S = 12.0


@dataclass
class RoleChange:
    """What a switchover or failover did.

    kind: switchover, failover or unfence.
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

    def __str__(self) -> str:
        """One line: the change, how it ended (verified, checks pass in test mode, or FAILED and why)."""
        from ..core.shape import one_line, plural

        outcome = "verified" if self.ok and not self.test else "checks pass" if self.ok else "FAILED"
        line = (
            f"{self.kind} {self.old} -> {self.new or '?'}{' (test)' if self.test else ''}: {outcome} "
            f"({plural(len(self.results), 'step')})"
        )
        return one_line(line + (f": {self.error}" if self.error else ""))

    def _repr_html_(self) -> str:
        import html

        from ..core.shape import BAD, GOOD, WARN, headline

        tones = {Status.FAILED: BAD, Status.NOT_RUN: BAD, Status.PENDING: WARN}
        rows = "".join(
            f"<tr style='color:{tones.get(r.status, GOOD)}'>"
            + "".join(
                f"<td style='text-align:left'>{html.escape(str(v))}</td>"
                for v in (r.host, r.status.value, r.name, r.comment)
            )
            + "</tr>"
            for r in self.results
        )
        header = "".join(f"<th style='text-align:left'>{h}</th>" for h in ("host", "status", "step", "comment"))
        return headline(str(self), self.ok) + f"<table><tr>{header}</tr>{rows}</table>"


def _carry_out(
    inventory: Any, change: RoleChange, emit: Emit, body: Callable[[_Steps, dict[str, Node]], None]
) -> RoleChange:
    """Run a role change's body with every database node open, each step recorded in the change
    and emitted; the change is ok when the body returns, its error the refusal or failure that
    ended it (anything else, e.g. an interrupt, is raised once the nodes are closed)."""

    def both(result: Result) -> None:
        change.results.append(result)
        emit(result)

    nodes = {h.name: Node(h, inventory) for h in db_hosts(inventory)}
    try:
        body(_Steps(both, change.test), nodes)
        change.ok = True
    except FoobarOpsError as err:
        change.error = str(err)
    finally:
        for node in nodes.values():
            node.close()
    return change


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


def _top_epoch(seen: dict[str, Standing | str]) -> int:
    return max((s.epoch[0] for s in seen.values() if isinstance(s, Standing) and s.epoch), default=0)


def _preflight(
    inventory: Any,
    steps: _Steps,
    seen: dict[str, Standing | str],
    edits: dict[str, str],
    demoted: str | None,
    password: bool,
) -> None:
    """Check everything that can fail before the first change: the replication password can be read,
    every node runs a MariaDB that can do what the change asks of it (MASTER_DEMOTE_TO_SLAVE for the
    node demoted), and the inventory file can take exactly this edit. Every problem is recorded;
    any problem raises ReplicationError (nothing changed)."""
    problems: list[tuple[str, str]] = []
    if password:
        secret = db_settings(inventory)["replication_password"]
        try:
            if secret is None:
                raise ReplicationError("the inventory declares no secret mysql_repl_password")
            secret.reveal()
        except FoobarOpsError as err:
            problems.append(("", f"the replication password cannot be read: {err}"))
    for name, found in seen.items():
        if not isinstance(found, Standing):
            continue
        version = found.info.mariadb()
        text = found.info.local.get("version", "?")
        if version is None or version[:2] < MIN_MARIADB:
            problems.append((name, f"runs {text}: foobar_ops needs MariaDB 10.6 or newer"))
        elif name == demoted and version[:2] < MIN_MARIADB_DEMOTE:
            problems.append(
                (name, f"runs {text}: making it a replica needs MASTER_DEMOTE_TO_SLAVE (MariaDB 10.10 or newer)")
            )
        if found.marker:
            problems.append((name, f"{marker_text(found.marker)} ended part-way: `foobar-ops db status` settles it"))
    try:
        check_host_vars(inventory.path, {name: {"mysql_role": role} for name, role in edits.items()})
    except FoobarOpsError as err:
        problems.append(("", f"the inventory cannot be updated: {err}"))
    for host, problem in problems:
        steps.record(host or "-", "preflight", Status.FAILED, problem)
    if problems:
        raise ReplicationError("; ".join(f"{h + ': ' if h else ''}{p}" for h, p in problems) + ": nothing changed")
    steps.record("-", "preflight", Status.OK, "secrets, versions and the inventory edit checked")


def _marker(kind: str, run: str, old: str, new: str, phase: str) -> dict[str, Any]:
    return {
        "run": run or "-",
        "kind": kind,
        "old": old,
        "new": new,
        "phase": phase,
        "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _patiently(action: Callable[[], Any]) -> Any:
    """Run an action, again after a lost connection (it reconnects), for up to RECONNECT_S."""
    deadline = time.monotonic() + RECONNECT_S
    while True:
        try:
            return action()
        except ConnectionFailed:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def _restore(inventory: Any, steps: _Steps, node: Node, epoch: int, why: str) -> None:
    """Make the old primary writable again (a new epoch naming it) and end its guard and marker."""
    sql = f"{epoch_sql(db_settings(inventory)['name'], epoch, node.name)}; SET GLOBAL read_only = 0"
    try:
        done = _patiently(lambda: node.restore(sql))
    except FoobarOpsError as err:
        steps.record(
            node.name,
            "restore",
            Status.FAILED,
            f"could not make it writable again ({err}): its guard does so within {GUARD_MARGIN:g} s of the "
            "catch-up wait; `foobar-ops db status` settles it",
        )
        return
    steps.record(
        node.name,
        "restore",
        Status.CHANGED if done else Status.FAILED,
        f"made writable again ({why})" if done else "not made writable: it replicates from another node",
    )


def _promoted(node: Node, database: str) -> bool | None:
    """True when the node took writes (writable, replicating from nobody); None when unknown."""
    try:
        seen = _patiently(lambda: node.standing(database))
    except FoobarOpsError:
        return None
    return seen.writer


def _settle_markers(steps: _Steps, nodes: dict[str, Node]) -> None:
    for node in nodes.values():
        try:
            node.settle()
        except FoobarOpsError as err:
            steps.record(node.name, "settle", Status.OK, f"its role-change marker stays ({err}): db status removes it")


def _finish(inventory: Any, steps: _Steps, new: Any, others: list[Any]) -> bool:
    """After the promotion: the inventory names the new primary; True when it does."""
    try:
        _update_inventory(inventory, steps, new, others)
        return True
    except FoobarOpsError as err:
        steps.record(
            new.name,
            "inventory",
            Status.FAILED,
            f"{new.name} is the primary but the inventory could not be updated ({err}): "
            f"set hosts.{new.name}.vars.mysql_role: primary (and the others replica) in {inventory.path}, "
            f"or run `foobar-ops db status -i {inventory.path}`",
        )
        return False


def _recover(
    inventory: Any,
    steps: _Steps,
    nodes: dict[str, Node],
    old: Any,
    new: Any,
    others: list[Any],
    phase: str,
    epoch: int,
    err: BaseException,
) -> None:
    """Leave exactly one writable node whatever ended the change: before the promotion the old
    primary, after it the new one, with the inventory naming it."""
    what = "interrupted" if isinstance(err, KeyboardInterrupt) else f"failed ({type(err).__name__})"
    steps.record(old.name, "recover", Status.FAILED, f"the {phase} role change {what}: settling it")
    database = db_settings(inventory)["name"]
    promoted: bool | None = phase in ("promoted", "inventory")
    if phase == "promoting":
        promoted = _promoted(nodes[new.name], database)
        if promoted is None:
            steps.record(
                new.name,
                "recover",
                Status.FAILED,
                f"cannot ask {new.name} whether it took writes: {old.name} stays read-only; "
                f"`foobar-ops db status -i {inventory.path}` finishes or undoes the change when it answers",
            )
            return
    if not promoted:
        _restore(inventory, steps, nodes[old.name], epoch + 1, "the role change did not reach the promotion")
        _settle_markers(steps, {n: nodes[n] for n in nodes if n != old.name})
        return
    if phase == "inventory" or _finish(inventory, steps, new, [old, *others]):
        _settle_markers(steps, nodes)


def switchover(
    inventory: Any,
    to: str | None = None,
    *,
    test: bool = False,
    emit: Emit = lambda r: None,
    timeout: float = CATCH_UP_TIMEOUT,
    run: str = "",
) -> RoleChange:
    """Swap the roles of the primary and a replica without losing a committed write: everything
    that can fail is checked first (secrets, versions, the inventory edit); the primary turns
    read-only under a guard that makes it writable again unless this run promotes, the replica
    applies everything it wrote (GTID wait), is checked for errant transactions and promoted
    (a new topology epoch naming it); the inventory names it; the old primary replicates from it;
    the app is seen writing to it. Whatever ends it early (an error, an interrupt, a lost
    connection) leaves exactly one writable node: the old primary before the promotion, the new
    one (named by the inventory) after it; a crash of this machine is settled by the guard, or by
    the next `db status`.

    inventory: the Inventory.
    to: the replica to promote (default: the only one).
    test: check and say what would happen; change nothing.
    emit: called with each step's result.
    timeout: seconds the replica gets to catch up.
    run: the run's id (kept in the role-change marker on the hosts).
    """
    old, new, others = _target(inventory, to)
    return _carry_out(
        inventory,
        RoleChange("switchover", old.name, new.name, test),
        emit,
        lambda steps, nodes: _switch(inventory, steps, nodes, old, new, others, timeout, run),
    )


def _switch(
    inventory: Any,
    steps: _Steps,
    nodes: dict[str, Node],
    old: Any,
    new: Any,
    others: list[Any],
    timeout: float,
    run: str,
) -> None:
    before = status(inventory, nodes)
    for seen in before.nodes:
        verdict = "healthy" if seen.error is None else seen.error
        steps.check(seen.host, "check", seen.error is None, f"{seen.role} {seen.host}: {verdict}")
    standing = standings(inventory, nodes)
    edits = {new.name: "primary", old.name: "replica", **{h.name: "replica" for h in others}}
    _preflight(inventory, steps, standing, edits, old.name, True)
    old_node, new_node = nodes[old.name], nodes[new.name]
    _check_errant(steps, new_node, old_node, "holds nothing the primary lacks")
    epoch = _top_epoch(standing) + 1
    database = db_settings(inventory)["name"]
    guard = timeout + GUARD_MARGIN
    phase = "fenced"
    try:
        steps.do(
            old.name,
            "read-only",
            f"turn the primary read-only (writes wait; its guard makes it writable again in {guard:g} s "
            "unless this run promotes)",
            lambda: old_node.fence(_marker("switchover", run, old.name, new.name, "fenced"), guard),
            {"old": {"read_only": False}, "new": {"read_only": True}},
        )
        position = "" if steps.test else old_node.query("SELECT @@gtid_binlog_pos AS pos")[0]["pos"]
        steps.do(
            new.name,
            "catch-up",
            f"apply everything {old.name} wrote ({position or 'its last GTID'})",
            lambda: _wait_gtid(new_node, position, timeout),
        )
        if not steps.test:
            _check_errant(steps, new_node, old_node, "still holds nothing the primary lacks")
            held = old_node.disarm(_marker("switchover", run, old.name, new.name, "promoting"))
            steps.check(
                old.name,
                "guard",
                held,
                "guard disarmed: still read-only"
                if held
                else f"its guard made it writable again before the promotion (over {guard:g} s): nothing promoted",
            )
        phase = "promoting"
        steps.do(
            new.name,
            "promote",
            f"stop replicating and take writes (topology epoch {epoch})",
            lambda: new_node.execute(
                f"STOP SLAVE; RESET SLAVE ALL; {epoch_sql(database, epoch, new.name)}; SET GLOBAL read_only = 0",
                before=mark(_marker("switchover", run, old.name, new.name, "promoted")),
            ),
            {"old": {"role": "replica"}, "new": {"role": "primary", "epoch": epoch}},
        )
        phase = "promoted"
        _update_inventory(inventory, steps, new, [old, *others])
        phase = "inventory"
        steps.do(
            old.name,
            "demote",
            f"replicate from {new.name}",
            lambda: old_node.execute("", f"{_change_master(inventory, new, 'MASTER_DEMOTE_TO_SLAVE=1')}; START SLAVE"),
            {"old": {"role": "primary"}, "new": {"role": "replica", "source": new.name}},
        )
        for other in others:
            _re_point(inventory, steps, nodes[other.name], new)
        if not steps.test:
            _settle_markers(steps, nodes)
    except BaseException as err:
        if not steps.test:
            _recover(inventory, steps, nodes, old, new, others, phase, epoch, err)
        raise
    _verify(inventory, steps, nodes, new, [old, *others])


def _check_errant(steps: _Steps, replica: Node, primary: Node, ok: str) -> None:
    """Refuse a replica that holds transactions the primary lacks (errant GTIDs).

    ok: what the step says when it holds none.
    """
    # the replica's position first, the primary's after it: under writes, the other order would take
    # a transaction the replica just received for one the primary lacks
    mine = replica.info().local.get("gtid_binlog_state")
    errant = gtid.missing(mine, primary.info().local.get("gtid_binlog_state"))
    lacks = f"holds transactions {primary.name} lacks: {', '.join(map(str, errant))}"
    steps.check(replica.name, "errant", not errant, lacks if errant else ok)


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
    inventory: Any,
    *,
    test: bool = False,
    emit: Emit = lambda r: None,
    timeout: float = CATCH_UP_TIMEOUT,
    run: str = "",
) -> RoleChange:
    """Promote the most advanced reachable replica when the primary is gone (no SSH, no database
    port), under a new topology epoch that names it: an old primary that comes back writable (a
    partition that heals) has a lower epoch, so the app never writes to it, and the next `db
    status` (or a role change) fences it. Every node starts read-only, so one that reboots comes
    back fenced; the next apply makes it a replica, or refuses it.

    inventory: the Inventory.
    test: check and say what would happen; change nothing.
    emit: called with each step's result.
    timeout: seconds the chosen replica gets to apply what it already received.
    run: the run's id (kept in the role-change marker on the hosts).
    """
    old = db_primary(inventory)
    replicas = [h for h in db_hosts(inventory) if h.name != old.name]
    change = RoleChange("failover", old.name, "", test)
    return _carry_out(
        inventory,
        change,
        emit,
        lambda steps, nodes: _fail_over(inventory, steps, nodes, change, old, replicas, timeout, run),
    )


def _fail_over(
    inventory: Any,
    steps: _Steps,
    nodes: dict[str, Node],
    change: RoleChange,
    old: Any,
    replicas: list[Any],
    timeout: float,
    run: str,
) -> None:
    gone = not nodes[old.name].answers() and not nodes[old.name].reachable()
    steps.check(
        old.name,
        "gone",
        gone,
        "the primary answers neither SSH nor its database port"
        if gone
        else "the primary still answers: use `foobar-ops db switchover` (a failover would split the data)",
    )
    seen = standings(inventory, {h.name: nodes[h.name] for h in replicas})
    candidates = []
    for h in replicas:
        found = seen[h.name]
        if not isinstance(found, Standing):
            steps.record(h.name, "candidate", Status.OK, f"not a candidate: {found}")
            continue
        received = found.info.replica.get("Gtid_IO_Pos") or found.info.local.get("gtid_current_pos") or ""
        candidates.append((h, received))
        steps.record(h.name, "candidate", Status.OK, f"reachable, has received up to {received or '-'}")
    if not candidates:
        raise ReplicationError("no replica can be reached: nothing to promote")
    # the most advanced: one whose received position covers every other's (by domain and server)
    ahead = [c for c in candidates if all(gtid.covers(c[1], other[1]) for other in candidates)]
    new, received = (ahead or candidates)[0]
    change.new = new.name
    others = [h for h, _ in candidates if h.name != new.name]
    edits = {new.name: "primary", **{h.name: "replica" for h in replicas if h.name != new.name}, old.name: "replica"}
    _preflight(inventory, steps, seen, edits, None, bool(others))
    new_node = nodes[new.name]
    epoch = _top_epoch(seen) + 1
    database = db_settings(inventory)["name"]
    steps.do(
        new.name,
        "catch-up",
        f"apply what it received from {old.name} ({received or '-'})",
        lambda: _wait_gtid(new_node, received, timeout) if received else None,
    )
    phase = "promoting"
    try:
        steps.do(
            new.name,
            "promote",
            f"stop replicating and take writes (topology epoch {epoch}: {old.name}, if it comes back "
            "writable, is never written to and is fenced)",
            lambda: new_node.execute(
                f"STOP SLAVE; RESET SLAVE ALL; {epoch_sql(database, epoch, new.name)}; SET GLOBAL read_only = 0",
                before=mark(_marker("failover", run, old.name, new.name, "promoted")),
            ),
            {"old": {"role": "replica"}, "new": {"role": "primary", "epoch": epoch}},
        )
        phase = "promoted"
        for other in others:
            _re_point(inventory, steps, nodes[other.name], new)
        _update_inventory(inventory, steps, new, [old, *[h for h in replicas if h.name != new.name]])
        phase = "inventory"
        if not steps.test:
            _settle_markers(steps, {h.name: nodes[h.name] for h in replicas})
    except BaseException as err:
        if not steps.test and phase != "promoting":
            _recover(inventory, steps, nodes, old, new, others, phase, epoch, err)
        raise
    _verify(inventory, steps, nodes, new, [old, *others])


# ---- the next run: a role change that died part-way, an old primary that came back writable ------


def unsettled(found: ReplicationStatus) -> bool:
    """True when `settle` has something to do: a role-change marker, or two writable primaries of
    which the topology epoch says which one is stale."""
    if any(n.marker for n in found.nodes):
        return True
    return len([n for n in found.nodes if n.read_only is False and n.source is None]) > 1


def settle(inventory: Any, *, emit: Emit = lambda r: None) -> list[Result]:
    """Finish or undo a role change that died part-way (its marker is on the hosts), and fence a
    writable primary that a newer topology epoch supersedes (an old primary back after a failover).
    Run under the database hosts' run locks (so no role change is under way). Return the steps.

    inventory: the Inventory (its file is updated when a change is finished).
    emit: called with each step's result.
    """
    steps = _Steps(emit, False)
    nodes = {h.name: Node(h, inventory) for h in db_hosts(inventory)}
    try:
        seen = standings(inventory, nodes)
        for marker in {
            json.dumps(s.marker, sort_keys=True): s.marker
            for s in seen.values()
            if isinstance(s, Standing) and s.marker
        }.values():
            _settle_one(inventory, steps, nodes, seen, marker)
        _fence_stale(steps, nodes, standings(inventory, nodes))
    finally:
        for node in nodes.values():
            node.close()
    return steps.results


def _settle_one(
    inventory: Any, steps: _Steps, nodes: dict[str, Node], seen: dict[str, Standing | str], marker: dict[str, Any]
) -> None:
    old, new = str(marker.get("old")), str(marker.get("new"))
    what = marker_text(marker)
    if old not in nodes or new not in nodes:
        steps.record("-", "settle", Status.FAILED, f"{what}: names hosts that are not database hosts here")
        return
    steps.record(new, "settle", Status.OK, f"{what} ended part-way (its run is over): settling it")
    phases = [s.marker.get("phase") for s in seen.values() if isinstance(s, Standing) and s.marker]
    database = db_settings(inventory)["name"]
    promoted = _promoted(nodes[new], database)
    if promoted is None and "promoted" not in phases and "promoting" not in phases:
        promoted = False  # it never reached the promotion: the old primary is the one to keep
    if promoted is None:
        steps.record(
            new,
            "settle",
            Status.FAILED,
            f"cannot ask {new} whether it took writes: nothing changed; run `foobar-ops db status` again "
            "when it answers",
        )
        return
    if not promoted:
        _restore(inventory, steps, nodes[old], _top_epoch(seen) + 1, f"{what} did not reach the promotion")
        _settle_markers(steps, {n: nodes[n] for n in nodes if n != old})
        return
    old_seen = seen.get(old)
    if isinstance(old_seen, Standing) and old_seen.writer:
        _fence(steps, nodes[old], f"read-only: {new} took writes")
    others = [h for h in db_hosts(inventory) if h.name != new]
    if _finish(inventory, steps, inventory.hosts[new], others):
        _settle_markers(steps, nodes)


def _fence(steps: _Steps, node: Node, comment: str) -> None:
    steps.do(
        node.name,
        "fence",
        comment,
        lambda: node.execute("SET GLOBAL read_only = 1"),
        {"old": {"read_only": False}, "new": {"read_only": True}},
    )


def _fence_stale(steps: _Steps, nodes: dict[str, Node], seen: dict[str, Standing | str]) -> None:
    """Two writable primaries: fence every one that is not the one a higher epoch names."""
    writers = {n: s for n, s in seen.items() if isinstance(s, Standing) and s.writer}
    if len(writers) < 2:
        return
    top = _top_epoch(seen)
    winner = next((n for n, s in writers.items() if s.epoch and s.epoch == (top, n)), None)
    if winner is None:
        steps.record(
            "-",
            "fence",
            Status.FAILED,
            f"{', '.join(writers)} are all writable and no topology epoch says which is the primary: "
            "fence the wrong one by hand (SET GLOBAL read_only = 1), then reconcile their data",
        )
        return
    for name, found in writers.items():
        if name == winner:
            continue
        mine = found.epoch[0] if found.epoch else "none"
        _fence(
            steps,
            nodes[name],
            f"read-only: a stale primary (topology epoch {mine}; {winner} is the primary at epoch {top})",
        )


def unfence(inventory: Any, gone: list[str], *, test: bool = False, emit: Emit = lambda r: None) -> RoleChange:
    """Make the inventory's primary writable although the peers named cannot be asked: the operator
    says they are gone for good (mysql.primary fails closed while a peer cannot be asked). Refused
    when a peer named answers, or another peer is writable.

    inventory: the Inventory.
    gone: the peers known to be gone.
    test: check and say what would happen; change nothing.
    emit: called with each step's result.
    """
    primary = db_primary(inventory).name
    return _carry_out(
        inventory,
        RoleChange("unfence", primary, primary, test),
        emit,
        lambda steps, nodes: _unfence(inventory, steps, nodes, primary, gone),
    )


def _unfence(inventory: Any, steps: _Steps, nodes: dict[str, Node], primary: str, gone: list[str]) -> None:
    unknown = [n for n in gone if n not in nodes or n == primary]
    steps.check(
        "-", "peers", not unknown, f"not a peer of {primary}: {', '.join(unknown)}" if unknown else "peers named"
    )
    for name in gone:
        silent = not nodes[name].answers() and not nodes[name].reachable()
        steps.check(
            name,
            "gone",
            silent,
            "answers neither SSH nor its database port" if silent else "it answers: it is not gone",
        )
    seen = standings(inventory, {n: node for n, node in nodes.items() if n not in gone})
    for name, found in seen.items():
        if not isinstance(found, Standing):
            steps.check(name, "peer", False, f"{found}: name it with --peer-gone only when it is gone for good")
        elif name == primary:
            replicating = bool(found.info.replica.get("Master_Host"))
            steps.check(
                name,
                "primary",
                not replicating,
                "it replicates: not a primary" if replicating else "replicates from nobody",
            )
        else:
            steps.check(
                name,
                "peer",
                bool(found.info.read_only),
                "read-only" if found.info.read_only else "writable: a primary already",
            )
    mine = seen[primary]
    assert isinstance(mine, Standing)
    if not mine.info.read_only:
        steps.record(primary, "unfence", Status.OK, "writable already")
        return
    epoch = _top_epoch(seen) + 1
    sql = f"{epoch_sql(db_settings(inventory)['name'], epoch, primary)}; SET GLOBAL read_only = 0"
    steps.do(
        primary,
        "unfence",
        f"take writes (topology epoch {epoch}) without asking {', '.join(gone)}, declared gone",
        lambda: nodes[primary].execute(sql),
        {"old": {"read_only": True}, "new": {"read_only": False, "epoch": epoch}},
    )
