"""Deploy (or plan) the stack, apply ad-hoc states, roll the app back."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core import ssh
from ..core.inventory import Inventory
from ..core.result import Result
from ..core.run import check_lock_wait, check_parallel
from ..stack.topology import check_roles
from .changecontrol import approval_of as _approval
from .changecontrol import controlled as _controlled
from .common import inventory_of, journal_of, recorded

if TYPE_CHECKING:
    from ..core.journal import Journal
    from ..core.report import Report

# The engine, the roles and the journal (Jinja2, SQLAlchemy...) are imported inside each operation,
# after its hosts have begun connecting: a run reaches its first host before they are loaded.

OnResult = Callable[[Result], None]


def deploy(
    inventory: Inventory | str | Path,
    roles: Sequence[str] | None = None,
    *,
    hosts: str | None = None,
    test: bool = False,
    journal: Journal | str | Path | None = None,
    command: str = "python: deploy",
    runbook: str | None = None,
    output_notebook: str | None = None,
    parameters: dict[str, Any] | None = None,
    on_result: OnResult | None = None,
    parallel: int | None = None,
    save_plan: str | Path | None = None,
    expected: dict[str, dict[str, str]] | None = None,
    lock_wait: float | None = None,
    approval: dict[str, str] | None = None,
) -> Report:
    """Apply the inventory's roles to its hosts, phase by phase (the app one host at a time, each
    drained in the load balancer while it changes); return the Report.

    inventory: the Inventory, or its path.
    roles: only these roles (default: every role each host has).
    hosts: host pattern (default: all hosts).
    test: plan only: change nothing, show what would change with diffs.
    journal: the journal (default: the records folder's).
    command: what is recorded as having started the run.
    runbook, output_notebook: the runbook and its output notebook, when a runbook runs it.
    parameters: what is recorded as the run's parameters (default: roles, hosts, test).
    on_result: called with every result as it comes.
    parallel: at most this many hosts at once (default: the inventory's ssh.parallel).
    save_plan: with test, save the plan to this file (apply it later with apply_plan).
    expected: a saved plan's digests (see apply_plan).
    lock_wait: seconds to wait for another run holding a host's run lock (default 0: refuse at once,
        naming that run; a dry-run takes no lock).
    approval: the approved plan applied (set by apply_plan). Under change control
        (stack.change_control.require_approval) a change without one is refused: plan, have it
        approved, apply the plan.
    """
    roles = list(roles or [])
    check_roles(roles)
    inv = inventory_of(inventory)
    params = parameters if parameters is not None else {"roles": roles, "hosts": hosts, "test": test}
    _controlled(inv, test, approval, journal, command, params)
    with _connecting(inv, hosts, parallel, lock_wait) as remotes:
        from ..core.engine import apply
        from ..stack import roles as stack_roles

        report = apply(
            inv,
            stack_roles.phases(roles or None, inventory=inv, hosts=hosts),
            hosts=hosts,
            test=test,
            journal=journal,  # opened by the engine while it builds the states
            command=command,
            parameters=recorded(params),
            runbook=runbook,
            output_notebook=output_notebook,
            on_result=on_result,
            parallel=parallel,
            expected=expected,
            lock_wait=lock_wait,
            remotes=remotes,
            approval=approval,
        )
    _save(report, inv, {"roles": roles, "hosts": hosts, "states": None}, save_plan, journal)
    return report


@contextmanager
def _connecting(
    inventory: Inventory, hosts: str | None, parallel: int | None, lock_wait: float | None
) -> Iterator[dict[str, ssh.Remote]]:
    """Begin connecting to the run's hosts, once the run's options are known to be good (a bad one
    reaches no host); the engine uses these connections; they are closed when the block ends,
    however it ends (also when it ends before the engine got them)."""
    check_lock_wait(lock_wait)
    fan_out = check_parallel(parallel if parallel is not None else inventory.parallel)
    remotes = ssh.connecting(inventory.select(hosts), inventory, fan_out)
    try:
        yield remotes
    finally:
        for remote in remotes.values():
            remote.close()


def _save(
    report: Report,
    inventory: Inventory,
    selection: dict[str, Any],
    path: str | Path | None,
    journal: Journal | str | Path | None,
) -> None:
    """Save the plan of a test-mode run, and record its digest and author on the run; a plan that
    did not see every host as it is (a host unreachable, a state that failed) is not saved."""
    if path is None:
        return
    from ..core.errors import PlanFileError
    from ..core.savedplan import SavedPlan

    if not report.ok:
        bad = ", ".join(report.failed_hosts) or "a state failed"
        raise PlanFileError(f"plan not saved to {path}: the plan did not see every host as it is ({bad})")
    saved = SavedPlan.from_report(report, inventory, selection)
    saved.save(path)
    journal_of(journal).set_plan(report.run_id, saved.digest(), saved.planned_by)
    report.plan_file = str(path)


def apply_plan(
    inventory: Inventory | str | Path,
    plan_file: str | Path,
    *,
    journal: Journal | str | Path | None = None,
    command: str = "python: apply_plan",
    on_result: OnResult | None = None,
    parallel: int | None = None,
    runbook: str | None = None,
    output_notebook: str | None = None,
    lock_wait: float | None = None,
) -> Report:
    """Apply a saved plan: the same roles (or states file) on the same hosts, only where each host
    still matches what the plan saw; a host that drifted is refused (its failed result names the
    state) and the others change exactly as planned.

    Under change control (stack.change_control.require_approval) the plan must have been approved
    (approve_plan) by someone other than its author, as it is now: a plan without such an approval,
    or edited since, is refused (ApprovalError, journaled as a refused run) and nothing changes.
    The run records who planned, approved and applied it (planned_by, approved_by, user).

    inventory: the Inventory, or its path (it must be unchanged since the plan).
    plan_file: the plan (from deploy/apply_states with test and save_plan).
    journal: the journal (default: the records folder's).
    command: what is recorded as having started the run.
    on_result: called with every result as it comes.
    parallel: at most this many hosts at once (default: the inventory's ssh.parallel).
    runbook, output_notebook: the runbook and its output notebook, when a runbook runs it.
    lock_wait: seconds to wait for another run holding a host's run lock (default 0: refuse at once,
        naming that run; a dry-run takes no lock).
    """
    from ..core.savedplan import SavedPlan

    inv = inventory_of(inventory)
    saved = SavedPlan.load(plan_file)
    saved.check(inv)
    sel = saved.selection
    params = {"plan": str(plan_file), "planned_in": saved.run_id, **sel}
    approval = _approval(inv, saved, plan_file, journal, command, params)
    if sel.get("states"):
        return apply_states(
            inv,
            sel["states"],
            hosts=sel.get("hosts"),
            journal=journal,
            command=command,
            parallel=parallel,
            on_result=on_result,
            expected=saved.digests,
            lock_wait=lock_wait,
            approval=approval,
        )
    return deploy(
        inv,
        sel.get("roles") or None,
        hosts=sel.get("hosts"),
        journal=journal,
        command=command,
        parameters=params,
        on_result=on_result,
        parallel=parallel,
        expected=saved.digests,
        runbook=runbook,
        output_notebook=output_notebook,
        lock_wait=lock_wait,
        approval=approval,
    )


def plan(inventory: Inventory | str | Path, roles: Sequence[str] | None = None, **kw: Any) -> Report:
    """Return what a deploy would change, with diffs; nothing changes (deploy with test=True).

    inventory: the Inventory, or its path.
    roles: only these roles.
    kw: deploy's other arguments.
    """
    kw.setdefault("command", "python: plan")
    return deploy(inventory, roles, test=True, **kw)


def apply_states(
    inventory: Inventory | str | Path,
    state_file: str | Path,
    *,
    hosts: str | None = None,
    test: bool = False,
    journal: Journal | str | Path | None = None,
    command: str = "python: apply_states",
    parallel: int | None = None,
    on_result: OnResult | None = None,
    save_plan: str | Path | None = None,
    expected: dict[str, dict[str, str]] | None = None,
    lock_wait: float | None = None,
    approval: dict[str, str] | None = None,
) -> Report:
    """Apply the states that a Python file's `states(host, inventory)` returns; return the Report.

    inventory: the Inventory, or its path.
    state_file: the Python file.
    hosts: host pattern (default: all hosts).
    test: plan only.
    journal: the journal (default: the records folder's).
    command: what is recorded as having started the run.
    parallel: at most this many hosts at once (default: the inventory's ssh.parallel).
    on_result: called with every result as it comes.
    save_plan: with test, save the plan to this file (apply it later with apply_plan).
    expected: a saved plan's digests (see apply_plan).
    lock_wait: seconds to wait for another run holding a host's run lock (default 0: refuse at once,
        naming that run; a dry-run takes no lock).
    approval: the approved plan applied (set by apply_plan; see deploy).
    """
    inv = inventory_of(inventory)
    from ..core.engine import apply, load_state_file

    params = {"states": str(state_file), "hosts": hosts, "test": test}
    _controlled(inv, test, approval, journal, command, params)
    states = load_state_file(state_file)  # a bad file reaches no host
    with _connecting(inv, hosts, parallel, lock_wait) as remotes:
        report = apply(
            inv,
            states,
            hosts=hosts,
            test=test,
            journal=journal,  # opened by the engine while it builds the states
            command=command,
            parameters=params,
            parallel=parallel,
            on_result=on_result,
            expected=expected,
            approval=approval,
            lock_wait=lock_wait,
            remotes=remotes,
        )
    _save(report, inv, {"roles": [], "hosts": hosts, "states": str(Path(state_file).resolve())}, save_plan, journal)
    return report


def rollback(
    inventory: Inventory | str | Path,
    *,
    hosts: str = "role:app",
    journal: Journal | str | Path | None = None,
    command: str = "python: rollback",
    on_result: OnResult | None = None,
    lock_wait: float | None = None,
) -> Report:
    """Switch app hosts back to their previous release, one host at a time, each drained in the
    load balancer first and health-checked after; return the Report.

    inventory: the Inventory, or its path.
    hosts: host pattern (default: every app host).
    journal: the journal (default: the records folder's).
    command: what is recorded as having started the run.
    on_result: called with every result as it comes.
    lock_wait: seconds to wait for another run holding a host's run lock (default 0: refuse at once,
        naming that run; a dry-run takes no lock).
    """
    inv = inventory_of(inventory)
    with _connecting(inv, hosts, None, lock_wait) as remotes:
        from ..core.engine import apply
        from ..stack.roles.app import rollback_states
        from ..stack.rolling import rolling_phase

        return apply(
            inv,
            [rolling_phase("rollback", rollback_states)],
            hosts=hosts,
            journal=journal,  # opened by the engine while it builds the states
            command=command,
            parameters={"hosts": hosts},
            on_result=on_result,
            lock_wait=lock_wait,
            remotes=remotes,
        )
