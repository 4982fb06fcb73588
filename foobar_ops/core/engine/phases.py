"""Apply states across hosts: phases in order, hosts in parallel (or one at a time behind a guard),
every result journaled as it comes; returns the run's Report."""

from __future__ import annotations

import importlib.util
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConnectionFailed, CutOffChangeRunning, FoobarOpsError, SudoError
from ..report import Report
from ..result import HostOutcome, Outcome, Result, Status
from ..run import Run, RunOptions, check_lock_wait, new_run_id
from ..runlock import HostLock, RunLocked, locked
from ..secrets import mask_known
from ..ssh import Remote
from ..states.base import State
from .host import NOT_PLANNED, Emit, Gathered, HostApply, check_states, run_script
from .wire import HEAD, decode, gather_script, section, sections

if TYPE_CHECKING:
    from ..journal import Journal, RunRecord

StatesFor = Callable[[Any, Any], Sequence[State[Any]]]
#: guard(run, host, emit): a context manager around a host's apply in a one-at-a-time phase
Guard = Callable[[Run, Any, Emit], AbstractContextManager[None]]
#: order(hosts, inventory): the order a one-at-a-time phase takes its hosts in
Order = Callable[[list[Any], Any], list[Any]]
#: prepare(run, emit): run once before any phase of a run that has this phase (e.g. putting back
#: what a dead run left drained); its results are the run's; run.test says whether it is a dry-run
Prepare = Callable[[Run, Emit], None]
#: also_locks(inventory): hosts a phase acts on besides its own (e.g. the load balancer)
AlsoLocks = Callable[[Any], list[Any]]
#: reads(inventory): what a phase's hooks read from hosts, asked in each host's opening command:
#: (host, key, shell command); the hooks find the output in run.read(host name, key)
Reads = Callable[[Any], list[tuple[Any, str, str]]]


class Fate(StrEnum):
    """Where a host stands in a run (one record per host, see HostFate)."""

    GOING = "going"  # reached (or not asked yet): it goes on
    LOST = "lost"  # it cannot be reached
    REFUSED = "refused"  # reached, but it cannot act (sudo refused, a surprise)
    BUSY = "busy"  # a change of this run, cut off, still runs there: nothing more is done beside it
    DRIFTED = "drifted"  # refused as it no longer matches the saved plan; nothing changed there
    UNLOCKED = "unlocked"  # a host acted on for the others whose run lock could not be taken


@dataclass
class HostFate:
    """How a host stands in a run, and why."""

    fate: Fate = Fate.GOING
    reason: str | None = None

    @property
    def stopped(self) -> bool:
        """Nothing more is done on the host in this run."""
        return self.fate in (Fate.LOST, Fate.REFUSED, Fate.BUSY, Fate.UNLOCKED)


