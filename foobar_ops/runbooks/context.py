"""What a runbook's first cell sets up: its parameters checked from their declarations, every
journaled run of the runbook linked to its output notebook, progress as it runs."""

from __future__ import annotations

import atexit
import os
from pathlib import Path
from typing import Any

from ..core.errors import RunbookNotFound, RunbookParameterError
from ..core.journal import Journal
from ..core.progress import Progress
from .parameters import Param, check_parameters


class RunbookContext:
    """A running runbook, as its cells see it.

    namespace: the notebook's globals() (right after its parameters cell).
    name: the runbook's name (default: from the output notebook's name). Given, the parameters
        are checked against the declarations in the runbook's source, as the runner checks them.

    Run by papermill (or any kernel) directly, not by the runner (no `run_id`), the run journals
    itself: a row `papermill NAME` with its parameters, who ran it, and how it ended (failed with
    the first cell that raised, else ok when the kernel exits).

    journal: the runbook's own journal: every run journaled through it is linked to the runbook
        and its output notebook (recorded() hands it to each operation).
    lock_wait: seconds an operation waits for another run's host lock (the runner's --wait, given
        to a runbook that declares a `lock_wait` parameter; default 0: refuse at once).
    """

    def __init__(self, namespace: dict[str, Any], name: str | None = None) -> None:
        given_out = namespace.get("output_notebook")
        stem = Path(given_out).stem if isinstance(given_out, str) and given_out else None
        name = name or (stem.rsplit("-", 3)[0] if stem else None)
        self.name = name or "notebook"
        self.journal = Journal(runbook=self.name, output_notebook=given_out if isinstance(given_out, str) else None)
        shell = namespace.get("get_ipython")
        interactive = callable(shell) and shell() is not None
        # run by the runner: a run_id it journaled as running (a run_id given by hand is not one)
        given_id = namespace.get("run_id")
        by_runner = isinstance(given_id, str) and (
            os.environ.get(RUNNER_RUN) == given_id or _running(self.journal, given_id)
        )
        try:
            self.params = check_parameters(namespace, params=_declared(name), direct=not by_runner)
        except RunbookParameterError as err:
            if interactive and not by_runner:  # papermill's own run: journaled as refused, as the runner's is
                refused = self.journal.start_run(command=f"papermill {self.name}", runbook=self.name)
                self.journal.finish_run(refused, "refused", str(err))
            raise
        self.run_id = self.params.get("run_id") if by_runner else None
        self.output_notebook = self.params.get("output_notebook")
        self.lock_wait = float(self.params.get("lock_wait") or 0.0)
        self.progress = Progress()
        self.own_run: str | None = None
        if not by_runner and interactive and callable(shell):
            self._journal_itself(shell())

    def _journal_itself(self, shell: Any) -> None:
        """Journal this run (started outside the runner) and how it ends."""
        shown = {k: v for k, v in self.params.items() if k not in ("run_id", "output_notebook")}
        inventory = None
        if isinstance(shown.get("inventory"), str):
            try:
                from ..core.inventory import load_inventory

                inventory = load_inventory(shown["inventory"])
            except Exception:  # noqa: BLE001 - the runbook's own cells say what is wrong with it
                inventory = None
        self.own_run = self.journal.start_run(
            command=f"papermill {self.name}", inventory=inventory, parameters=shown, runbook=self.name
        )
        self.run_id = self.own_run
        finished = False

        def after_cell(result: Any) -> None:
            nonlocal finished
            err = result.error_in_exec or result.error_before_exec
            if err is not None and not finished:
                finished = True
                outcome = "interrupted" if isinstance(err, KeyboardInterrupt) else "failed"
                why = (str(err).strip().splitlines() or [""])[0]
                self.journal.finish_run(self.own_run or "", outcome, f"{type(err).__name__}: {why}")

        def at_exit() -> None:
            nonlocal finished
            if not finished:
                finished = True
                self.journal.finish_run(self.own_run or "", "ok")

        shell.events.register("post_run_cell", after_cell)
        atexit.register(at_exit)

    def recorded(self, step: str) -> dict[str, Any]:
        """The keyword arguments that record an operation as this runbook's step, in the
        runbook's journal (linked to its output notebook)."""
        return {"command": f"runbook {self.name}: {step}", "journal": self.journal}

    def apply_plan(self, inventory: Any, plan: Any, step: str = "apply") -> Any:
        """Apply exactly a plan this runbook made and showed (plan.plan_file), as its step `step`:
        with its progress, its lock wait and its journal; return the Report.

        inventory: the Inventory.
        plan: the Report of fo.plan(..., save_plan=rb.path("plan.json")).
        """
        from ..ops import apply_plan

        return apply_plan(
            inventory, plan.plan_file, on_result=self.progress, lock_wait=self.lock_wait, **self.recorded(step)
        )

    def path(self, name: str) -> str:
        """Return a path for a file this run keeps beside its output notebook (e.g. its plan)."""
        base = Path(self.output_notebook) if self.output_notebook else Path.cwd() / f"{self.name}.ipynb"
        return str(base.with_name(f"{base.stem}.{name}"))


#: Set by the runner for the kernel it starts: the run id it journaled the run as.
RUNNER_RUN = "FOOBAR_OPS_RUNNER_RUN"


def _running(journal: Journal, run_id: str) -> bool:
    """Whether run_id is a run the journal holds as running (the runner's, which started it)."""
    try:
        found = journal.run(run_id)
    except Exception:  # noqa: BLE001 - a journal that cannot be read: the run is not the runner's
        return False
    return found is not None and found.get("status") == "running"


def _declared(name: str | None) -> list[Param] | None:
    """The parameters the runbook called name declares in its source; None when it is not found
    (then the notebook's own annotations are checked)."""
    if not name:
        return None
    from .catalog import find

    try:
        return find(name).parameters()
    except RunbookNotFound:
        return None


def runbook(namespace: dict[str, Any], name: str | None = None) -> RunbookContext:
    """Set up a runbook in its first cell: `rb = fo.runbook(globals())`.

    namespace: the notebook's globals().
    name: the runbook's name (default: from its output notebook); every runbook gives it, so that
        a run by papermill directly is checked and journaled as the runner's are.
    """
    return RunbookContext(namespace, name)
