"""Rolling changes behind the load balancer, in one place: a web host is drained in HAProxy before
it changes, and put back (and waited for until UP) after, so no request meets a restarting server;
hosts go one at a time, out-of-rotation ones first, and the phase stops at the first failure."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ..core.engine import Phase
from ..core.result import Result
from ..core.states import State
from .lb import HAProxy, is_up, server_result
from .topology import BACKEND, lb_host

ANOTHER_UP_WAIT = 5.0  # seconds to wait for another server that is rising (e.g. just after a reload)

Emit = Callable[[Result], None]


def rolling_phase(name: str, states_for: Callable[[Any, Any], Sequence[State[Any]]]) -> Phase:
    """Return a phase that changes its hosts one at a time, each drained in the load balancer
    first when (and only when) it has something to change.

    name: the phase's name.
    states_for: function (host, inventory) -> the host's states.
    """
    return Phase(name, states_for, serial=True, guard=drained, order=out_of_rotation_first)


def _result(
    lb: HAProxy,
    host: Any,
    action: str,
    ok: bool,
    comment: str,
    started: float,
    before: Any = None,
    changed: bool = True,
) -> Result:
    return server_result(
        lb.host.name, BACKEND, host.name, action, ok, comment, time.perf_counter() - started, before, changed
    )


def out_of_rotation_first(hosts: list[Any], inventory: Any) -> list[Any]:
    """Order hosts for a rolling change: those the load balancer does not see UP go first, so a
    fix reaches a broken server before a healthy one is taken out.

    hosts: the phase's hosts, in inventory order.
    inventory: the Inventory.
    """
    if lb_host(inventory) is None or len(hosts) < 2:
        return hosts
    try:
        with HAProxy(inventory, record=False) as lb:
            rows = lb.servers(BACKEND)
    except Exception:  # noqa: BLE001 - no load balancer to ask: keep the inventory order
        return hosts
    return sorted(hosts, key=lambda h: h.name in rows and is_up(rows[h.name]))


@contextmanager
def drained(host: Any, inventory: Any, emit: Emit, timeout: float = 30) -> Iterator[None]:
    """Drain `host` in the load balancer around the block, then ready it and wait until its health
    checks pass again; each step is a result. A server that is not UP (a first deploy, or out of
    rotation by an operator's choice) is changed as it is and its admin state left alone; the only
    server UP is changed without draining (nothing could take its traffic), and the result says so.

    host: the web host about to change.
    inventory: the Inventory (its haproxy host is the load balancer).
    emit: where the drain/ready results go (the run's journal).
    timeout: seconds to wait for sessions to end, and for the host to be UP again.
    """
    if lb_host(inventory) is None:
        yield
        return
    with HAProxy(inventory, record=False) as lb:
        started = time.perf_counter()
        row = lb.servers(BACKEND).get(host.name)
        serving = row is not None and is_up(row)
        if not serving or not lb.wait_others_up(host.name, BACKEND, ANOTHER_UP_WAIT):
            why = (
                f"{row['status'] if row else 'absent'} in the load balancer: changed as it is, its state left alone"
                if not serving
                else "the only server UP: changed without draining"
            )
            emit(_result(lb, host, "as-is", True, why, started, changed=False))
            yield
            return
        yield from _drain_change_ready(lb, host, emit, timeout, started)


def _drain_change_ready(lb: HAProxy, host: Any, emit: Emit, timeout: float, started: float) -> Iterator[None]:
    """Drain, let the change run (the caller's block), then ready and wait for UP; the server is
    put back whatever happens, and an interrupt stays an interrupt."""
    try:
        waited = lb.drain(host.name, BACKEND, timeout=timeout)
    except BaseException as err:
        emit(_result(lb, host, "drain", False, f"drain failed, server put back: {err}", started))
        lb.ready(host.name, BACKEND)
        raise
    emit(_result(lb, host, "drain", True, f"drained in {waited:.1f} s before its change", started, "UP"))
    failed: BaseException | None = None
    try:
        yield
    except BaseException as err:  # noqa: BLE001 - failed or interrupted: still put the server back, then re-raise
        failed = err
    started = time.perf_counter()
    try:
        lb.ready(host.name, BACKEND)
        up = lb.wait_up(host.name, BACKEND, timeout=timeout)
        emit(_result(lb, host, "ready", True, f"back in rotation, UP after {up:.1f} s", started, "DRAIN"))
    except Exception as err:
        emit(_result(lb, host, "ready", False, str(err), started))
        if failed is None:
            raise
    if failed is not None:
        raise failed