@dataclass
class Phase:
    """One phase of a run: the states of every host, applied in parallel, or one host at a time
    (serial: a rolling change that stops at the first host that fails).

    name: what the phase is, for reports.
    states_for: function (host, inventory) -> the host's states in this phase.
    serial: one host at a time; the hosts after a failed one are not run.
    guard: for a serial phase, guard(run, host, emit) is wrapped around a host's apply when its
        plan shows it has changes pending (e.g. taking the host out of the load balancer); a host
        with nothing pending keeps its plan as its results and is not disturbed. When the change was cut off
        and still runs on the host, CutOffChangeRunning is raised into it (it must not undo what
        it guards yet).
    order: for a serial phase, the order hosts are taken in.
    prepare: prepare(run, emit), run before the run's first phase (once, whatever phase names it).
    also_locks: the hosts this phase acts on besides its targets; the run locks them too.
    reads: what its hooks read from hosts (reads(inventory) -> [(host, key, command)]), asked in
        the command that opens each host (no round trip of their own); see Run.read.
    """

    name: str
    states_for: StatesFor
    serial: bool = False
    guard: Guard | None = None
    order: Order | None = None
    prepare: Prepare | None = None
    also_locks: AlsoLocks | None = None
    reads: Reads | None = None


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
    journal: Journal | str | Path | None = None,
    command: str = "python",
    parameters: dict[str, Any] | None = None,
    runbook: str | None = None,
    run_id: str | None = None,
    parallel: int | None = None,
    on_result: Callable[[Result], None] | None = None,
    output_notebook: str | None = None,
    expected: dict[str, dict[str, str]] | None = None,
    lock_wait: float | None = None,
    remotes: dict[str, Remote] | None = None,
    approval: dict[str, str] | None = None,
) -> Report:
    """Apply states to the targeted hosts and return the Report; every result is journaled.

    inventory: the Inventory.
    phases: a Phase, a function (host, inventory) -> states, or a list of those (applied in order:
        every host finishes a phase before the next one starts).
    hosts: host pattern (default: all hosts).
    test: dry-run: change nothing, report what would change.
    journal: where to record: a Journal, or its path or URL (default: the journal of the data
        folder).
    command: what started the run (recorded).
    parameters: run parameters (recorded, secrets masked).
    runbook: the runbook, when a runbook runs.
    run_id: use this run id (default: a new one).
    parallel: at most this many hosts at once (default: the inventory's ssh.parallel, else 10).
    on_result: called with every Result as it comes.
    output_notebook: the runbook's output notebook, linked from the run from its start.
    expected: a saved plan's digests (host -> state id -> digest): a host whose states no longer
        match it is refused (a failed result names the first state that drifted) and changes
        nothing; the others are applied as planned.
    lock_wait: seconds to wait for another run holding a host's lock (default 0: refuse at once).
        A run (not a dry-run) locks every host it targets, and the hosts its phases act on, for its
        whole life; when another run holds one, it changes nothing and fails with RunLocked
        naming that run.
    remotes: connections to (some of) the hosts made ahead for this run, e.g. already connecting
        (ssh.connecting); the run uses and closes them, however it ends.
    approval: the approved plan this run applies: planned_by, approved_by, plan_digest (recorded).

    Each host is asked once for the facts of every phase, in the same command that takes its run
    lock; a later phase plans from them while nothing in the run has changed yet, and gathers
    afresh once something has.
    """
    # bad options are refused before anything is recorded or any host asked
    options = RunOptions(test, parallel if parallel is not None else inventory.parallel, check_lock_wait(lock_wait))
    targets = inventory.select(hosts)
    listed = phases if isinstance(phases, (list, tuple)) else [phases]
    steps = [p if isinstance(p, Phase) else Phase(f"phase {i + 1}", p) for i, p in enumerate(listed)]
    started = time.perf_counter()
    early = dict(remotes or {})
    run_id = run_id or new_run_id()
    with ExitStack() as given:
        # connections made ahead are closed however the run ends, also when it ends before its hosts
        given.callback(_close_all, early)
        # the journal is opened and the run's start recorded while the states are built (and the
        # connections are made); no command reaches a host before the start is on record: a
        # journal that cannot record it stops the run there; see _JournalStart
        starting = _JournalStart(
            journal,
            command=command,
            inventory=inventory,
            test=test,
            parameters=parameters,
            runbook=runbook,
            run_id=run_id,
            output_notebook=output_notebook,
            approval=approval,
        )
        record: RunRecord | None = None
        try:
            # bad input (a template, a role, a secret, a duplicate state id) stops here, before any
            # command reaches a host; the run is journaled as an error with the reason
            declared = [{h.name: list(step.states_for(h, inventory)) for h in targets} for step in steps]
            for per_host in declared:
                for name, states in per_host.items():
                    check_states(name, states)
            record = starting.record()
            report = Report(run_id, test, hosts=[h.name for h in targets])
            run = Run(run_id, inventory, options, record, remotes=early)
            runner = _Runner(run, targets, report, on_result)
            runner.expected = expected
            with ExitStack() as held:
                runner.open(steps, declared, held, command)
                runner.run(steps, declared)
            report.order_hosts()
            record.add_outcomes(list(report.outcomes.values()))
            report.journal_errors = list(record.errors)
        except BaseException as err:
            record = record or starting.record_or_none()
            if record is None:  # the journal could not record the run: that is the error to show
                raise starting.error or err from None
            record.finish("error", f"{type(err).__name__}: {err}")
            raise
        record.finish("failed" if record.failed or record.errors else "ok")
    report.duration_s = time.perf_counter() - started
    return report


