"""cmd.run: a command, guarded by creates / unless / onlyif to make it idempotent."""

from __future__ import annotations

from typing import Any

from ..facts import Guards, GuardsFact
from ..shell import cmd
from .base import Plan, State


class Run(State[Guards]):
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

    def __init__(
        self,
        name: str,
        *,
        creates: str | None = None,
        unless: str | None = None,
        onlyif: str | None = None,
        cwd: str | None = None,
        label: str | None = None,
        **kw: Any,
    ) -> None:
        self.command = name
        super().__init__(label or name, id=kw.pop("id", None) or f"cmd.run:{name}", **kw)
        self.creates, self.unless, self.onlyif, self.cwd = creates, unless, onlyif, cwd
        self.idempotent = bool(creates or unless or onlyif or self.onchanges)

    def fact(self) -> GuardsFact:
        return GuardsFact(self.creates, self.unless, self.onlyif)

    def plan(self, fact: Guards) -> Plan:
        if fact.creates:
            return Plan(comment=f"{self.creates} exists")
        if fact.unless:
            return Plan(comment="unless condition is true")
        if fact.onlyif is False:
            return Plan(comment="onlyif condition is false")
        line = f"cd {cmd(self.cwd)} && {self.command}" if self.cwd else self.command
        note = "" if self.idempotent else " (not idempotent: no creates/unless/onlyif guard)"
        return Plan({"old": None, "new": {"command": self.command}}, [line], comment=f"ran {self.name}{note}")
