"""The load balancers at runtime: their statistics, and taking a server out or putting it back on
every one of them (one journal run per action, one result per load balancer)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..core.errors import LBError
from ..core.inventory import Inventory
from ..core.journal import Journal
from ..stack.balancers import Balancers
from ..stack.lb import check_server
from ..stack.pair import Handover, PairRemotes, PairStatus, handover
from ..stack.topology import BACKEND
from .common import inventory_of, journal_of


def lb_stat(inventory: Inventory | str | Path) -> Any:
    """Return every load balancer's `show stat` as one DataFrame: an `lb` column (which load
    balancer reported the row), then HAProxy's field names.

    inventory: the Inventory, or its path.
    """
    with Balancers(inventory_of(inventory)) as lbs:
        return lbs.stat()


@contextmanager
def _lb(
    inventory: Inventory | str | Path,
    server: str,
    backend: str,
    journal: Journal | str | Path | None,
    command: str,
    state: str,
) -> Iterator[Balancers]:
    """Every load balancer, once server and backend are known to the configuration (else LBError,
    before anything runs on any host), recording its changes as one journal run."""
    inv = inventory_of(inventory)
    check_server(inv, server, backend)
    with journal_of(journal).recording(
        command=f"{command} {state} {backend}/{server}",
        inventory=inv,
        parameters={"backend": backend, "server": server, "state": state},
    ) as run:
        with Balancers(inv, emit=run.add) as lbs:
            yield lbs


def _statuses(lbs: Balancers, server: str, backend: str) -> str:
    """The server's status on each load balancer: one word when they agree, else each named."""
    seen = lbs.statuses(server, backend)
    words = set(seen.values())
    return words.pop() if len(words) == 1 else ", ".join(f"{lb} {status}" for lb, status in seen.items())


def lb_drain(
    inventory: Inventory | str | Path,
    server: str,
    *,
    backend: str = BACKEND,
    timeout: float = 60,
    journal: Journal | str | Path | None = None,
    command: str = "python: lb drain",
) -> float:
    """Stop new sessions to a server on every load balancer and wait until its sessions end there
    (refused, and nothing left drained, when it is the last server UP on any); journaled. Return the seconds waited.

    inventory: the Inventory, or its path.
    server: the server (its inventory host name).
    backend: the HAProxy backend.
    timeout: seconds to wait for sessions to end.
    journal: the journal (default: the records folder's).
    command: what is recorded as having made the change.
    """
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 <= timeout <= 3600:
        raise LBError(f"drain timeout {timeout!r}: give seconds from 0 to 3600")  # nan fails the range too
    with _lb(inventory, server, backend, journal, command, "drain") as lbs:
        return lbs.drain(server, backend, timeout=timeout)


def lb_ready(
    inventory: Inventory | str | Path,
    server: str,
    *,
    backend: str = BACKEND,
    journal: Journal | str | Path | None = None,
    command: str = "python: lb ready",
) -> str:
    """Put a server back in rotation on every load balancer; journaled. Return its status (each
    load balancer's, named, when they differ).

    inventory: the Inventory, or its path.
    server: the server.
    backend: the HAProxy backend.
    journal: the journal.
    command: what is recorded.
    """
    with _lb(inventory, server, backend, journal, command, "ready") as lbs:
        lbs.ready(server, backend)
        return _statuses(lbs, server, backend)


def lb_maint(
    inventory: Inventory | str | Path,
    server: str,
    *,
    backend: str = BACKEND,
    journal: Journal | str | Path | None = None,
    command: str = "python: lb maint",
) -> str:
    """Take a server out of rotation at once on every load balancer (refused for the last server UP
    on any); journaled. Return its status.

    inventory: the Inventory, or its path.
    server: the server.
    backend: the HAProxy backend.
    journal: the journal.
    command: what is recorded.
    """
    with _lb(inventory, server, backend, journal, command, "maint") as lbs:
        lbs.maint(server, backend)
        return _statuses(lbs, server, backend)


def lb_status(inventory: Inventory | str | Path) -> PairStatus:
    """Return the load balancer pair's status: the floating address, who holds it, and each load
    balancer's VRRP state, HAProxy state and priority; `ok` when exactly one holds the address and
    every one serves.

    inventory: the Inventory, or its path.
    """
    with PairRemotes(inventory_of(inventory)) as pair:
        return pair.status()


def lb_handover(
    inventory: Inventory | str | Path,
    to: str,
    *,
    test: bool = False,
    wait: float = 30.0,
    journal: Journal | str | Path | None = None,
    command: str = "python: lb handover",
) -> Handover:
    """Move the floating address to another load balancer (planned maintenance of its holder):
    wait until that one serves, then move the address; the old holder stays as the standby.
    Journaled (a test changes nothing and is not).

    inventory: the Inventory, or its path.
    to: the load balancer to take the address.
    test: say what would happen; change nothing.
    wait: seconds to wait for `to` to serve.
    journal: the journal.
    command: what is recorded.
    """
    inv = inventory_of(inventory)
    with PairRemotes(inv) as pair:
        if test:
            return handover(pair, to, test=True, wait=wait)
        with journal_of(journal).recording(
            command=f"{command} --to {to}", inventory=inv, parameters={"to": to, "wait": wait}
        ) as run:
            done = handover(pair, to, wait=wait, run_id=run.id, emit=run.add)
            if not done.ok:
                raise LBError(done.line)
            return done
