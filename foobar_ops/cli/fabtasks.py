"""foobar_ops's operations as Fabric tasks, for SREs who live in `fab`: the project's fabfile.py is
`from foobar_ops.cli.fabtasks import ns`. Each task calls one operation (foobar_ops.ops), as the
command line does, takes the inventory as -i/--inventory (default: the lab's), is journaled as
`fab TASK ARGS`, prints what the command line prints, and exits non-zero when the operation fails
(2 with one line naming a bad input, as `foobar-ops` does).

    fab --list
    fab deploy [-i INV] [-r ROLES] [--hosts PATTERN]     fab plan [-i INV] [-s FILE]
    fab lb.drain web-01                                   fab lb.ready web-01
    fab db.switchover web-02                              fab runbook lb_maintenance -p server=web-01
"""

from __future__ import annotations

import functools
import shlex
import sys
from collections.abc import Callable
from typing import Any

from invoke.collection import Collection
from invoke.exceptions import Exit
from invoke.tasks import task

from .. import ops
from ..core.errors import FoobarOpsError

#: The inventory a task uses unless given -i (the built-in lab's).
INVENTORY = "inventories/lab.yml"
_INV = "the inventory file (default inventories/lab.yml)"


def _command() -> str:
    """What the journal records as having started the run: the fab command line."""
    return "fab " + shlex.join(sys.argv[1:])


def _guarded(body: Callable[..., Any]) -> Callable[..., Any]:
    """Run a task's body: a bad input or a refusal is one line on stderr and exit 2, as with
    foobar-ops; Ctrl-C exits 130."""

    @functools.wraps(body)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return body(*args, **kwargs)
        except FoobarOpsError as err:
            raise Exit(f"fab: error: {err}", code=2) from None
        except KeyboardInterrupt:
            raise Exit("fab: interrupted", code=130) from None

    return run


def _report(report: Any) -> None:
    print(report.summary(color=sys.stdout.isatty()))
    if not report.ok:
        raise Exit(code=1)


def _number(flag: str, text: Any, kind: type) -> Any:
    """A task's number option read from its text (a FoobarOpsError naming the option, not a traceback)."""
    try:
        return kind(text)
    except (TypeError, ValueError):
        raise FoobarOpsError(f"--{flag} {text!r}: give a {'whole ' if kind is int else ''}number") from None


def _roles(roles: str) -> list[str]:
    return [r for r in roles.split(",") if r]


@task(help={"inventory": _INV, "roles": "only these roles, comma-separated", "hosts": "host pattern"})
@_guarded
def deploy(c: Any, inventory: str = INVENTORY, roles: str = "", hosts: str | None = None) -> None:
    """Apply the inventory's roles to its hosts (foobar-ops apply)."""
    _report(ops.deploy(inventory, _roles(roles), hosts=hosts, command=_command()))


@task(
    help={
        "inventory": _INV,
        "roles": "only these roles, comma-separated",
        "hosts": "host pattern",
        "save": "save the plan to this file, to apply exactly it later (foobar-ops apply --plan FILE)",
    }
)
@_guarded
def plan(
    c: Any, inventory: str = INVENTORY, roles: str = "", hosts: str | None = None, save: str | None = None
) -> None:
    """Show what a deploy would change, with diffs; change nothing (foobar-ops apply --test)."""
    _report(ops.plan(inventory, _roles(roles), hosts=hosts, save_plan=save, command=_command()))


@task(help={"inventory": _INV, "hosts": "host pattern (default role:app)"})
@_guarded
def rollback(c: Any, inventory: str = INVENTORY, hosts: str = "role:app") -> None:
    """Switch the app hosts back to their previous release, one at a time (foobar-ops rollback)."""
    _report(ops.rollback(inventory, hosts=hosts, command=_command()))


@task(help={"inventory": _INV, "requests": "how many requests to send (default 20)"})
@_guarded
def verify(c: Any, inventory: str = INVENTORY, requests: str = "20") -> None:
    """Send requests through the load balancer: who answered, and what is not UP (foobar-ops verify)."""
    check = ops.verify(inventory, _number("requests", requests, int))
    print(str(check))
    if not check.ok:
        raise Exit(code=1)


@task(help={"server": "the web server (its inventory host name)", "inventory": _INV, "timeout": "seconds to wait"})
@_guarded
def lb_drain(c: Any, server: str, inventory: str = INVENTORY, timeout: str = "60") -> None:
    """Drain a web server on every load balancer and wait for its sessions to end."""
    waited = ops.lb_drain(inventory, server, timeout=_number("timeout", timeout, float), command=_command())
    print(f"{server} drained in {waited:.1f} s")


@task(help={"server": "the web server (its inventory host name)", "inventory": _INV})
@_guarded
def lb_ready(c: Any, server: str, inventory: str = INVENTORY) -> None:
    """Put a web server back in service on every load balancer."""
    print(f"{server}: {ops.lb_ready(inventory, server, command=_command())}")


