"""What a runbook's first cell sets up: its parameters checked from their declarations, every
journaled run of the runbook linked to its output notebook, progress as it runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core import journal
from ..core.progress import Progress
from .parameters import check_parameters


class RunbookContext:
    """A running runbook, as its cells see it.

    namespace: the notebook's globals() (right after its parameters cell).
    name: the runbook's name (default: from the output notebook's name).
    """

    def __init__(self, namespace: dict[str, Any], name: str | None = None) -> None:
        self.params = check_parameters(namespace)
        self.run_id = self.params.get("run_id")
        self.output_notebook = self.params.get("output_notebook")
        stem = Path(self.output_notebook).stem if self.output_notebook else None
        self.name = name or (stem.rsplit("-", 3)[0] if stem else "notebook")
        journal.set_context(runbook=self.name, output_notebook=self.output_notebook)
        self.progress = Progress()

    def recorded(self, step: str) -> dict[str, Any]:
        """The keyword arguments that record an operation as this runbook's step."""
        return {"command": f"runbook {self.name}: {step}"}

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
