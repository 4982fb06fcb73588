"""What a role is: a name, the phase it is applied in, and a function from a host to its states."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...core.states import State

#: The stack's Jinja2 templates.
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

StatesFor = Callable[[Any, Any], Sequence[State[Any]]]


@dataclass(frozen=True)
class Role:
    """A role a host can have in the inventory.

    name: the name hosts list under `roles`.
    phase: the phase it is applied in (a name from roles.PHASES).
    states: function (host, inventory) -> the host's states for this role.
    summary: one line for listings.
    """

    name: str
    phase: str
    states: StatesFor
    summary: str


def template(name: str) -> Path:
    """Return the path of one of the stack's templates.

    name: its file name, e.g. "haproxy.cfg.j2".
    """
    return TEMPLATES / name
