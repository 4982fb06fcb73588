"""Every load balancer's runtime API at once: a server is drained, readied or taken out on each one
(atomically on each, "another server is UP" checked on each), so whichever holds the floating
address, and the standby that may take it over, route alike."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from ..core.errors import LBError
from ..core.result import Result
from .lb import HAProxy, Row, is_up
from .topology import BACKEND, lb_hosts

__all__ = ["Balancers"]


def state_of(status: str) -> str:
    """The admin state that gives a server back the status it had: maint, drain or ready."""
    return "maint" if status.startswith("MAINT") else "drain" if status.startswith("DRAIN") else "ready"


class Balancers:
    """The runtime API of every load balancer of the inventory, in inventory order.

    inventory: the Inventory.
    remotes: load balancer name -> a connection to use (a run's own: the run closes it); the others
        get a connection of their own, closed by close().
    emit: where each server state change's result goes (one per load balancer); None: nowhere.
    """

    def __init__(
        self, inventory: Any, remotes: dict[str, Any] | None = None, emit: Callable[[Result], None] | None = None
    ) -> None:
        hosts = lb_hosts(inventory)
        if not hosts:
            raise LBError(f"{inventory.path}: no host has the haproxy role")
        given = remotes or {}
        self.each: list[HAProxy] = []
        try:
            for host in hosts:
                lb = HAProxy(inventory, host.name, record=False, remote=given.get(host.name))
                lb.emit = emit
                self.each.append(lb)
        except BaseException:
            self.close()
            raise

    def __iter__(self) -> Iterator[HAProxy]:
        return iter(self.each)

    def set_state(self, backend: str, server: str, state: str, mark: str | None = None) -> None:
        """Set a server's admin state on every load balancer, each in one atomic step there. A drain
        or maint that one load balancer refuses (the last server UP there, say) is undone on those
        already changed (each given back the state it had) before the error is raised: the load
        balancers never disagree about a server. Every error names its load balancer.

        backend, server: which server.
        state: drain, ready or maint.
        mark: the run id of a run's drain (see HAProxy.drain).
        """
        if state == "ready":  # the safe direction: tried on every one, the first error raised after
            self._ready_everywhere(backend, server)
            return
        done: list[tuple[HAProxy, str]] = []
        for lb in self.each:
            try:
                done.append((lb, lb.set_state(backend, server, state, mark)))
            except BaseException:  # undone where it was done, then raised
                for prior, before in done:
                    try:
                        prior.set_state(backend, server, state_of(before))
                    except Exception:  # noqa: BLE001 - the first error is the one to report
                        pass
                raise

    def _ready_everywhere(self, backend: str, server: str) -> None:
        first: Exception | None = None
        for lb in self.each:
            try:
                lb.set_state(backend, server, "ready")
            except Exception as err:  # noqa: BLE001 - the others are still put back
                first = first or err
        if first is not None:
            raise first

    def drain(
        self, server: str, backend: str = BACKEND, timeout: float = 60, poll: float = 0.5, mark: str | None = None
    ) -> float:
        """Drain a server on every load balancer, then wait until it has no session left on any;
        return the seconds waited. Refused (LastServerUp), and nothing left drained, when it is
        the last server UP on any of them.

        server, backend: which server.
        timeout: seconds to wait for its sessions to end on each.
        poll: seconds between checks.
        mark: the run id making the drain, or None for an operator's drain.
        """
        self.set_state(backend, server, "drain", mark)
        started = time.monotonic()
        for lb in self.each:
            lb.wait_sessions_end(server, backend, max(0.0, timeout - (time.monotonic() - started)), poll)
        return time.monotonic() - started

    def ready(self, server: str, backend: str = BACKEND) -> None:
        """Put a server back in rotation on every load balancer (and forget any run's mark on it)."""
        self.set_state(backend, server, "ready")

    def maint(self, server: str, backend: str = BACKEND) -> None:
        """Take a server out at once on every load balancer, unless it is the last one UP on any."""
        self.set_state(backend, server, "maint")

    def wait_up(self, server: str, backend: str = BACKEND, timeout: float = 30) -> float:
        """Wait until every load balancer sees the server UP; return the seconds waited."""
        started = time.monotonic()
        for lb in self.each:
            lb.wait_up(server, backend, max(0.0, timeout - (time.monotonic() - started)))
        return time.monotonic() - started

    def servers(self, backend: str = BACKEND) -> dict[str, dict[str, Row]]:
        """Return each load balancer's view of the backend: load balancer -> server -> stat row."""
        return {lb.host.name: lb.servers(backend) for lb in self.each}

    def statuses(self, server: str, backend: str = BACKEND) -> dict[str, str]:
        """Return the server's status on each load balancer ("absent" where it has none)."""
        return {
            name: str(rows[server]["status"]) if server in rows else "absent"
            for name, rows in self.servers(backend).items()
        }

    def serving(self, server: str, backend: str = BACKEND) -> bool:
        """Whether any load balancer sends the server traffic (UP there)."""
        return any(server in rows and is_up(rows[server]) for rows in self.servers(backend).values())

    def stat(self) -> Any:
        """Return `show stat` of every load balancer as one DataFrame, with an `lb` column first."""
        import pandas as pd

        rows = [{"lb": lb.host.name, **row} for lb in self.each for row in lb.stat_rows()]
        return pd.DataFrame(rows)

    def close(self) -> None:
        """Close the connections this object opened (a run's own are the run's to close)."""
        for lb in self.each:
            lb.close()

    def __enter__(self) -> "Balancers":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
