"""Rolling changes behind the load balancers, in one place: a web host is drained in HAProxy on every
load balancer before it changes, and put back (and waited for until UP) on every one after, so no
request meets a restarting server whichever load balancer holds the floating address; hosts go one
at a time, out-of-rotation ones first, and the phase stops at the first failure."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from ..core.engine import Phase
from ..core.errors import CutOffChangeRunning
from ..core.result import Result, Status
from ..core.run import Run
from ..core.states import State
from .balancers import Balancers
from .lb import HAProxy, LastServerUp, LBError, is_up, marks_command, server_result
from .topology import BACKEND, lb_hosts

ANOTHER_UP_WAIT = 5.0  # seconds to wait for another server that is rising (e.g. just after a reload)

Emit = Callable[[Result], None]


def rolling_phase(name: str, states_for: Callable[[Any, Any], Sequence[State[Any]]]) -> Phase:
    """Return a phase that changes its hosts one at a time, each drained in the load balancer
    first when (and only when) it has something to change.

    name: the phase's name.
    states_for: function (host, inventory) -> the host's states.
    """
    return Phase(
        name,
        states_for,
        serial=True,
        guard=drained,
        order=out_of_rotation_first,
        prepare=put_back_left_drained,
        also_locks=lb_hosts,
        reads=_marks_read,
    )


def _marks_read(inventory: Any) -> list[tuple[Any, str, str]]:
    """The drain marks on each load balancer, read in its opening command (the put-back's input)."""
    return [(lb, "drain-marks", marks_command(BACKEND)) for lb in lb_hosts(inventory)]


def put_back_left_drained(run: Run, emit: Emit, timeout: float = 30) -> None:
    """Put back in rotation every server that a run drained and never put back (it was killed, lost
    its connection, or its machine died): such drains carry the run's mark on the load balancer.
    Drains made by an operator carry no mark and are left alone. Runs before anything else in a
    run that has a rolling phase (which holds the load balancer's run lock: the run that made the
    drain is over).

    run: the run (its inventory, its id, whether it is a dry-run: then it says what would be put
        back and changes nothing; its connection to the load balancer).
    emit: where each put-back's result goes.
    timeout: seconds to wait for a put-back server to be UP.
    """
    for balancer in lb_hosts(run.inventory):
        _put_back_on(run, balancer, emit, timeout)


def _put_back_on(run: Run, balancer: Any, emit: Emit, timeout: float) -> None:
    """Put back what dead runs left drained on one load balancer (see put_back_left_drained)."""
    test, this_run = run.test, run.id
    try:
        with HAProxy(run.inventory, balancer.name, record=False, remote=run.remote(balancer)) as lb:
            marks = lb.marks(BACKEND, said=run.read(balancer.name, "drain-marks"))
            rows = lb.servers(BACKEND) if marks else {}
            for server, mark in marks.items():
                if mark.get("run") == this_run:
                    continue
                started = time.perf_counter()
                row = rows.get(server)
                status = row["status"] if row else "absent"
                left = f"left {mark.get('state', 'drain')}ed by run {mark.get('run')} at {mark.get('at')}"
                if test:
                    result = server_result(
                        lb.host.name, BACKEND, server, "ready", True, f"would put back: {left}", 0.0, status, False
                    )
                    result.status = Status.PENDING
                    emit(result)
                    continue
                try:
                    lb.ready(server, BACKEND)
                    up = lb.wait_up(server, BACKEND, timeout=timeout)
                    emit(
                        _put_back(
                            lb,
                            server,
                            True,
                            f"put back: {left}, which ended without; UP after {up:.1f} s",
                            started,
                            status,
                        )
                    )
                except LBError as err:
                    emit(_put_back(lb, server, False, f"could not put back ({left}): {err}", started, status))
    except LBError as err:
        raise LBError(
            f"cannot check load balancer {balancer.name} for servers left drained by a dead run: {err}"
        ) from None


def _put_back(lb: HAProxy, server: str, ok: bool, comment: str, started: float, before: Any) -> Result:
    return server_result(lb.host.name, BACKEND, server, "ready", ok, comment, time.perf_counter() - started, before)


def out_of_rotation_first(hosts: list[Any], inventory: Any) -> list[Any]:
    """Order hosts for a rolling change: those the load balancer does not see UP go first, so a
    fix reaches a broken server before a healthy one is taken out.

    hosts: the phase's hosts, in inventory order.
    inventory: the Inventory.
    """
    if not lb_hosts(inventory) or len(hosts) < 2:
        return hosts
    try:
        with Balancers(inventory) as lbs:
            views = list(lbs.servers(BACKEND).values())
    except Exception:  # noqa: BLE001 - no load balancer to ask: keep the inventory order
        return hosts
    return sorted(hosts, key=lambda h: all(h.name in rows and is_up(rows[h.name]) for rows in views))


@contextmanager
def drained(run: Run, host: Any, emit: Emit, timeout: float = 30) -> Iterator[None]:
    """Drain `host` on every load balancer around the block, then ready it on every one and wait
    until each sees its health checks pass again; each step is a result per load balancer. A
    server that no load balancer sees UP (a first deploy, or out of rotation by an operator's
    choice) is changed as it is and its admin state left alone; the only server UP is changed
    without draining (nothing could take its traffic), and the result says so.

    run: the run (its inventory's haproxy hosts are the load balancers, each reached on the run's
        own connection, which holds its lock; its id marks the drain).
    host: the web host about to change.
    emit: where the drain/ready results go (the run's journal).
    timeout: seconds to wait for sessions to end, and for the host to be UP again.
    """
    balancers = lb_hosts(run.inventory)
    if not balancers:
        yield
        return
    with Balancers(run.inventory, remotes={b.name: run.remote(b) for b in balancers}) as lbs:
        started = time.perf_counter()
        if not lbs.serving(host.name):
            seen = ", ".join(f"{lb} {status}" for lb, status in lbs.statuses(host.name).items())
            why = f"not UP on any load balancer ({seen}): changed as it is, its state left alone"
            _each(emit, lbs, host, "as-is", True, why, started, changed=False)
            yield
            return
        yield from _drain_change_ready(lbs, host, emit, timeout, started, run.id)


def _each(
    emit: Emit,
    lbs: Balancers,
    host: Any,
    action: str,
    ok: bool,
    comment: str,
    started: float,
    before: Any = None,
    changed: bool = True,
) -> None:
    """Record one step of the guard on every load balancer (a result each); trouble recording it
    never keeps a server out of rotation."""
    seconds = time.perf_counter() - started
    for lb in lbs:
        _safe_emit(emit, server_result(lb.host.name, BACKEND, host.name, action, ok, comment, seconds, before, changed))


def _drain(lbs: Balancers, host: Any, timeout: float, mark: str) -> float | None:
    """Drain `host` on every load balancer (marked as this run's), unless it is the only server UP
    on one of them: then wait a little for another one to rise (e.g. just after a reload) and
    return None when none did (nothing is left drained anywhere)."""
    deadline = time.monotonic() + ANOTHER_UP_WAIT
    while True:
        try:
            return lbs.drain(host.name, BACKEND, timeout=timeout, mark=mark)
        except LastServerUp:
            if time.monotonic() > deadline:
                return None
        time.sleep(0.5)


def _drain_change_ready(
    lbs: Balancers, host: Any, emit: Emit, timeout: float, started: float, mark: str
) -> Iterator[None]:
    """Drain everywhere, let the change run (the caller's block), then ready everywhere and wait
    for UP; the server is put back whatever happens (an interrupt stays an interrupt), except while
    its change, cut off, still runs on it (CutOffChangeRunning): it stays drained with this run's
    mark, and the next run, which waits for that change to end, puts it back."""
    try:
        waited = _drain(lbs, host, timeout, mark)
    except BaseException as err:
        _put_back_after(lbs, host, err)
        why = f"drain failed, server put back: {str(err) or type(err).__name__}"
        _each(emit, lbs, host, "drain", False, why, started)
        raise
    if waited is None:  # checked and refused in one step on a load balancer: nobody else serves
        _each(emit, lbs, host, "as-is", True, "the only server UP: changed without draining", started, changed=False)
        yield
        return
    failed: BaseException | None = None
    try:  # from here on the server is out: an interrupt while its drain is recorded puts it back too
        _each(emit, lbs, host, "drain", True, f"drained in {waited:.1f} s before its change", started, "UP")
        yield
    except CutOffChangeRunning as err:  # out of rotation until it ends: a later run puts it back (the mark)
        why = f"left out of rotation, marked as this run's: {err.reason}; the next run puts it back once it has ended"
        _each(emit, lbs, host, "ready", False, why, time.perf_counter())
        raise
    except BaseException as err:  # noqa: BLE001 - failed or interrupted: still put the server back, then re-raise
        failed = err
    started = time.perf_counter()
    try:
        _put_back_after(lbs, host, failed)
        up = lbs.wait_up(host.name, BACKEND, timeout=timeout)
        _each(emit, lbs, host, "ready", True, f"back in rotation, UP after {up:.1f} s", started, "DRAIN")
    except Exception as err:
        _each(emit, lbs, host, "ready", False, str(err), started)
        if failed is None:
            raise
    if failed is not None:
        raise failed


def _put_back_after(lbs: Balancers, host: Any, err: BaseException | None) -> None:
    """Ready the server on every load balancer. After an interrupt, on fresh connections (the one
    the interrupt hit may be mid-command) unless they are the run's own, shared ones (the run's
    lock on each load balancer rides on them; the command gets a new channel). A cut connection is
    tried again by the runtime API itself (HAProxy._run)."""
    if isinstance(err, KeyboardInterrupt):
        lbs.close()
    lbs.ready(host.name, BACKEND)


def _safe_emit(emit: Emit, result: Result) -> None:
    """Record a drain/ready step; trouble recording it never keeps a server out of rotation."""
    try:
        emit(result)
    except Exception:  # noqa: BLE001 - the run's report still has it; the journal's error is its own
        pass
