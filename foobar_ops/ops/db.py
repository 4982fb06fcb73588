"""The database pair: replication status, switchover and failover (journaled, the inventory kept
in step with the live roles)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from ..core.inventory import Inventory, load_inventory
from ..core.journal import Journal
from ..core.result import Result
from ..core.run import check_lock_wait
from ..core.runlock import RunLocked, holding
from ..stack import replication, rolechange
from ..stack.replication import ReplicationStatus
from ..stack.rolechange import RoleChange
from ..stack.topology import db_hosts
from .common import OnResult, inventory_of, journal_of


def db_status(
    inventory: Inventory | str | Path,
    *,
    repair: bool = True,
    journal: Journal | str | Path | None = None,
    command: str = "foobar-ops db status",
) -> ReplicationStatus:
    """Return the replication health of every database node (ok only when strictly healthy). First,
    under the database hosts' run locks and journaled: a role change that died part-way is
    finished or undone, and a writable old primary that a newer topology epoch supersedes is
    fenced (read-only); while another run holds a lock, nothing is changed and its marker shows.

    inventory: the Inventory, or its path.
    repair: settle what a dead role change left (False: only look).
    journal: the journal for a repair (default: the records folder's).
    command: what is recorded as having started a repair.
    """
    inv = inventory_of(inventory)
    found = replication.status(inv)
    if not repair or not rolechange.unsettled(found):
        return found
    with journal_of(journal).recording(
        command=f"{command} (settle)", inventory=inv, test=False, parameters={"settle": True}
    ) as run:
        try:
            with holding(db_hosts(inv), inv, run.id, command, 0):
                rolechange.settle(inv, emit=run.add)
        except RunLocked:
            return found  # a role change under way: its own run settles it
    return replication.status(load_inventory(inv.path))


def db_switchover(
    inventory: Inventory | str | Path,
    to: str | None = None,
    *,
    test: bool = False,
    journal: Journal | str | Path | None = None,
    command: str = "python: db switchover",
    on_result: OnResult | None = None,
    lock_wait: float | None = None,
) -> RoleChange:
    """Swap the primary with a replica, losing no committed write; every step journaled; the
    inventory file updated to the new roles. ok only when the new topology is verified.

    inventory: the Inventory, or its path.
    to: the replica to promote (default: the only one).
    test: check and say what would happen; change nothing.
    journal: the journal (default: the records folder's).
    command: what is recorded as having started it.
    on_result: called with each step's result.
    lock_wait: seconds to wait for another run holding a database host's run lock (default 0:
        refuse at once, naming it; a check with test takes no lock).
    """
    inv = inventory_of(inventory)
    return _role_change(
        inv,
        journal,
        command,
        {"to": to, "test": test},
        on_result,
        lock_wait,
        test,
        lambda emit, run: rolechange.switchover(inv, to, test=test, emit=emit, run=run),
    )


def db_failover(
    inventory: Inventory | str | Path,
    *,
    test: bool = False,
    journal: Journal | str | Path | None = None,
    command: str = "python: db failover",
    on_result: OnResult | None = None,
    lock_wait: float | None = None,
) -> RoleChange:
    """Promote the most advanced reachable replica when the primary is gone; every step journaled;
    the inventory file updated. ok only when the new topology is verified.

    inventory: the Inventory, or its path.
    test: check and say what would happen; change nothing.
    journal: the journal (default: the records folder's).
    command: what is recorded as having started it.
    on_result: called with each step's result.
    lock_wait: seconds to wait for another run holding a database host's run lock (default 0:
        refuse at once, naming it; a check with test takes no lock).
    """
    inv = inventory_of(inventory)
    return _role_change(
        inv,
        journal,
        command,
        {"test": test},
        on_result,
        lock_wait,
        test,
        lambda emit, run: rolechange.failover(inv, test=test, emit=emit, run=run),
    )


def db_unfence(
    inventory: Inventory | str | Path,
    gone: list[str],
    *,
    test: bool = False,
    journal: Journal | str | Path | None = None,
    command: str = "python: db unfence",
    on_result: OnResult | None = None,
    lock_wait: float | None = None,
) -> RoleChange:
    """Make the inventory's primary writable although the peers named cannot be asked (they are
    known to be gone): what `apply` refuses, failing closed. Journaled, under the run locks.

    inventory: the Inventory, or its path.
    gone: the peers known to be gone.
    test: check and say what would happen; change nothing.
    journal: the journal (default: the records folder's).
    command: what is recorded as having started it.
    on_result: called with each step's result.
    lock_wait: seconds to wait for another run holding a database host's run lock.
    """
    inv = inventory_of(inventory)
    return _role_change(
        inv,
        journal,
        command,
        {"peer_gone": gone, "test": test},
        on_result,
        lock_wait,
        test,
        lambda emit, run: rolechange.unfence(inv, gone, test=test, emit=emit),
    )


def _role_change(
    inv: Inventory,
    journal: Journal | str | Path | None,
    command: str,
    parameters: dict[str, Any],
    on_result: OnResult | None,
    lock_wait: float | None,
    test: bool,
    change: Callable[[Callable[[Result], None], str], RoleChange],
) -> RoleChange:
    """Run a role change journaled (each step a result) under the database hosts' run locks (none
    with test): change(emit, run_id) makes it."""
    wait = check_lock_wait(lock_wait)  # a bad value is refused before anything is recorded
    with journal_of(journal).recording(command=command, inventory=inv, test=test, parameters=parameters) as run:

        def emit(result: Result) -> None:
            run.add(result)
            if on_result:
                on_result(result)

        with nullcontext() if test else holding(db_hosts(inv), inv, run.id, command, wait):
            return change(emit, run.id)