@task(help={"inventory": _INV})
@_guarded
def lb_status(c: Any, inventory: str = INVENTORY) -> None:
    """The load balancer pair: who holds the floating address, HAProxy and VRRP on each."""
    pair = ops.lb_status(inventory)
    for lb in pair.lbs:
        shown = lb.as_json()
        print(" ".join(f"{k}={shown.get(k)}" for k in ("host", "vrrp_state", "haproxy", "holds_vip", "error")))
    for server, status in sorted(_servers(inventory).items()):
        print(f"bk_web/{server}: {status}")
    print(f"{'ok' if pair.ok else 'NOT OK'}: {pair.line()}")
    if not pair.ok:
        raise Exit(code=1)


def _servers(inventory: str) -> dict[str, str]:
    """Each web server's status on every load balancer (UP, DRAIN, MAINT...), joined."""
    frame = ops.lb_stat(inventory)
    found: dict[str, set[str]] = {}
    for row in frame.to_dict("records"):
        if row.get("pxname") == "bk_web" and row.get("svname") not in ("FRONTEND", "BACKEND"):
            found.setdefault(str(row["svname"]), set()).add(str(row["status"]))
    return {k: ",".join(sorted(v)) for k, v in found.items()}


@task(help={"inventory": _INV})
@_guarded
def db_status(c: Any, inventory: str = INVENTORY) -> None:
    """Replication health of every database node (foobar-ops db status)."""
    found = ops.db_status(inventory)
    keep = ("host", "role", "read_only", "io_running", "sql_running", "lag_s")
    for row in found.frame().to_dict("records"):
        print(" ".join(f"{k}={row.get(k)}" for k in keep))
    print("replication ok" if found.ok else "replication NOT ok")
    if not found.ok:
        raise Exit(code=1)


@task(help={"to": "the replica to make the primary", "inventory": _INV, "test": "check only, change nothing"})
@_guarded
def db_switchover(c: Any, to: str, inventory: str = INVENTORY, test: bool = False) -> None:
    """Make a replica the primary, losing no committed write (foobar-ops db switchover)."""
    change = ops.db_switchover(inventory, to, test=test, command=_command())
    for r in change.results:
        print(f"{r.host:<10} {r.status.value:<8} {r.name:<10} {r.comment}")
    print(f"{change.kind} {change.old} -> {change.new or '?'}: {'ok' if change.ok else 'FAILED'}")
    if not change.ok:
        raise Exit(code=1)


@task(
    iterable=["param"],
    help={
        "name": "the runbook (foobar-ops runbook list)",
        "inventory": _INV,
        "param": "a parameter, NAME=VALUE (repeat it)",
        "test": "the runbook's plan-only mode",
    },
)
@_guarded
def runbook(c: Any, name: str, inventory: str = INVENTORY, param: list[str] | None = None, test: bool = False) -> None:
    """Run a runbook with its parameters; its output notebook is kept (foobar-ops runbook)."""
    from ..runbooks import runner

    texts: dict[str, str] = {}
    for given in param or []:
        key, sep, value = given.partition("=")
        if not sep or not key:
            raise FoobarOpsError(f"--param {given!r}: give NAME=VALUE")
        texts[key] = value
    done = runner.run(name, inventory, {}, texts=texts, test=True if test else None, command=_command())
    where = f"; notebook {done.output_notebook}" if done.output_notebook else ""
    print(f"runbook {done.runbook} ({done.run_id}): {done.outcome}{where}" + (f"\n{done.error}" if done.error else ""))
    if done.exit_code:
        raise Exit(code=done.exit_code)


@task(
    help={
        "kind": "round-robin or read-scaling",
        "inventory": _INV,
        "users": "simulated users",
        "run_time": "how long, e.g. 30s",
        "workers_on": "run Locust workers on these loadgen hosts, comma-separated (default: one local process)",
    }
)
@_guarded
def loadtest(
    c: Any,
    kind: str = "round-robin",
    inventory: str = INVENTORY,
    users: str = "",
    run_time: str = "",
    workers_on: str = "",
) -> None:
    """A Locust load test through the load balancer, with its computed verdict (foobar-ops loadtest)."""
    chosen: dict[str, Any] = {"command": _command()}
    if users:
        chosen["users"] = _number("users", users, int)
    if run_time:
        chosen["run_time"] = run_time
    if workers_on:
        chosen["workers_on"] = [h for h in workers_on.split(",") if h]
    test = ops.loadtest(inventory, kind, **chosen)
    for check in test.checks:
        print(f"{'ok ' if check.ok else 'BAD'} {check.name}: expected {check.expected}, measured {check.measured}")
    print(f"{kind}: {test.verdict} ({test.rps:.0f} req/s)")
    if not test.passed:
        raise Exit(code=1)


lb = Collection("lb")
lb.add_task(lb_drain, "drain")
lb.add_task(lb_ready, "ready")
lb.add_task(lb_status, "status")
db = Collection("db")
db.add_task(db_status, "status")
db.add_task(db_switchover, "switchover")
#: The tasks `fab --list` shows.
ns = Collection(deploy, plan, rollback, verify, runbook, loadtest)
ns.add_collection(lb)
ns.add_collection(db)
