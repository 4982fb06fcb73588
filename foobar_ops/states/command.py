"""cmd.run: a command, guarded by creates / unless / onlyif to make it idempotent."""
from __future__ import annotations

from ..shell import cmd
from .base import Plan, State, keyvals


class Run(State):
    """cmd.run: run a shell command line as root.

    name: the command line (built with shell.cmd where it has arguments).
    creates: skip when this path exists.
    unless: skip when this command line succeeds.
    onlyif: run only when this command line succeeds.
    cwd: working directory.
    label: what reports show as the state's name (default: the command line).
    Without a guard (or onchanges) the state runs every time and is reported as non-idempotent.
    """

    kind = "cmd.run"

    def __init__(self, name, *, creates=None, unless=None, onlyif=None, cwd=None, label=None, **kw):
        self.command = name
        super().__init__(label or name, id=kw.pop("id", None) or f"cmd.run:{name}", **kw)
        self.creates, self.unless, self.onlyif, self.cwd = creates, unless, onlyif, cwd
        self.idempotent = bool(creates or unless or onlyif or self.onchanges)

    def probe(self) -> str:
        parts = ["true"]
        if self.creates:
            parts.append(f"[ -e {cmd(self.creates)} ] && echo creates=yes")
        if self.unless:
            parts.append(f"( {self.unless} ) >/dev/null 2>&1 && echo unless=ok")
        if self.onlyif:
            parts.append(f"( {self.onlyif} ) >/dev/null 2>&1 && echo onlyif=ok")
        return "; ".join(parts) + "; true"

    def plan(self, facts: str) -> Plan:
        f = keyvals(facts)
        if self.creates and f.get("creates") == "yes":
            return Plan(comment=f"{self.creates} exists")
        if self.unless and f.get("unless") == "ok":
            return Plan(comment="unless condition is true")
        if self.onlyif and f.get("onlyif") != "ok":
            return Plan(comment="onlyif condition is false")
        line = f"cd {cmd(self.cwd)} && {self.command}" if self.cwd else self.command
        note = "" if self.idempotent else " (not idempotent: no creates/unless/onlyif guard)"
        return Plan({"old": None, "new": {"command": self.command}}, [line],
                    comment=f"ran {self.name}{note}")
