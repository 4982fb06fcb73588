"""The database pair: replication status, switchover and failover (journaled, the inventory kept
in step with the live roles)."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

from ..core.inventory import Inventory
from ..core.journal import Journal
from ..core.result import Result
from ..core.runlock import holding
from ..stack import replication
from ..stack.replication import ReplicationStatus, RoleChange
from ..stack.topology import db_hosts
from .common import OnResult, inventory_of, journal_of


def db_status(inventory: Inventory | str | Path) -> ReplicationStatus:
    """Return the replication health of every database node (ok only when strictly healthy).

    inventory: the Inventory, or its path.
    """
    return replication.status(inventory_of(inventory))


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
    lock_wait: seconds to wait for another run holding a database host's run lock (default:
        $FOOBAR_OPS_LOCK_WAIT, else refuse at once, naming it; a check with test takes no lock).
    """
    inv = inventory_of(inventory)
    with journal_of(journal).recording(
        command=command, inventory=inv, test=test, parameters={"to": to, "test": test}
    ) as run:

        def emit(result: Result) -> None:
            run.add(result)
            if on_result:
                on_result(result)

        with nullcontext() if test else holding(db_hosts(inv), inv, run.id, command, lock_wait):
            return replication.switchover(inv, to, test=test, emit=emit)


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
    lock_wait: seconds to wait for another run holding a database host's run lock (default:
        $FOOBAR_OPS_LOCK_WAIT, else refuse at once, naming it; a check with test takes no lock).
    """
    inv = inventory_of(inventory)
    with journal_of(journal).recording(command=command, inventory=inv, test=test, parameters={"test": test}) as run:

        def emit(result: Result) -> None:
            run.add(result)
            if on_result:
                on_result(result)

        with nullcontext() if test else holding(db_hosts(inv), inv, run.id, command, lock_wait):
            return replication.failover(inv, test=test, emit=emit)
