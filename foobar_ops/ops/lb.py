"""The load balancer at runtime: its statistics, and taking a server out or putting it back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.inventory import Inventory
from ..core.journal import Journal
from ..stack.lb import HAProxy, check_server
from ..stack.topology import BACKEND
from .common import inventory_of, journal_of


def lb_stat(inventory: Inventory | str | Path) -> Any:
    """Return HAProxy's `show stat` as a DataFrame (columns are HAProxy's field names).

    inventory: the Inventory, or its path.
    """
    with HAProxy(inventory_of(inventory), record=False) as lb:
        return lb.stat()


def _lb(
    inventory: Inventory | str | Path, server: str, backend: str, journal: Journal | str | Path | None, command: str
) -> HAProxy:
    """The load balancer, once server and backend are known to its configuration (else LBError,
    before anything runs on any host)."""
    inv = inventory_of(inventory)
    check_server(inv, server, backend)
    return HAProxy(inv, journal=journal_of(journal), command=command)


def lb_drain(
    inventory: Inventory | str | Path,
    server: str,
    *,
    backend: str = BACKEND,
    timeout: float = 60,
    journal: Journal | str | Path | None = None,
    command: str = "python: lb drain",
) -> float:
    """Stop new sessions to a server and wait until its sessions end (refused for the last server
    UP); journaled. Return the seconds waited.

    inventory: the Inventory, or its path.
    server: the server (its inventory host name).
    backend: the HAProxy backend.
    timeout: seconds to wait for sessions to end.
    journal: the journal (default: the records folder's).
    command: what is recorded as having made the change.
    """
    with _lb(inventory, server, backend, journal, command) as lb:
        return lb.drain(server, backend, timeout=timeout)


def lb_ready(
    inventory: Inventory | str | Path,
    server: str,
    *,
    backend: str = BACKEND,
    journal: Journal | str | Path | None = None,
    command: str = "python: lb ready",
) -> str:
    """Put a server back in rotation; journaled. Return its status.

    inventory: the Inventory, or its path.
    server: the server.
    backend: the HAProxy backend.
    journal: the journal.
    command: what is recorded.
    """
    with _lb(inventory, server, backend, journal, command) as lb:
        lb.ready(server, backend)
        return str(lb.servers(backend)[server]["status"])


def lb_maint(
    inventory: Inventory | str | Path,
    server: str,
    *,
    backend: str = BACKEND,
    journal: Journal | str | Path | None = None,
    command: str = "python: lb maint",
) -> str:
    """Take a server out of rotation at once (refused for the last server UP); journaled. Return its
    status.

    inventory: the Inventory, or its path.
    server: the server.
    backend: the HAProxy backend.
    journal: the journal.
    command: what is recorded.
    """
    with _lb(inventory, server, backend, journal, command) as lb:
        lb.maint(server, backend)
        return str(lb.servers(backend)[server]["status"])
