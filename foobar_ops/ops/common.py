"""What every operation shares: an inventory given as an object or a path, a journal."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.inventory import Inventory
from ..core.result import Result
from ..stack import load_inventory

if TYPE_CHECKING:
    from ..core.journal import Journal

OnResult = Callable[[Result], None]


def inventory_of(inventory: Inventory | str | Path) -> Inventory:
    """Return the Inventory itself, or load it from a path.

    inventory: an Inventory, or the path of its YAML file.
    """
    return inventory if isinstance(inventory, Inventory) else load_inventory(inventory)


def journal_of(journal: Journal | str | Path | None) -> Journal:
    """Return the Journal itself, or open it (None: the default journal).

    journal: a Journal, a path, or None.
    """
    from ..core.journal import Journal  # SQLAlchemy: imported when a record is first needed

    return journal if isinstance(journal, Journal) else Journal(journal)


def recorded(parameters: dict[str, Any]) -> dict[str, Any]:
    """Return parameters as the journal records them (paths as text)."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in parameters.items()}
