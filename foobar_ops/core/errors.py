"""The exception tree every foobar_ops module raises from."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class FoobarOpsError(Exception):
    """Base of every error foobar_ops raises."""


class InventoryError(FoobarOpsError):
    """The inventory file is missing, malformed or inconsistent."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        host: str | None = None,
        key: str | None = None,
    ) -> None:
        """Record where in the inventory the problem lies.

        message: what is wrong and what to do about it.
        path: the inventory file, when known.
        host: the host entry the problem is in, when inside one.
        key: the key (dotted path) that holds the bad value.
        """
        self.message = message
        self.path = path
        self.host = host
        self.key = key
        super().__init__(str(self))

    def __str__(self) -> str:
        """Render as '<path>: host '<host>': key '<key>': <message>'."""
        parts = []
        if self.path is not None:
            parts.append(str(self.path))
        if self.host is not None:
            parts.append(f"host '{self.host}'")
        if self.key is not None:
            parts.append(f"key '{self.key}'")
        parts.append(self.message)
        return ": ".join(parts)


class SecretError(FoobarOpsError):
    """A secret reference cannot be parsed or resolved; never holds a value."""


class HostError(FoobarOpsError):
    """Something went wrong on (or on the way to) one host: `host: reason`."""

    def __init__(self, host: str, message: str) -> None:
        """Record the host and the reason.

        host: the inventory host name (or address).
        message: what went wrong there.
        """
        self.host = host
        self.reason = message
        super().__init__(f"{host}: {message}")


class ConnectionFailed(HostError):
    """An SSH connection to a host could not be made or was lost."""


class HostUnreachable(ConnectionFailed):
    """The host does not answer on its SSH port."""


class HostKeyError(ConnectionFailed):
    """The host key is unknown or has changed."""


class AuthError(ConnectionFailed):
    """The host refused the login."""


class SudoError(HostError):
    """Privilege escalation with sudo failed on a host."""


class CutOffChangeRunning(HostError):
    """Raised into a guard (see engine.Phase.guard) when the change it wraps was cut off and is
    still running on the host: what the guard would do after a change (e.g. put a server back in
    rotation) must wait for it; a later run does it."""


class RunLocked(FoobarOpsError):
    """Another run holds a host's lock."""

    def __init__(self, host: str, holder: Any, waited: float) -> None:
        self.host, self.holder = host, holder
        who = holder.describe() if holder else "another run (it left no details)"
        tail = f" after waiting {waited:g} s" if waited else ""
        super().__init__(f"{host} is locked by {who}{tail}: this run changed nothing")


class EarlierChangeRunning(RunLocked):
    """A change begun by an earlier run (killed, or cut off) is still running on a host."""

    def __init__(self, host: str, holder: Any, waited: float) -> None:
        self.host, self.holder = host, holder
        who = holder.describe() if holder else "an earlier run"
        FoobarOpsError.__init__(
            self,
            f"{host}: a change begun by {who} is still running after {waited:g} s: "
            "this run changed nothing (see what runs there, and wait or end it)",
        )


class LabError(FoobarOpsError):
    """The built-in lab could not be created, started or torn down."""


class StateError(FoobarOpsError):
    """A state was declared wrongly (bad argument, duplicate id, unknown requisite)."""


class FactError(FoobarOpsError):
    """A fact's output could not be read (the probe failed or printed something unexpected)."""


class SecretTooShort(SecretError):
    """A secret value too short to be masked safely."""


class TemplateError(FoobarOpsError):
    """A template could not be rendered (missing variable, syntax error, unknown template)."""


class YAMLRefused(FoobarOpsError, ValueError):
    """YAML that parses but is refused (too deep, aliases that expand too much or loop, a number
    that is not finite); its message says which, and where (line, column)."""


class PlanFileError(FoobarOpsError):
    """A saved plan cannot be read, or does not fit the inventory it is applied with."""


class ApprovalError(PlanFileError):
    """A plan is applied under change control without the approval it needs (or was changed since)."""


class IdentityError(FoobarOpsError):
    """Who runs cannot be told: FOOBAR_OPS_USER is not a plain name."""


class ScheduleError(FoobarOpsError):
    """A runbook cannot be scheduled as asked (a bad name, period, timeout, host or secret)."""


class JournalError(FoobarOpsError):
    """The journal could not be read or written, or a query was malformed."""


class TopologyError(FoobarOpsError):
    """The inventory does not describe a stack the roles can build."""


class RoleError(FoobarOpsError):
    """A role is unknown, or not one the host has."""


class BuildError(FoobarOpsError):
    """The app's wheels could not be built."""


class DBError(FoobarOpsError):
    """A database node refused or failed a statement, or could not be asked."""


class ReplicationError(FoobarOpsError):
    """A switchover or failover was refused or failed."""


class LBError(FoobarOpsError):
    """The runtime API refused or failed (unknown server, last UP server, drain timeout)."""


class LastServerUp(LBError):
    """A drain or maint refused: no other server of the backend is UP."""


class FirewallError(FoobarOpsError):
    """A firewall change was refused (its rules would lock the admin out, or were confirmed too
    late), or the firewall's check found a path that is not as the rules intend."""


class TLSError(FoobarOpsError):
    """A certificate that cannot be served (unreadable, not its key's, not the site's, expired, not
    from the CA the site's clients trust), or a load balancer that cannot say what it serves."""


class LoadTestError(FoobarOpsError):
    """A load test could not be run (Locust missing, no load balancer, a bad parameter)."""


class RunbookParameterError(FoobarOpsError):
    """A runbook was given an unknown parameter, no value for a required one, or a wrong value."""


class RunbookNotFound(FoobarOpsError):
    """No runbook of that name."""


class HealthError(FoobarOpsError):
    """Prometheus could not be asked about the stack's health (down, unreachable, an API error), or
    the stack did not become as wanted in time."""


class AlertPayloadError(FoobarOpsError):
    """A post to the alert webhook that is not Alertmanager's webhook payload."""
