"""The run: made once per invocation and passed explicitly to everything that acts in it.

A run carries its id and its journal record, the connections to its hosts and the run locks
riding on them, how long it waits for another run's lock, how its results are emitted, and its
options (dry-run, parallelism). Phases, guards and prepare hooks receive it as an argument: what
a hook may touch is what the Run offers, and nothing travels through a context variable, a module
global or an environment variable.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .errors import FoobarOpsError
from .result import Result

if TYPE_CHECKING:
    from .ssh import Remote

__all__ = ["Run", "RunOptions", "check_lock_wait", "check_parallel", "new_run_id"]

Emit = Callable[[Result], None]


def new_run_id() -> str:
    """A new run id: when it started (local time, to the second) and six random hex digits."""
    return datetime.now().strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def check_lock_wait(value: Any, what: str = "lock_wait") -> float:
    """Return a lock wait in seconds (None: 0, refuse at once); a FoobarOpsError naming `what`
    when it is not a finite number of seconds from 0 to one day."""
    if value is None:
        return 0.0
    if isinstance(value, bool):
        raise FoobarOpsError(f"{what}={value!r} is not a number of seconds")
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise FoobarOpsError(f"{what}={value!r} is not a number of seconds") from None
    if not 0 <= seconds <= 86400:  # also refuses nan and inf
        raise FoobarOpsError(f"{what}={value!r} must be from 0 to 86400 seconds")
    return seconds


def check_parallel(value: Any, what: str = "parallel") -> int:
    """Return a fan-out cap (hosts at once); a FoobarOpsError naming `what` unless 1..256."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 256:
        raise FoobarOpsError(f"{what}={value!r} must be a whole number of hosts from 1 to 256")
    return value


@dataclass(frozen=True)
class RunOptions:
    """How a run goes.

    test: dry-run: change nothing, take no lock, report what would change.
    parallel: at most this many hosts at once.
    lock_wait: seconds to wait for another run holding a host's lock (0: refuse at once, naming it).
    """

    test: bool = False
    parallel: int = 10
    lock_wait: float = 0.0

    def __post_init__(self) -> None:
        check_parallel(self.parallel)
        check_lock_wait(self.lock_wait)


@dataclass
class Run:
    """One run of the engine.

    id: the run's id (the journal's and the locks' holder id).
    inventory: the Inventory.
    options: test, parallel, lock_wait.
    record: the journal's record of this run (add(result), errors).
    emit: where every result goes as soon as it is known (the journal, then the caller's callback).
    remotes: host name -> its connection, for every host the run acts on; opened lazily, closed
        when the run ends. remote() hands out the run's own connection to a host (e.g. the load
        balancer's runtime API in a rolling phase rides on the connection that holds its lock).
    locks: host name -> the run lock this run holds there (empty in a dry-run).
    opened: (host name, key) -> (output, exit code) of what the phases' hooks read from hosts,
        asked in each host's opening command (see engine Phase.reads).
    """

    id: str
    inventory: Any
    options: RunOptions
    record: Any = None
    emit: Emit = field(default=lambda result: None)
    remotes: dict[str, Remote] = field(default_factory=dict)
    locks: dict[str, Any] = field(default_factory=dict)
    opened: dict[tuple[str, str], tuple[str, int]] = field(default_factory=dict)

    @property
    def test(self) -> bool:
        return self.options.test

    @property
    def lock_wait(self) -> float:
        return self.options.lock_wait

    def read(self, host: str, key: str) -> str | None:
        """What a read of a phase (Phase.reads) printed on a host in the run's opening command;
        None when it was not asked or failed (the hook then asks the host itself)."""
        got = self.opened.get((host, key))
        return got[0] if got is not None and got[1] == 0 else None

    def remote(self, host: Any) -> Remote:
        """The run's connection to `host` (made now when the run has none yet; the run closes it
        when it ends, never the caller)."""
        found = self.remotes.get(host.name)
        if found is None:
            from .ssh import Remote  # paramiko: imported by the runs that connect

            found = self.remotes[host.name] = Remote(host, self.inventory)
        return found

    def close(self) -> None:
        """Close every connection of the run (its locks have been let go before)."""
        for remote in self.remotes.values():
            remote.close()
