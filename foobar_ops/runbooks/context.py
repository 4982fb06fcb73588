"""What a runbook's first cell sets up: its parameters checked from their declarations, every
journaled run of the runbook linked to its output notebook, progress as it runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.journal import Journal
from ..core.progress import Progress
from .parameters import check_parameters


class RunbookContext:
    """A running runbook, as its cells see it.

    namespace: the notebook's globals() (right after its parameters cell).
    name: the runbook's name (default: from the output notebook's name).

    journal: the runbook's own journal: every run journaled through it is linked to the runbook
        and its output notebook (recorded() hands it to each operation).
    lock_wait: seconds an operation waits for another run's host lock (the runner's --wait, given
        to a runbook that declares a `lock_wait` parameter; default 0: refuse at once).
    """

    def __init__(self, namespace: dict[str, Any], name: str | None = None) -> None:
        self.params = check_parameters(namespace)
        self.run_id = self.params.get("run_id")
        self.output_notebook = self.params.get("output_notebook")
        stem = Path(self.output_notebook).stem if self.output_notebook else None
        self.name = name or (stem.rsplit("-", 3)[0] if stem else "notebook")
        self.journal = Journal(runbook=self.name, output_notebook=self.output_notebook)
        self.lock_wait = float(self.params.get("lock_wait") or 0.0)
        self.progress = Progress()

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


def runbook(namespace: dict[str, Any], name: str | None = None) -> RunbookContext:
    """Set up a runbook in its first cell: `rb = fo.runbook(globals())`.

    namespace: the notebook's globals().
    name: the runbook's name (default: from its output notebook).
    """
    return RunbookContext(namespace, name)
