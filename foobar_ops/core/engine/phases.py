"""Apply states across hosts: phases in order, hosts in parallel (or one at a time behind a guard),
every result journaled as it comes; returns the run's Report."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ChangeStillRunning, ConnectionFailed, FoobarOpsError, SudoError
from ..journal import Journal
from ..report import Report
from ..result import HostOutcome, Outcome, Result, Status
from ..runlock import HostLock, RunLocked, locked
from ..runlock import lock_wait as wait_for_locks
from ..secrets import mask_known
from ..ssh import Remote, sharing
from ..states.base import State
from .host import NOT_PLANNED, Emit, HostApply, check_states

StatesFor = Callable[[Any, Any], Sequence[State[Any]]]
#: guard(host, inventory, emit): a context manager around a host's apply in a one-at-a-time phase
Guard = Callable[[Any, Any, Emit], AbstractContextManager[None]]
#: order(hosts, inventory): the order a one-at-a-time phase takes its hosts in
Order = Callable[[list[Any], Any], list[Any]]
#: prepare(inventory, emit, test): run once before any phase of a run that has this phase (e.g.
#: putting back what a dead run left drained); its results are the run's
Prepare = Callable[[Any, Emit, bool], None]
#: also_locks(inventory): hosts a phase acts on besides its own (e.g. the load balancer)
AlsoLocks = Callable[[Any], list[Any]]

#: the id of the run being applied (for guards that mark what they do with it)
current_run: ContextVar[str | None] = ContextVar("foobar_ops_current_run", default=None)


@dataclass
class Phase:
    """One phase of a run: the states of every host, applied in parallel, or one host at a time
    (serial: a rolling change that stops at the first host that fails).

    name: what the phase is, for reports.
    states_for: function (host, inventory) -> the host's states in this phase.
    serial: one host at a time; the hosts after a failed one are not run.
    guard: for a serial phase, wrapped around a host's apply when a plan (one round trip) shows it
        has changes pending (e.g. taking the host out of the load balancer); a host with nothing
        pending keeps its plan as its results and is not disturbed. When the change was cut off
        and still runs on the host, ChangeStillRunning is raised into it (it must not undo what
        it guards yet).
    order: for a serial phase, the order hosts are taken in.
    prepare: run before the run's first phase (once, whatever phase names it).
    also_locks: the hosts this phase acts on besides its targets; the run locks them too.
    """

    name: str
    states_for: StatesFor
    serial: bool = False
    guard: Guard | None = None
    order: Order | None = None
    prepare: Prepare | None = None
    also_locks: AlsoLocks | None = None


def load_state_file(path: Path | str) -> StatesFor:
    """Load a Python file that defines `states(host, inventory) -> list[State]`.

    path: the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FoobarOpsError(f"state file {path} does not exist")
    spec = importlib.util.spec_from_file_location(f"foobar_states_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # noqa: BLE001 - a user's file: report, don't crash
        raise FoobarOpsError(f"state file {path}: {type(err).__name__}: {err}") from None
    if not callable(getattr(module, "states", None)):
        raise FoobarOpsError(f"state file {path} defines no function states(host, inventory)")
    states: StatesFor = module.states
    return states


def apply(
    inventory: Any,
    phases: Phase | StatesFor | Sequence[Phase | StatesFor],
    *,
    hosts: str | None = None,
    test: bool = False,
    journal: Journal | None = None,
    command: str = "python",
    parameters: dict[str, Any] | None = None,
    runbook: str | None = None,
    run_id: str | None = None,
    parallel: int = 10,
    on_result: Callable[[Result], None] | None = None,
    output_notebook: str | None = None,
    expected: dict[str, dict[str, str]] | None = None,
    lock_wait: float | None = None,
) -> Report:
    """Apply states to the targeted hosts and return the Report; every result is journaled.

    inventory: the Inventory.
    phases: a Phase, a function (host, inventory) -> states, or a list of those (applied in order:
        every host finishes a phase before the next one starts).
    hosts: host pattern (default: all hosts).
    test: dry-run: change nothing, report what would change.
    journal: where to record (default: the journal of the data folder).
    command: what started the run (recorded).
    parameters: run parameters (recorded, secrets masked).
    runbook: the runbook, when a runbook runs.
    run_id: use this run id (default: a new one).
    parallel: at most this many hosts at once.
    on_result: called with every Result as it comes.
    output_notebook: the runbook's output notebook, linked from the run from its start.
    expected: a saved plan's digests (host -> state id -> digest): a host whose states no longer
        match it is refused (a failed result names the first state that drifted) and changes
        nothing; the others are applied as planned.
    lock_wait: seconds to wait for another run holding a host's lock (default: $FOOBAR_OPS_LOCK_WAIT,
        else 0: refuse at once). A run (not a dry-run) locks every host it targets, and the hosts
        its phases act on, for its whole life; when another run holds one, it changes nothing and
        fails with RunLocked naming that run.
    """
    targets = inventory.select(hosts)
    listed = phases if isinstance(phases, (list, tuple)) else [phases]
    steps = [p if isinstance(p, Phase) else Phase(f"phase {i + 1}", p) for i, p in enumerate(listed)]
    journal = journal or Journal()
    started = time.perf_counter()
    with journal.recording(
        command=command,
        inventory=inventory,
        test=test,
        parameters=parameters,
        runbook=runbook,
        run_id=run_id,
        output_notebook=output_notebook,
    ) as run:
        # bad input (a template, a role, a secret, a duplicate state id) stops here, before any host
        # is touched; the run is journaled as an error with the reason
        declared = [{h.name: list(step.states_for(h, inventory)) for h in targets} for step in steps]
        for per_host in declared:
            for name, states in per_host.items():
                check_states(name, states)
        report = Report(run.id, test, hosts=[h.name for h in targets])

        def emit(result: Result) -> None:
            run.add(result)  # never raises: what the journal refuses is kept aside and reported
            if on_result:
                try:
                    on_result(result)
                except Exception as err:  # noqa: BLE001 - a display callback's bug must not stop a change
                    run.errors.append(f"on_result callback failed: {type(err).__name__}: {mask_known(str(err))}")

        runner = _Runner(inventory, targets, report, emit, test, parallel)
        runner.expected = expected
        token = current_run.set(run.id)
        try:
            with ExitStack() as held:
                if not test:
                    runner.lock(steps, held, run.id, command, wait_for_locks(lock_wait))
                with sharing(runner.remotes):  # e.g. the rolling guard talks to the LB on the run's connection
                    runner.run(steps, declared)
        finally:
            current_run.reset(token)
        report.order_hosts()
        for outcome in report.outcomes.values():
            run.add_outcome(outcome)
        report.journal_errors = list(run.errors)
    report.duration_s = time.perf_counter() - started
    return report


class _Runner:
    """Runs phases over hosts and fills the report."""

    def __init__(self, inventory: Any, hosts: list[Any], report: Report, emit: Emit, test: bool, parallel: int) -> None:
        self.inventory, self.hosts, self.report, self.emit, self.test = inventory, hosts, report, emit, test
        self.parallel = max(1, min(parallel, len(hosts) or 1))
        self.remotes = {h.name: Remote(h, inventory) for h in hosts}
        self.lost: dict[str, str] = {}  # host -> why it cannot be reached
        self.refused: dict[str, str] = {}  # host -> why it cannot act (e.g. sudo refused the password)
        self.expected: dict[str, dict[str, str]] | None = None  # a saved plan's digests
        self.drifted: set[str] = set()  # hosts refused because they no longer match the saved plan
        self.locks: dict[str, HostLock] = {}
        self.unlocked: dict[str, str] = {}  # a host acted on for the others whose lock failed -> why
        self.busy: set[str] = set()  # hosts where a change cut off is still running

    def lock(self, steps: list[Phase], held: ExitStack, run_id: str, command: str, wait: float) -> None:
        """Take the run lock of every targeted host and of every host the phases act on besides
        (e.g. the load balancer). A host locked by another run refuses the whole run (RunLocked:
        nothing is changed anywhere); a host that cannot be reached or refuses sudo is noted as
        such, and the others go on as they would without it."""
        extra: dict[str, Any] = {}
        for step in steps:
            for host in step.also_locks(self.inventory) if step.also_locks else []:
                if host is not None and host.name not in self.remotes:
                    extra[host.name] = host
        for name, host in extra.items():
            self.remotes[name] = Remote(host, self.inventory)
        outcomes = held.enter_context(locked(list(self.remotes.values()), run_id, command, wait))
        busy = [err for err in outcomes.values() if isinstance(err, RunLocked)]
        if busy:
            raise busy[0]
        for name, outcome in outcomes.items():
            if isinstance(outcome, HostLock):
                self.locks[name] = outcome
                self.remotes[name].relock = outcome.reacquire  # a lost connection took the lock with it
                if outcome.took_over or outcome.stale:
                    self._lock_note(name, outcome)
            elif name not in extra:
                if isinstance(outcome, ConnectionFailed):
                    self.lost[name] = mask_known(outcome.reason)
                else:
                    self.refused[name] = mask_known(str(outcome).removeprefix(f"{name}: "))
            else:  # a host acted on for the others: the phases that need it refuse to go on
                self.unlocked[name] = mask_known(str(outcome).removeprefix(f"{name}: "))
                self.remotes.pop(name).close()
        for name in extra:
            if name in self.remotes:
                held.callback(self.remotes[name].close)

    def _lock_note(self, name: str, lock: HostLock) -> None:
        """Record that a host's lock came from a run that died holding it."""
        dead = lock.took_over or lock.stale
        assert dead is not None
        how = "its process is gone: lock taken over" if lock.took_over else "it ended without releasing it"
        result = Result(
            name,
            "run.lock",
            "run lock",
            "run.lock",
            Status.OK,
            comment=f"the lock was held by {dead.describe()}; {how}",
        )
        self.emit(result)
        self.report.results.append(result)

    def run(self, steps: list[Phase], declared: list[dict[str, list[State[Any]]]]) -> None:
        try:
            self._prepare(steps)
            with ThreadPoolExecutor(max_workers=self.parallel) as pool:
                for step, states in zip(steps, declared, strict=True):
                    todo = [h for h in self.hosts if states[h.name] and h.name not in self.lost | self.refused]
                    if step.serial:
                        self._serial(step, todo, states, pool)
                    else:
                        self._parallel(pool, todo, states)
        finally:
            try:
                for _name, lock in self.locks.items():  # before the connections they ride on
                    lock.release()
                for host in self.hosts:
                    self.remotes[host.name].close()
            finally:  # closed: their byte counts are complete
                for host in self.hosts:
                    remote = self.remotes[host.name]
                    self.report.outcomes[host.name] = self._outcome(host.name, remote)

    def _prepare(self, steps: list[Phase]) -> None:
        """Run each distinct prepare hook of the run's phases once, before anything else; not when
        a host its phase acts on besides could not be locked (what it does there, e.g. putting back
        a server a dead run left drained, is never done beside another run)."""
        done: list[Prepare] = []

        def keep(result: Result) -> None:
            self.emit(result)
            self.report.results.append(result)

        for step in steps:
            if step.prepare is None or step.prepare in done:
                continue
            done.append(step.prepare)
            unlocked = self._not_locked(step)
            if unlocked:
                where, said = unlocked
                why = f"not run: {said}; a later run does it"
                keep(Result(where, f"prepare:{step.name}", step.name, "run.prepare", Status.NOT_RUN, comment=why))
                continue
            step.prepare(self.inventory, keep, self.test)

    def _parallel(self, pool: ThreadPoolExecutor, hosts: list[Any], states: dict[str, list[State[Any]]]) -> None:
        """Apply a phase on every host at once."""
        for results in pool.map(lambda h: self._one(h, states[h.name], self.test), hosts):
            self.report.results += results

    def _outcome(self, name: str, remote: Any) -> HostOutcome:
        trips, wire = remote.round_trips, remote.ssh_bytes
        if name in self.lost:
            return HostOutcome(name, Outcome.UNREACHABLE, self.lost[name], trips, wire)
        if name in self.refused:
            return HostOutcome(name, Outcome.FAILED, self.refused[name], trips, wire)
        bad = any(r.failed for r in self.report.results if r.host == name)
        return HostOutcome(name, Outcome.FAILED if bad else Outcome.OK, None, trips, wire)

    def _one(self, host: Any, states: list[State[Any]], test: bool, emit: Emit | None = None) -> list[Result]:
        """Apply (or plan) one host's states; a host that cannot be reached is noted as lost."""
        expected = None
        if self.expected is not None:
            saved = self.expected.get(host.name, {})
            expected = {st.id: saved.get(st.id, NOT_PLANNED) for st in states}
        applier = HostApply(host, states, self.remotes[host.name], test, emit or self.emit, expected)
        try:
            results = applier.execute()
        except ConnectionFailed as err:
            self.lost[host.name] = mask_known(err.reason)
            return []
        except SudoError as err:  # reached, but it cannot act as root: nothing was done, nothing will be
            self.refused[host.name] = mask_known(err.reason)
            return []
        except Exception as err:  # noqa: BLE001 - a surprise on one host: that host fails, the run goes on
            self.refused[host.name] = mask_known(f"{type(err).__name__}: {err}")
            done = list(applier.results.values())
            seen = {r.id for r in done}
            return done + self._not_run(
                host,
                [st for st in states if st.id not in seen],
                f"not run: {type(err).__name__}: {mask_known(str(err))}",
            )
        if applier.lost is not None:
            self.lost[host.name] = mask_known(applier.lost.reason)
        elif applier.busy is not None:  # later phases must not change the host beside that change
            self.refused[host.name] = mask_known(applier.busy)
            self.busy.add(host.name)
        if applier.drifted is not None:
            self.drifted.add(host.name)
        return results

    def _serial(
        self, step: Phase, hosts: list[Any], states: dict[str, list[State[Any]]], pool: ThreadPoolExecutor
    ) -> None:
        """Apply a phase one host at a time; after a host fails, report the rest as not run. With a
        guard, every host is planned first (in parallel): a phase with nothing pending disturbs no
        host and does not even ask for an order."""
        guarded = step.guard is not None and not self.test
        previews: dict[str, list[Result]] = {}
        order = step.order(hosts, self.inventory) if step.order and step.guard is None else hosts
        if guarded:
            previews = dict(pool.map(lambda h: (h.name, self._one(h, states[h.name], True, _drop)), hosts))
            if step.order and any(_pending(previews[h.name]) for h in hosts):
                order = step.order(hosts, self.inventory)
        failed: str | None = None
        for host in order:
            if failed:
                why = (
                    f"not run: {failed} failed earlier in this one-host-at-a-time phase; stopped so the other "
                    "servers keep what they run"
                )
                self.report.results += self._not_run(host, states[host.name], why)
                continue
            if guarded:
                assert step.guard is not None
                results = self._guarded(step, host, states[host.name], previews[host.name])
            else:
                results = self._one(host, states[host.name], self.test)
            self.report.results += results
            if host.name in self.drifted:
                continue  # refused as it is, nothing changed there: the others go on as planned
            if host.name in self.lost | self.refused or any(r.failed for r in results):
                failed = host.name

    def _not_locked(self, phase: Phase) -> tuple[str, str] | None:
        """The host a phase acts on besides its own (the load balancer) this run does not hold the
        lock of, and a sentence saying so; None when it holds them all (or takes none: a dry-run)."""
        if self.test or phase.also_locks is None:
            return None
        for host in phase.also_locks(self.inventory):
            if host is None or host.name in self.locks:
                continue
            why = self.unlocked.get(host.name) or self.lost.get(host.name) or self.refused.get(host.name)
            return host.name, f"{host.name} could not be locked for this run ({why or 'no lock'})"
        return None

    def _not_run(self, host: Any, states: list[State[Any]], why: str) -> list[Result]:
        out = [
            Result(host.name, st.id, st.name, st.kind, Status.NOT_RUN, comment=why, idempotent=st.idempotent)
            for st in states
        ]
        for result in out:
            self.emit(result)
        return out

    def _guarded(self, phase: Phase, host: Any, states: list[State[Any]], planned: list[Result]) -> list[Result]:
        """Apply inside the phase's guard only when the host's plan has something pending (a no-op
        host is not disturbed: its plan is its result), and only when every host the phase acts on
        besides (the load balancer) is locked by this run: what the guard does there is never done
        beside another run."""
        guard = phase.guard
        assert guard is not None
        stopped = host.name in self.lost | self.refused
        if stopped or any(r.failed for r in planned) or not _pending(planned):
            for result in planned:  # nothing to change, or it cannot be planned: nothing guarded
                self.emit(result)
            return planned
        unlocked = self._not_locked(phase)
        if unlocked:
            return self._not_run(host, states, f"not run: {unlocked[1]}; nothing is changed here without it")
        steps: list[Result] = []  # what the guard itself did (e.g. drain before, ready after)

        def step(result: Result) -> None:
            self.emit(result)
            steps.append(result)

        results: list[Result] = []
        before = 0
        try:
            with guard(host, self.inventory, step):
                before = len(steps)
                results = self._one(host, states, False)
                if host.name in self.busy:  # the guard must not undo what still runs (put it back)
                    raise ChangeStillRunning(host.name, self.refused[host.name])
        except Exception as err:  # noqa: BLE001 - the guard (or its load balancer) failed: this host fails
            why = mask_known(str(err) if isinstance(err, FoobarOpsError) else f"{type(err).__name__}: {err}")
            if not results:  # the guard failed before the change: nothing was applied
                results = self._not_run(host, states, f"not run: {why}")
        return steps[:before] + results + steps[before:]


def _drop(result: Result) -> None:
    """Keep a preview's results out of the journal (they are emitted once the host's turn comes)."""


def _pending(results: list[Result]) -> bool:
    return any(r.pending for r in results)
