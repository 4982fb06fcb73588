"""The runbooks: where they are, what each does, and what parameters it takes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import FoobarOpsError, RunbookNotFound
from .parameters import RUNNER_SET, Param, declared

_CHECKOUT = Path(__file__).resolve().parents[2] / "runbooks"


def folder() -> Path:
    """Return the runbooks folder: $FOOBAR_OPS_RUNBOOKS, else the checkout's runbooks/, else ./runbooks."""
    named = os.environ.get("FOOBAR_OPS_RUNBOOKS")
    if named:
        return Path(named)
    return _CHECKOUT if _CHECKOUT.is_dir() else Path("runbooks")


@dataclass
class Runbook:
    """A runbook: a notebook kept as a paired text file (jupytext py:percent) and .ipynb.

    name: its name (the file's stem).
    path: its text file (or its .ipynb when it has none).
    """

    name: str
    path: Path

    def notebook(self) -> Any:
        """Return the notebook (NotebookNode), read from the text file when there is one."""
        import jupytext

        return jupytext.read(self.path)

    def parameters_cell(self) -> Any:
        cells = [c for c in self.notebook().cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        if len(cells) != 1:
            raise FoobarOpsError(f"runbook {self.name}: it needs exactly one cell tagged `parameters`")
        return cells[0]

    def parameters(self) -> list[Param]:
        """Return the parameters the runbook declares."""
        return declared(self.parameters_cell().source)

    def description(self) -> str:
        """Return the first line of the runbook's header (its first markdown cell)."""
        for cell in self.notebook().cells:
            if cell.cell_type == "markdown":
                return cell.source.strip().splitlines()[0].lstrip("# ").strip()
        return ""

    def as_dict(self) -> dict[str, Any]:
        """`foobar-ops runbook list --json` for this runbook; a runbook that cannot be read (bad
        notebook, no or a bad parameters cell) is listed with its name and an `error` saying why,
        so one broken runbook never hides the others."""
        try:
            return {
                "name": self.name,
                "description": self.description(),
                "parameters": [p.as_dict() for p in self.parameters() if p.name not in RUNNER_SET],
            }
        except Exception as err:  # noqa: BLE001 - whatever a broken file raises, it is named, not raised
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            return {"name": self.name, "description": "", "parameters": [], "error": f"{self.path.name}: {reason}"}


def all_runbooks() -> list[Runbook]:
    """Return every runbook in the runbooks folder, by name."""
    found: dict[str, Path] = {}
    for path in sorted(folder().glob("*.ipynb")):
        found[path.stem] = path
    for path in sorted(folder().glob("*.py")):
        found[path.stem] = path  # the text file is what a review reads: it wins
    return [Runbook(name, path) for name, path in sorted(found.items())]


def find(name: str) -> Runbook:
    """Return the runbook called name; RunbookNotFound lists the ones there are."""
    for runbook in all_runbooks():
        if runbook.name == name:
            return runbook
    names = ", ".join(r.name for r in all_runbooks()) or "none"
    raise RunbookNotFound(f"no runbook {name!r} in {folder()} (runbooks: {names})")
