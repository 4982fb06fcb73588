"""What a run produced: one Result per state per host, and one HostOutcome per host.

A state result has an explicit status; the Salt contract's `result` (True, False, None in test
mode when a change is pending) is derived from it. How a host fared as a whole (reached or not)
is a HostOutcome, kept apart from its state results.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from .shape import one_line, plural


class Status(StrEnum):
    """What happened to one state on one host."""

    OK = "ok"  # already as wanted (or nothing to do)
    CHANGED = "changed"  # the host was changed
    PENDING = "pending"  # test mode: a change would be made
    FAILED = "failed"  # the state could not be planned or applied
    NOT_RUN = "not_run"  # not attempted: a requisite failed, or an earlier host of a one-at-a-time phase


class Outcome(StrEnum):
    """How one host fared in a run."""

    OK = "ok"  # reached; every state ok, changed or pending
    FAILED = "failed"  # reached; a state failed or was not run
    UNREACHABLE = "unreachable"  # could not be reached (network, host key, login, sudo)
    SKIPPED = "skipped"  # not contacted: an earlier phase found it unreachable


@dataclass
class Result:
    """What a state did (or, in test mode, would do) on one host.

    host: inventory host name.
    id: the state's id, unique on its host.
    name: what the state manages (a path, a package, a service).
    state: the state function, e.g. "file.managed".
    status: ok, changed, pending, failed or not_run.
    changes: {"old": ..., "new": ...} of what changed or would change; {} when nothing.
    comment: one human sentence.
    diff: unified diff where content changes, else None.
    duration_ms: time spent on this state.
    idempotent: False for a command that runs every time (no guard).
    digest: a digest of the state's fact and plan (see engine.host.digest).
    """

    host: str
    id: str
    name: str
    state: str
    status: Status
    changes: dict[str, Any] = field(default_factory=dict)
    comment: str = ""
    diff: str | None = None
    duration_ms: float = 0.0
    idempotent: bool = True
    digest: str | None = None  # what the state saw and would do, for saved plans

    @classmethod
    def check(cls, host: str, id: str, name: str, state: str, ok: bool, comment: str, started: float) -> Result:
        """The result of a check a phase's hook makes around a change (a peer that must serve, a
        new connection that must get in): ok or failed, timed from `started` (time.perf_counter())."""
        return cls(
            host,
            id,
            name,
            state,
            Status.OK if ok else Status.FAILED,
            comment=comment,
            duration_ms=round((time.perf_counter() - started) * 1000, 2),
        )

    @property
    def result(self) -> bool | None:
        """The Salt contract: True (ok or changed), None (pending in test mode), False otherwise."""
        if self.status in (Status.OK, Status.CHANGED):
            return True
        return None if self.status is Status.PENDING else False

    @property
    def changed(self) -> bool:
        """True when the host was changed."""
        return self.status is Status.CHANGED

    @property
    def pending(self) -> bool:
        """True in test mode when the state would change something."""
        return self.status is Status.PENDING

    @property
    def failed(self) -> bool:
        """True when the state failed or was not run."""
        return self.status in (Status.FAILED, Status.NOT_RUN)

    def __str__(self) -> str:
        """One line: host, status, state and name, and the comment."""
        comment = f": {self.comment}" if self.comment else ""
        return one_line(f"{self.host} {self.status.value} {self.state} {self.name}{comment}")

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (with the derived Salt fields)."""
        out = asdict(self)
        out.update(status=self.status.value, result=self.result, changed=self.changed)
        return out


@dataclass
class HostOutcome:
    """How one host fared in a run.

    host: inventory host name.
    outcome: ok, failed, unreachable or skipped.
    error: why it was unreachable or skipped (None otherwise).
    round_trips: SSH commands sent to it.
    ssh_bytes: bytes the run's SSH connections to it moved, both ways (None: not measured).
    """

    host: str
    outcome: Outcome
    error: str | None = None
    round_trips: int = 0
    ssh_bytes: int | None = None

    def __str__(self) -> str:
        """One line: host, outcome, why (when unreachable or skipped) and round trips."""
        why = f": {self.error}" if self.error else ""
        return one_line(f"{self.host} {self.outcome.value}{why} ({plural(self.round_trips, 'round trip')})")

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict."""
        return {
            "host": self.host,
            "outcome": self.outcome.value,
            "error": self.error,
            "round_trips": self.round_trips,
            "ssh_bytes": self.ssh_bytes,
        }
