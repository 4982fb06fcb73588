"""Highstate: apply the states of every targeted host (hosts in parallel, states in order),
record every result in the journal as it comes, and return a Report."""
from __future__ import annotations

import importlib.util
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from .engine import HostRun
from .errors import FoobarOpsError
from .records import Journal
from .report import Report
from .result import Result
from .ssh import Remote

StatesFor = Callable[..., list]


class Phase:
    """One phase of a run: the states of every host, applied in parallel, or one host at a time
    (serial: a rolling change that stops at the first host that fails).

    states_for: function (host, inventory) -> list of states.
    serial: one host at a time; the hosts after a failed one are not run.
    guard: for a serial phase, a context manager factory guard(host, inventory, emit) wrapped around
        a host's apply when a plan (one round trip) shows it has changes pending, e.g. taking the
        host out of the load balancer; a host with nothing pending keeps its plan as its results.
    """

    def __init__(self, states_for: StatesFor, serial: bool = False, guard=None, order=None) -> None:
        self.states_for, self.serial, self.guard, self.order = states_for, serial, guard, order

    def __call__(self, host, inventory) -> list:
        return self.states_for(host, inventory)


def load_state_file(path: Path | str) -> StatesFor:
    """Load a Python file that defines `states(host, inventory) -> list[State]`.

    path: the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FoobarOpsError(f"state file {path} does not exist")
    spec = importlib.util.spec_from_file_location(f"foobar_states_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # noqa: BLE001 - a user's file: report, don't crash
        raise FoobarOpsError(f"state file {path}: {type(err).__name__}: {err}") from None
    if not callable(getattr(module, "states", None)):
        raise FoobarOpsError(f"state file {path} defines no function states(host, inventory)")
    return module.states


def apply(inventory, states_for: StatesFor | list[StatesFor], *, pattern: str | None = None,
          test: bool = False, journal: Journal | None = None, command: str = "python",
          parameters: dict | None = None, runbook: str | None = None, run_id: str | None = None,
          parallel: int = 10, on_result: Callable[[Result], None] | None = None,
          output_notebook: str | None = None) -> Report:
    """Apply states to the targeted hosts and return the Report; every result is journaled.

    inventory: the Inventory.
    states_for: function (host, inventory) -> list of states for that host; or a list of such
        functions, applied as phases (every host finishes a phase before the next one starts).
    pattern: host pattern (default: all hosts).
    test: dry-run: change nothing, report what would change.
    journal: where to record (default: the project's journal).
    command: what started the run (recorded).
    parameters: run parameters (recorded, secrets masked).
    runbook: the runbook path, when a runbook runs.
    run_id: use this run id (default: a new one).
    parallel: at most this many hosts at once.
    on_result: called with every Result as it comes.
    output_notebook: the runbook's output notebook, linked from the run from its start.
    """
    hosts = inventory.select(pattern)
    phases = [p if isinstance(p, Phase) else Phase(p) for p in
              (states_for if isinstance(states_for, (list, tuple)) else [states_for])]
    journal = journal or Journal()
    started = time.perf_counter()
    with journal.recording(command=command, inventory=inventory, test=test, parameters=parameters,
                           runbook=runbook, run_id=run_id, output_notebook=output_notebook) as run:
        # bad input (a template, a role, a secret) stops here, before any host is touched
        plans = [{h.name: list(phase(h, inventory)) for h in hosts} for phase in phases]
        report = Report(run.id, test, hosts=[h.name for h in hosts])

        def emit(result: Result) -> None:
            run.add(result)
            if on_result:
                on_result(result)

        _run_phases(inventory, hosts, phases, plans, report, emit, test, parallel)
    for result in report.results:  # e.g. the load balancer, drained on behalf of a web host
        if result.host not in report.hosts:
            report.hosts.append(result.host)
    report.results.sort(key=lambda r: report.hosts.index(r.host))
    report.duration_s = time.perf_counter() - started
    return report


def _run_phases(inventory, hosts, phases, plans, report: Report, emit, test: bool, parallel: int) -> None:
    """Run each phase over its hosts (in parallel, or one at a time), adding results to the report."""
    remotes = {h.name: Remote(h, inventory) for h in hosts}

    def one(host, plan) -> list[Result]:
        return HostRun(host, plan[host.name], remotes[host.name], test, emit).execute()

    try:
        with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(hosts) or 1))) as pool:
            for phase, plan in zip(phases, plans):
                todo = [h for h in hosts if plan[h.name] and h.name not in report.failed_hosts_unreachable]
                if phase.serial:
                    guarded = _guarded(phase, plan, inventory, remotes, emit) if phase.guard and not test else None
                    order = phase.order(todo, inventory) if phase.order and not test else todo
                    report.results += _serial(order, plan, guarded or one, emit)
                else:
                    for results in pool.map(lambda h: one(h, plan), todo):
                        report.results += results
    finally:
        for name, remote in remotes.items():
            report.round_trips[name] = remote.round_trips
            remote.close()


def _guarded(phase: Phase, plan: dict, inventory, remotes: dict, emit):
    """Return a per-host apply that plans first, and applies inside phase.guard only when
    something is pending (a no-op host costs one round trip and is not disturbed)."""
    def run(host, _plan) -> list[Result]:
        preview: list[Result] = []
        planned = HostRun(host, plan[host.name], remotes[host.name], True, preview.append).execute()
        if any(r.result is False for r in planned) or not any(r.pending for r in planned):
            for result in planned:  # nothing to change, or it cannot be planned: nothing drained
                emit(result)
            return planned
        results: list[Result] = []
        steps: list[Result] = []  # what the guard itself did (drain before, ready after)

        def step(result: Result) -> None:
            emit(result)
            steps.append(result)

        before = 0
        try:
            with phase.guard(host, inventory, step):
                before = len(steps)
                results = HostRun(host, plan[host.name], remotes[host.name], False, emit).execute()
        except FoobarOpsError as err:
            failed = Result(host.name, "__guard__", host.address, "host.guard", False, comment=str(err))
            emit(failed)
            steps.append(failed)
        return steps[:before] + results + steps[before:]
    return run


def _serial(hosts, plan, one, emit) -> list[Result]:
    """Apply a phase one host at a time; after a host fails, report the rest as not run."""
    out: list[Result] = []
    failed = None
    for host in hosts:
        if failed:
            skipped = Result(host.name, "__phase__", host.address, "host.phase", False, run=False,
                             comment=f"not run: {failed} failed earlier in this one-host-at-a-time phase; "
                                     "stopped so the other servers keep what they run")
            emit(skipped)
            out.append(skipped)
            continue
        results = one(host, plan)
        out += results
        if any(r.result is False for r in results):
            failed = host.name
    return out
