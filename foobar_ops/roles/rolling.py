"""Rolling changes behind the load balancer: a web host is drained in HAProxy before its app
changes, and put back (and waited for until UP) after, so no request meets a restarting server."""
from __future__ import annotations

import time
from contextlib import contextmanager

from ..result import Result


def _result(lb, host, action: str, ok: bool, comment: str, started: float, before=None) -> Result:
    name = f"bk_web/{host.name}"
    return Result(lb.host.name, f"haproxy.server:{name}:{action}", name, "haproxy.server", ok, changed=ok,
                  changes={"old": before, "new": action} if ok else {}, comment=comment,
                  duration_ms=round((time.perf_counter() - started) * 1000, 2))


def _wait_for_another_up(lb, name: str, timeout: float) -> None:
    """Wait until a server other than `name` is UP (e.g. still rising after a reload)."""
    from ..haproxy import LBError
    deadline = time.monotonic() + timeout
    while True:
        servers = lb.servers()
        if any(str(r["status"]).startswith("UP") for n, r in servers.items() if n != name):
            return
        if time.monotonic() > deadline:
            states = ", ".join(f"{n} {r['status']}" for n, r in servers.items())
            raise LBError(f"cannot take {name} out of the load balancer: no other server has been UP "
                          f"for {timeout:g} s ({states})")
        time.sleep(0.5)


@contextmanager
def drained(host, inventory, emit, timeout: float = 30):
    """Drain `host` in the load balancer around the block (when it is UP and another server is
    UP too), then ready it and wait until its health checks pass again. Each step is a result.

    host: the web host about to change.
    inventory: the Inventory (its haproxy host is the load balancer).
    emit: where the drain/ready results go (the run's journal).
    timeout: seconds to wait for sessions to end, and for the host to be UP again.
    """
    from ..haproxy import HAProxy
    if not any("haproxy" in h.roles for h in inventory.hosts.values()):
        yield
        return
    with HAProxy(inventory, record=False) as lb:
        servers = lb.servers()
        row = servers.get(host.name)
        if row is None or not str(row["status"]).startswith("UP") or len(servers) == 1:
            yield  # not serving (a first deploy), or the only server: nothing to take out
            return
        _wait_for_another_up(lb, host.name, timeout)
        started = time.perf_counter()
        waited = lb.drain(host.name, timeout=timeout)
        emit(_result(lb, host, "drain", True, f"drained in {waited:.1f} s before its change", started, "UP"))
        try:
            yield
        finally:
            started = time.perf_counter()
            lb.ready(host.name)
            try:
                up = lb.wait_up(host.name, timeout=timeout)
                emit(_result(lb, host, "ready", True, f"back in rotation, UP after {up:.1f} s", started, "DRAIN"))
            except Exception as err:  # noqa: BLE001 - reported as the failed step
                emit(_result(lb, host, "ready", False, str(err), started))
                raise