class _JournalStart:
    """Opens the journal and records a run's start on a thread of its own, while the run builds
    its states and its connections are made (SQLAlchemy's import, the journal's file and its first
    write go on side by side with them). The run waits for it (record()) before any command
    reaches a host."""

    def __init__(self, journal: Any, **start: Any) -> None:
        self.error: BaseException | None = None
        self._record: RunRecord | None = None
        self._thread = threading.Thread(target=self._begin, args=(journal, start), name="journal start", daemon=True)
        self._thread.start()

    def _begin(self, journal: Any, start: dict[str, Any]) -> None:
        try:
            from ..journal import Journal  # SQLAlchemy: imported here, on this thread

            opened = journal if isinstance(journal, Journal) else Journal(journal)
            self._record = opened.begin(**start)
        except BaseException as err:  # noqa: BLE001 - raised in the run's own thread by record()
            self.error = err

    def record(self) -> RunRecord:
        """The run's record, once its start is written; raises why the journal could not write it."""
        self._thread.join()
        if self.error is not None:
            raise self.error
        assert self._record is not None
        return self._record

    def record_or_none(self) -> RunRecord | None:
        """The run's record, or None when the journal could not start it (see error)."""
        self._thread.join()
        return self._record


def _close_all(remotes: dict[str, Remote]) -> None:
    for remote in list(remotes.values()):
        remote.close()


