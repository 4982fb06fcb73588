"""What a role is: a name, the phase it is applied in, and a pure function from a host (and the
run's inputs) to its states."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ...core.states import State
from .inputs import StackInputs

#: The stack's Jinja2 templates.
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


class StatesFor(Protocol):
    """A role's states: (host, inventory, inputs) -> the host's states for the role.

    inputs: the run's StackInputs (made once per run, see inputs.inputs_for); None: the role makes
        what it needs for this one call (a caller that made none).
    """

    def __call__(self, host: Any, inventory: Any, inputs: StackInputs | None = None, /) -> Sequence[State[Any]]: ...


@dataclass(frozen=True)
class Role:
    """A role a host can have in the inventory.

    name: the name hosts list under `roles`.
    phase: the phase it is applied in (a name from roles.PHASES).
    states: function (host, inventory, inputs=None) -> the host's states for this role (pure: it builds
        and reads no wheel when given the run's inputs).
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
