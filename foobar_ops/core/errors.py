"""The exception tree every foobar_ops module raises from."""

from __future__ import annotations

from pathlib import Path


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


class ChangeStillRunning(HostError):
    """Raised into a guard (see engine.Phase.guard) when the change it wraps was cut off and is
    still running on the host: what the guard would do after a change (e.g. put a server back in
    rotation) must wait for it; a later run does it."""


class LabError(FoobarOpsError):
    """The built-in lab could not be created, started or torn down."""


class StateError(FoobarOpsError):
    """A state was declared wrongly (bad argument, duplicate id, unknown requisite)."""


class FactError(FoobarOpsError):
    """A fact's output could not be read (the probe failed or printed something unexpected)."""
