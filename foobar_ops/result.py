"""The result of one state on one host, in the SaltStack contract."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Result:
    """What a state did (or, in test mode, would do) on one host.

    host: inventory host name.
    id: the state's id, unique on its host.
    name: what the state manages (a path, a package, a service).
    state: the state function, e.g. "file.managed".
    result: True (ok), False (failed), None (test mode: a change is pending; or not run).
    changed: True when the host was changed (never in test mode).
    changes: {"old": ..., "new": ...} of what changed or would change; {} when nothing.
    comment: one human sentence.
    diff: unified diff where content changes, else None.
    duration_ms: time spent on this state.
    run: False when the state was not run (a requisite failed).
    """

    host: str
    id: str
    name: str
    state: str
    result: bool | None
    changed: bool = False
    changes: dict = field(default_factory=dict)
    comment: str = ""
    diff: str | None = None
    duration_ms: float = 0.0
    run: bool = True
    idempotent: bool = True

    @property
    def pending(self) -> bool:
        """True in test mode when the state would change something."""
        return self.result is None and self.run and bool(self.changes)

    def as_dict(self) -> dict:
        """Return a JSON-ready dict."""
        return asdict(self)
