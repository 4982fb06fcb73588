"""Runbooks on a timer: `foobar-ops runbook schedule NAME --every 1h [-p NAME VALUE ...]` installs a
systemd timer on the scheduler host (stack.scheduler) that runs the runbook there, with its
parameters checked here first, as the runner checks them; `runbook unschedule NAME` removes it;
`runbook schedules` shows each one's next and last run and how that ended (stack/scheduler.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import FoobarOpsError, ScheduleError
from ..ops.common import inventory_of, journal_of
from ..stack import scheduler
from .catalog import find, folder
from .parameters import RUNNER_SET, resolve

if TYPE_CHECKING:
    from ..core.inventory import Inventory
    from ..core.journal import Journal
    from ..core.report import Report

#: a runbook's name as a schedule takes it: it names units and files, and `schedule-NAME` is the
#: identity its runs are journaled as (at most 64 characters)
_NAME = re.compile(r"[a-z0-9][a-z0-9_]{0,54}")
_SPAN = re.compile(r"[1-9][0-9]{0,5}(s|m|min|h|d)")


def _check(name: str, every: str, timeout: str) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ScheduleError(f"runbook name {name!r}: lowercase letters, digits and '_' (at most 55)")
    for flag, value in (("--every", every), ("--timeout", timeout)):
        if not isinstance(value, str) or not _SPAN.fullmatch(value):
            raise ScheduleError(f"{flag} {value!r}: give a time span such as 30s, 15m, 1h or 1d")


def schedule(
    inventory: Inventory | str | Path,
    name: str,
    *,
    every: str = "1h",
    texts: dict[str, str] | None = None,
    given: dict[str, Any] | None = None,
    timeout: str = "30m",
    journal: Journal | str | Path | None = None,
    command: str | None = None,
) -> Report:
    """Run a runbook every so often on the scheduler host; return the apply's Report (journaled).

    inventory: the Inventory, or its path (copied to the scheduler, with the files it names).
    name: the runbook.
    every: how often (30s, 15m, 1h, 1d); the first run a few seconds after.
    texts, given: its parameters, as -p text or typed values: checked against its declarations now
        (an unknown or missing one is refused here, naming it, and nothing is installed).
    timeout: how long a run may take; one that takes longer is stopped, and counts as failed.
    journal: the journal of this machine (the scheduled runs keep theirs on the scheduler).
    command: what is recorded as having started it.
    """
    from ..stack.build import build_runner

    _check(name, every, timeout)
    inv = inventory_of(inventory)
    runbook = find(name)
    values = resolve(runbook.parameters(), {**(given or {}), "inventory": scheduler.INVENTORY}, texts or {})
    chosen = {k: v for k, v in values.items() if k in {**(texts or {}), **(given or {})} and k not in RUNNER_SET}
    chosen.pop("inventory", None)
    host = scheduler.scheduler_host(inv)
    scheduler.carried(inv)  # a secret the scheduler cannot read is refused before anything is built
    build = build_runner()
    books = {p.name: p.read_text() for p in sorted(folder().glob("*.py"))}
    states = [
        *scheduler.runner_states(inv, build, books),
        *scheduler.schedule_states(name, every, timeout, chosen, build.release, inv.sha256),
    ]
    params = {"runbook": name, "every": every, "timeout": timeout, "parameters": chosen}
    return _on_scheduler(inv, host, states, journal, command or f"python: runbook schedule {name}", params)


def unschedule(
    inventory: Inventory | str | Path,
    name: str,
    *,
    journal: Journal | str | Path | None = None,
    command: str | None = None,
) -> Report:
    """Stop and remove a runbook's timer on the scheduler host (and its metric); return the Report."""
    _check(name, "1h", "1h")
    inv = inventory_of(inventory)
    states = scheduler.unschedule_states(name)
    command = command or f"python: runbook unschedule {name}"
    return _on_scheduler(inv, scheduler.scheduler_host(inv), states, journal, command, {"runbook": name})


def _on_scheduler(
    inv: Inventory, host: Any, states: list[Any], journal: Journal | str | Path | None, command: str, params: dict
) -> Report:
    """Apply states to the scheduler host alone, journaled as `command` with `params`."""
    from ..core.engine import apply

    return apply(
        inv, lambda h, i: states, hosts=host.name, journal=journal_of(journal), command=command, parameters=params
    )


def schedules(
    inventory: Inventory | str | Path, *, journal: Journal | str | Path | None = None
) -> list[dict[str, Any]]:
    """Return every runbook scheduled on the scheduler host: runbook, every, timeout, parameters,
    next (the timer's next run), last (the last run: started, finished, status, run_id, its output
    notebook there, and systemd's result), in one round trip. The scheduled runs that ended since
    are added to this machine's journal (`records list` shows them, as `schedule-NAME`).

    inventory: the Inventory, or its path.
    journal: this machine's journal (default: the records folder's).
    """
    from ..core.shell import cmd
    from ..core.ssh import Remote

    inv = inventory_of(inventory)
    host = scheduler.scheduler_host(inv)
    with Remote(host, inv) as remote:
        script = f"test -x {scheduler.STATUS} || exit 0; exec {scheduler.STATUS}"
        done = remote.run(cmd("sh", "-c", script), sudo=host.user != "root", timeout=60)
    if done.exit_code != 0:
        raise FoobarOpsError(f"{host.name}: cannot read the schedules: {(done.stderr or done.stdout).strip()[:300]}")
    doc = json.loads(done.stdout or "{}")
    records = doc.get("records") or {}
    if records.get("runs"):
        journal_of(journal).import_runs(records["runs"], records.get("results") or [], records.get("hosts") or [])
    out = []
    for item in doc.get("schedules") or []:
        timer, service, last = item.get("timer") or {}, item.get("service") or {}, item.get("last") or {}
        out.append(
            {
                "runbook": item.get("runbook"),
                "every": item.get("every"),
                "timeout": item.get("timeout"),
                "parameters": item.get("parameters"),
                "host": host.name,
                "active": timer.get("ActiveState") == "active",
                "next": item.get("next"),
                "last_started": last.get("started") or service.get("ExecMainStartTimestamp") or None,
                "last_finished": last.get("finished") or service.get("ExecMainExitTimestamp") or None,
                "last_outcome": _outcome(last, service),
                "last_run_id": last.get("run_id"),
                "last_notebook": last.get("output_notebook"),
                "last_error": last.get("error"),
                "systemd_result": service.get("Result"),
            }
        )
    return out


def _outcome(last: dict[str, Any], service: dict[str, Any]) -> str | None:
    """How the last run ended: systemd's word when it stopped the run (timeout), else the journal's."""
    if service.get("Result") == "timeout":
        return "timeout"
    if service.get("ActiveState") == "activating":
        return "running"
    return last.get("status") or (None if not service.get("ExecMainStartTimestamp") else service.get("Result"))
