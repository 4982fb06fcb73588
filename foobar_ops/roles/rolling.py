"""Rolling changes behind the load balancer: a web host is drained in HAProxy before its app
changes, and put back (and waited for until UP) after, so no request meets a restarting server."""
from __future__ import annotations

import time
from contextlib import contextmanager

from ..result import Result

ANOTHER_UP_WAIT = 5.0  # seconds to wait for another server that is rising (e.g. just after a reload)


def _result(lb, host, action: str, ok: bool, comment: str, started: float, before=None,
            changed: bool = True) -> Result:
    name = f"bk_web/{host.name}"
    return Result(lb.host.name, f"haproxy.server:{name}:{action}", name, "haproxy.server", ok,
                  changed=ok and changed, changes={"old": before, "new": action} if ok and changed else {},
                  comment=comment, duration_ms=round((time.perf_counter() - started) * 1000, 2))


def _has_lb(inventory) -> bool:
    return any("haproxy" in h.roles for h in inventory.hosts.values())


def out_of_rotation_first(hosts: list, inventory) -> list:
    """Order hosts for a rolling change: those the load balancer does not see UP go first, so a
    fix reaches a broken server before a healthy one is taken out.

    hosts: the phase's hosts, in inventory order.
    inventory: the Inventory.
    """
    if not _has_lb(inventory) or len(hosts) < 2:
        return hosts
    from ..haproxy import HAProxy
    try:
        with HAProxy(inventory, record=False) as lb:
            status = {n: str(r["status"]) for n, r in lb.servers().items()}
    except Exception:  # noqa: BLE001 - no load balancer to ask: keep the inventory order
        return hosts
    return sorted(hosts, key=lambda h: status.get(h.name, "").startswith("UP"))


def _another_up(lb, name: str, wait: float) -> bool:
    """Return True when a server other than `name` is UP (waiting a little for one rising)."""
    deadline = time.monotonic() + wait
    while True:
        if any(str(r["status"]).startswith("UP") for n, r in lb.servers().items() if n != name):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)


@contextmanager
def drained(host, inventory, emit, timeout: float = 30):
    """Drain `host` in the load balancer around the block, then ready it and wait until its health
    checks pass again; each step is a result. A server that is not UP (a first deploy, or out of
    rotation by an operator's choice) is changed as it is and its admin state left alone; the only
    server UP is changed without draining (nothing could take its traffic), and the result says so.

    host: the web host about to change.
    inventory: the Inventory (its haproxy host is the load balancer).
    emit: where the drain/ready results go (the run's journal).
    timeout: seconds to wait for sessions to end, and for the host to be UP again.
    """
    from ..haproxy import HAProxy
    if not _has_lb(inventory):
        yield
        return
    with HAProxy(inventory, record=False) as lb:
        started = time.perf_counter()
        row = lb.servers().get(host.name)
        status = str(row["status"]) if row else "absent"
        if not status.startswith("UP") or not _another_up(lb, host.name, ANOTHER_UP_WAIT):
            why = (f"{status} in the load balancer: changed as it is, its state left alone"
                   if not status.startswith("UP") else "the only server UP: changed without draining")
            emit(_result(lb, host, "as-is", True, why, started, changed=False))
            yield
            return
        yield from _drain_change_ready(lb, host, emit, timeout, started)


def _drain_change_ready(lb, host, emit, timeout: float, started: float):
    """Drain, let the change run (the caller's block), then ready and wait for UP; the server is
    put back whatever happens, and an interrupt stays an interrupt."""
    try:
        waited = lb.drain(host.name, timeout=timeout)
    except BaseException as err:
        emit(_result(lb, host, "drain", False, f"drain failed, server put back: {err}", started))
        lb.ready(host.name)
        raise
    emit(_result(lb, host, "drain", True, f"drained in {waited:.1f} s before its change", started, "UP"))
    failed: BaseException | None = None
    try:
        yield
    except BaseException as err:  # the change failed or was interrupted: still put the server back
        failed = err
    started = time.perf_counter()
    try:
        lb.ready(host.name)
        up = lb.wait_up(host.name, timeout=timeout)
        emit(_result(lb, host, "ready", True, f"back in rotation, UP after {up:.1f} s", started, "DRAIN"))
    except Exception as err:  # noqa: BLE001 - reported here; the change's own error wins below
        emit(_result(lb, host, "ready", False, str(err), started))
        if failed is None:
            raise
    if failed is not None:
        raise failed
