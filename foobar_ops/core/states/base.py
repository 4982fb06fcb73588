"""What every state has: an id, requisites, the fact it needs, and a pure plan."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ..errors import StateError
from ..facts import Fact

__all__ = ["Plan", "State", "StateError", "norm_mode"]

T = TypeVar("T")


@dataclass
class Plan:
    """What a state must do to reach its wanted state, computed from facts without a host.

    changes: {"old": ..., "new": ...}; empty when the host is already as wanted.
    commands: shell lines, run as root in one script, that make the change.
    diff: unified diff of content changes, or None.
    comment: one sentence for the report.
    uploads: staged files the commands read: name -> bytes, or a function that returns them when the
        plan is applied (never in test mode), e.g. a copy of another host's data (the engine uploads
        them, mode 0600, sets $FOOBAR_STAGE to their folder and removes it after; commands name them
        with shell.staged(name)).
    error: set when the facts show the state cannot be reached (the state fails with it).
    """

    changes: dict[str, Any] = field(default_factory=dict)
    commands: list[str] = field(default_factory=list)
    diff: str | None = None
    comment: str = ""
    uploads: dict[str, bytes | Callable[[], bytes]] = field(default_factory=dict, repr=False)
    error: str | None = None

    @property
    def needed(self) -> bool:
        """True when something must change (and it can)."""
        return bool(self.changes) and self.error is None


class State(Generic[T]):
    """Base of every state: declare the wanted state; fact() and plan() do the rest.

    name: what the state manages.
    id: unique id on its host (used by requisites); defaults to "<kind>:<name>".
    require: ids that must succeed first (this state is not run if one fails).
    watch: ids that, when they changed, make this state react (a service reloads); implies require.
    onchanges: ids; the state runs only when one of them changed.
    """

    kind = "state"
    idempotent = True

    def __init__(
        self,
        name: object,
        *,
        id: str | None = None,
        require: Iterable[Any] | str = (),
        watch: Iterable[Any] | str = (),
        onchanges: Iterable[Any] | str = (),
    ) -> None:
        if not name:
            raise StateError(f"{self.kind}: a name is required")
        self.name = str(name)
        self.id = id or f"{self.kind}:{self.name}"
        self.require = _ids(require)
        self.watch = _ids(watch)
        self.onchanges = _ids(onchanges)

    def fact(self) -> Fact[T]:
        """Return the fact this state plans from (the engine gathers it)."""
        raise NotImplementedError

    def plan(self, fact: T) -> Plan:
        """Return what must change, given the fact's value (pure: no host needed).

        fact: the parsed value of fact().
        """
        raise NotImplementedError

    def steady(self, fact: T) -> Any:
        """Return what of a fact a saved plan is held to (see engine digest()): by default all of
        it; a state whose fact carries values that move on their own while nothing changes (a
        replica's position, its lag) returns the fact without them.

        fact: the parsed value of fact().
        """
        return fact

    def react(self, fact: T) -> tuple[str, list[str]] | None:
        """Return how this state reacts to a watched change: (verb, commands), e.g. ("reload",
        ["systemctl reload nginx.service"]); None when it does not react.

        fact: the state's latest fact value.
        """
        return None

    def __repr__(self) -> str:
        return f"<{self.kind} {self.id!r}>"


def _ids(value: Iterable[Any] | str) -> tuple[str, ...]:
    if isinstance(value, (str, State)):
        value = [value]
    return tuple(v.id if isinstance(v, State) else str(v) for v in value)


def norm_mode(mode: int | str | None) -> str | None:
    """Return a file mode as 4 octal digits ("0644"), or None.

    mode: an int, or a string of octal digits such as "644" or "0644".
    """
    if mode is None:
        return None
    if isinstance(mode, int):
        return f"{mode:04o}"
    text = str(mode).strip()
    if not text or any(c not in "01234567" for c in text) or len(text) > 4:
        raise StateError(f"file mode {mode!r} is not an octal mode such as '0644'")
    return f"{int(text, 8):04o}"