class _Runner:
    """Runs phases over hosts and fills the report."""

    def __init__(self, run: Run, hosts: list[Any], report: Report, on_result: Callable[[Result], None] | None) -> None:
        self.run_, self.inventory, self.hosts, self.report = run, run.inventory, hosts, report
        self.test = run.test
        self.on_result = on_result
        self.parallel = max(1, min(run.options.parallel, len(hosts) or 1))
        self.remotes = run.remotes
        for h in hosts:
            run.remote(h)
        self.fates: dict[str, HostFate] = {h.name: HostFate() for h in hosts}
        self.expected: dict[str, dict[str, str]] | None = None  # a saved plan's digests
        self.locks: dict[str, HostLock] = run.locks
        #: host -> the sections of the run's opening gather (every phase's facts), and where each
        #: phase's states start in it
        self.gathered: dict[str, Gathered] = {}
        self.offsets: dict[str, list[int]] = {}
        self.read_keys: dict[str, list[str]] = {}  # host -> the keys of its reads, in order (tags r0, r1, ...)
        self.changed = False  # something in this run changed (or failed part-way): gather afresh
        self.changed_before = False  # ... before the phase at hand began
        run.emit = self.emit

    def emit(self, result: Result) -> None:
        if result.status in (Status.CHANGED, Status.FAILED) and not self.test:
            self.changed = True
        self.run_.record.add(result)  # never raises: what the journal refuses is kept aside and reported
        if self.on_result:
            try:
                self.on_result(result)
            except Exception as err:  # noqa: BLE001 - a display callback's bug must not stop a change
                self.run_.record.errors.append(
                    f"on_result callback failed: {type(err).__name__}: {mask_known(str(err))}"
                )

    def fate(self, name: str) -> HostFate:
        return self.fates.setdefault(name, HostFate())

    def _stop(self, name: str, fate: Fate, reason: str) -> None:
        record = self.fate(name)
        if not record.stopped:
            record.fate, record.reason = fate, mask_known(reason)

    def open(
        self, steps: list[Phase], declared: list[dict[str, list[State[Any]]]], held: ExitStack, command: str
    ) -> None:
        """Ask each host, in one command, for the facts of every phase; in a run that changes
        hosts, the same command takes the host's run lock first (and holds it for the run), on
        every targeted host and every host the phases act on besides (e.g. the load balancer). A
        host locked by another run refuses the whole run (RunLocked: nothing is changed
        anywhere); a host that cannot be reached or refuses sudo is noted as such, and the others
        go on as they would without it."""
        scripts: dict[str, str] = {}
        extra: dict[str, Any] = {}
        reads: dict[str, list[tuple[str, str]]] = {}  # host -> (key, command) the hooks read
        for step in steps:
            for host in step.also_locks(self.inventory) if step.also_locks and not self.test else []:
                if host is not None and host.name not in self.remotes:
                    extra[host.name] = host
            for host, key, asking in step.reads(self.inventory) if step.reads else []:
                if host is not None and (key, asking) not in reads.get(host.name, []):
                    reads.setdefault(host.name, []).append((key, asking))
                    if host.name not in self.remotes and not self.test:
                        extra[host.name] = host
        for host in [*self.hosts, *extra.values()]:
            flat: list[State[Any]] = []
            self.offsets[host.name] = []
            for per_host in declared:
                self.offsets[host.name].append(len(flat))
                flat += per_host.get(host.name, [])
            self.read_keys[host.name] = [key for key, _ in reads.get(host.name, [])]
            if flat or reads.get(host.name):
                commands = [st.fact().command() for st in flat]
                script = gather_script(commands, any(st.watch for st in flat))
                asked = reads.get(host.name, [])
                script += "".join(section(f"r{i}", line) for i, (_, line) in enumerate(asked))
                scripts[host.name] = HEAD + script
        if self.test:
            readers = [h for h in self.inventory.hosts.values() if h.name in reads and h.name not in self.remotes]
            with ThreadPoolExecutor(max_workers=self.parallel) as pool:
                list(pool.map(lambda h: self._open_dry(h, scripts.get(h.name)), [*self.hosts, *readers]))
            held.callback(self._close)
            return
        for host in extra.values():
            self.run_.remote(host)
        held.callback(self._close)  # after the locks are let go (a callback runs after what follows)
        outcomes = held.enter_context(
            locked(list(self.remotes.values()), self.run_.id, command, self.run_.lock_wait, scripts, self.parallel)
        )
        busy = [err for err in outcomes.values() if isinstance(err, RunLocked)]
        if busy:
            raise busy[0]
        for name, outcome in outcomes.items():
            if isinstance(outcome, HostLock):
                self.locks[name] = outcome
                self.remotes[name].relock = outcome.reacquire  # a lost connection took the lock with it
                if outcome.took_over or outcome.stale:
                    self._lock_note(name, outcome)
                if outcome.opened is not None:
                    self._take_opened(name, outcome.opened)
            elif name not in extra:
                if isinstance(outcome, ConnectionFailed):
                    self._stop(name, Fate.LOST, outcome.reason)
                else:
                    self._stop(name, Fate.REFUSED, str(outcome).removeprefix(f"{name}: "))
            else:  # a host acted on for the others: the phases that need it refuse to go on
                self._stop(name, Fate.UNLOCKED, str(outcome).removeprefix(f"{name}: "))

    def _take_opened(self, name: str, raw: str) -> None:
        """Keep what a host's opening gather printed (packed: decoded here, secrets masked)."""
        text, code, _ = decode(raw, True)
        parts = sections(mask_known(text))
        said = "was cut short" if code is None else f"exited {code}"
        why = "" if code == 0 else f" (the opening command {said})"
        self._keep(name, Gathered(parts, 0, why))

    def _keep(self, name: str, got: Gathered) -> None:
        """Keep a host's opening gather: its facts for the phases, its reads for the hooks."""
        self.gathered[name] = got
        for i, key in enumerate(self.read_keys.get(name, [])):
            if f"r{i}" in got.parts:
                self.run_.opened[(name, key)] = got.parts[f"r{i}"]

    def _open_dry(self, host: Any, script: str | None) -> None:
        """A dry-run's opening command on one host: every phase's facts (no lock)."""
        if script is None:
            return
        try:
            out = run_script(self.run_.remote(host), host, script)
        except ConnectionFailed as err:
            self._stop(host.name, Fate.LOST, err.reason)
            return
        except SudoError as err:  # reached, but it cannot act as root: nothing will be done
            self._stop(host.name, Fate.REFUSED, err.reason)
            return
        except Exception as err:  # noqa: BLE001 - a surprise on one host: that host fails, the run goes on
            self._stop(host.name, Fate.REFUSED, f"{type(err).__name__}: {err}")
            return
        why = "" if out.ok else f" ({out.error}: {mask_known((out.stderr or out.stdout).strip()[-300:])})"
        self._keep(host.name, Gathered(sections(out.stdout), 0, why))

    def _close(self) -> None:
        """End of the run: close every connection; each host's outcome, with its byte count
        complete, goes into the report."""
        try:
            self.run_.close()
        finally:
            for host in self.hosts:
                self.report.outcomes[host.name] = self._outcome(host.name, self.remotes[host.name])

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
        self._prepare(steps)
        with ThreadPoolExecutor(max_workers=self.parallel) as pool:
            for index, (step, states) in enumerate(zip(steps, declared, strict=True)):
                self.changed_before = self.changed
                todo = [h for h in self.hosts if states[h.name] and not self.fate(h.name).stopped]
                if step.serial:
                    self._serial(step, index, todo, states, pool)
                else:
                    self._parallel(pool, index, todo, states)

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
            step.prepare(self.run_, keep)

    def _parallel(
        self, pool: ThreadPoolExecutor, index: int, hosts: list[Any], states: dict[str, list[State[Any]]]
    ) -> None:
        """Apply a phase on every host at once."""
        for results in pool.map(lambda h: self._one(h, index, states[h.name], self.test), hosts):
            self.report.results += results

    def _outcome(self, name: str, remote: Any) -> HostOutcome:
        trips, wire_bytes = remote.round_trips, remote.ssh_bytes
        fate = self.fate(name)
        if fate.fate is Fate.LOST:
            return HostOutcome(name, Outcome.UNREACHABLE, fate.reason, trips, wire_bytes)
        if fate.stopped:
            return HostOutcome(name, Outcome.FAILED, fate.reason, trips, wire_bytes)
        bad = any(r.failed for r in self.report.results if r.host == name)
        return HostOutcome(name, Outcome.FAILED if bad else Outcome.OK, None, trips, wire_bytes)

    def _facts(self, host: Any, index: int, serial: bool, fresh: bool) -> Gathered | None:
        """The facts of a phase's states from the run's opening gather: in a dry-run always; in a
        run while nothing has changed yet (before the phase began, for the hosts of a parallel
        phase, which go at once; before the host's turn, in a one-at-a-time phase); None: gather
        afresh."""
        got = self.gathered.get(host.name)
        changed = self.changed if serial else self.changed_before
        if got is None or fresh or (changed and not self.test):
            return None
        return Gathered(got.parts, self.offsets[host.name][index], got.why)

    def _opening(self, host: Any, index: int) -> Gathered | None:
        """A phase's facts as the run's opening gather saw them, before anything changed."""
        got = self.gathered.get(host.name)
        return None if got is None else Gathered(got.parts, self.offsets[host.name][index], got.why)

    def _one(
        self,
        host: Any,
        index: int,
        states: list[State[Any]],
        test: bool,
        emit: Emit | None = None,
        fresh: bool = False,
        serial: bool = False,
    ) -> list[Result]:
        """Apply (or plan) one host's states; a host that cannot be reached is noted as lost."""
        expected = None
        if self.expected is not None:
            saved = self.expected.get(host.name, {})
            expected = {st.id: saved.get(st.id, NOT_PLANNED) for st in states}
        applier = HostApply(
            host,
            states,
            self.remotes[host.name],
            test,
            emit or self.emit,
            expected,
            gathered=self._facts(host, index, serial, fresh),
            opening=self._opening(host, index) if expected is not None else None,
        )
        try:
            results = applier.execute()
        except ConnectionFailed as err:
            self._stop(host.name, Fate.LOST, err.reason)
            return []
        except SudoError as err:  # reached, but it cannot act as root: nothing was done, nothing will be
            self._stop(host.name, Fate.REFUSED, err.reason)
            return []
        except Exception as err:  # noqa: BLE001 - a surprise on one host: that host fails, the run goes on
            self._stop(host.name, Fate.REFUSED, f"{type(err).__name__}: {err}")
            done = list(applier.results.values())
            seen = {r.id for r in done}
            return done + self._not_run(
                host,
                [st for st in states if st.id not in seen],
                f"not run: {type(err).__name__}: {mask_known(str(err))}",
            )
        finally:
            self.run_.record.flush()  # the host's "ok" results, held to be journaled in one write
        if applier.lost is not None:
            self._stop(host.name, Fate.LOST, applier.lost.reason)
        elif applier.busy is not None:  # later phases must not change the host beside that change
            self._stop(host.name, Fate.BUSY, applier.busy)
        if applier.drifted is not None and not self.fate(host.name).stopped:
            record = self.fate(host.name)
            record.fate, record.reason = Fate.DRIFTED, applier.drifted
        return results

    def _serial(
        self,
        step: Phase,
        index: int,
        hosts: list[Any],
        states: dict[str, list[State[Any]]],
        pool: ThreadPoolExecutor,
    ) -> None:
        """Apply a phase one host at a time; after a host fails, report the rest as not run. With a
        guard, every host is planned first (in parallel): a phase with nothing pending disturbs no
        host and does not even ask for an order."""
        guarded = step.guard is not None and not self.test
        previews: dict[str, list[Result]] = {}
        order = step.order(hosts, self.inventory) if step.order and step.guard is None else hosts
        if guarded:
            previews = dict(
                pool.map(lambda h: (h.name, self._one(h, index, states[h.name], True, _drop, serial=True)), hosts)
            )
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
                results = self._guarded(step, index, host, states[host.name], previews[host.name])
            else:
                results = self._one(host, index, states[host.name], self.test, serial=True)
            self.report.results += results
            fate = self.fate(host.name)
            if fate.fate is Fate.DRIFTED:
                continue  # refused as it is, nothing changed there: the others go on as planned
            if fate.stopped or any(r.failed for r in results):
                failed = host.name

    def _not_locked(self, phase: Phase) -> tuple[str, str] | None:
        """The host a phase acts on besides its own (the load balancer) this run does not hold the
        lock of, and a sentence saying so; None when it holds them all (or takes none: a dry-run)."""
        if self.test or phase.also_locks is None:
            return None
        for host in phase.also_locks(self.inventory):
            if host is None or host.name in self.locks:
                continue
            why = self.fates[host.name].reason if host.name in self.fates else None
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

    def _guarded(
        self, phase: Phase, index: int, host: Any, states: list[State[Any]], planned: list[Result]
    ) -> list[Result]:
        """Apply inside the phase's guard only when the host's plan has something pending (a no-op
        host is not disturbed: its plan is its result), and only when every host the phase acts on
        besides (the load balancer) is locked by this run: what the guard does there is never done
        beside another run."""
        guard = phase.guard
        assert guard is not None
        stopped = self.fate(host.name).stopped
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
            with guard(self.run_, host, step):
                before = len(steps)
                results = self._one(host, index, states, False, fresh=True)  # about to change: ask afresh
                fate = self.fate(host.name)
                if fate.fate is Fate.BUSY:  # the guard must not undo what still runs (put it back)
                    raise CutOffChangeRunning(host.name, fate.reason or "")
        except Exception as err:  # noqa: BLE001 - the guard (or its load balancer) failed: this host fails
            why = mask_known(str(err) if isinstance(err, FoobarOpsError) else f"{type(err).__name__}: {err}")
            if not results:  # the guard failed before the change: nothing was applied
                results = self._not_run(host, states, f"not run: {why}")
        return steps[:before] + results + steps[before:]


def _drop(result: Result) -> None:
    """Keep a preview's results out of the journal (they are emitted once the host's turn comes)."""


def _pending(results: list[Result]) -> bool:
    return any(r.pending for r in results)
