"""Load and query the YAML inventory of the foobar.com web stack.

Every problem is an InventoryError naming the file, the host and the key at
fault, with a hint on how to fix it. Keys that look like passwords or tokens
must hold env:/file: references, which become Secret objects; literal values
are refused without being echoed. Parsing and validation live in schema.py
and values.py; this module holds the data model and selection.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InventoryError
from ..secrets import Secret
from .schema import DEFAULT_PARALLEL, VarTypes, parse_document
from .values import suggest


@dataclass(frozen=True)
class SSHOptions:
    """How to reach a host over SSH."""

    identity: Path | None = None
    known_hosts: Path | None = None
    config: Path | None = None
    connect_timeout: float = 5.0
    command_timeout: float = 300.0
    keepalive: int = 15
    proxy_jump: str | None = None
    trust_new_keys: bool = False


@dataclass(frozen=True)
class Host:
    """One machine of the stack; vars are defaults < group vars < host vars."""

    name: str
    address: str
    port: int = 22
    user: str = "root"
    roles: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    vars: dict[str, Any] = field(default_factory=dict)
    ssh: SSHOptions = field(default_factory=SSHOptions)
    sudo_password: Secret | None = None

    def __hash__(self) -> int:
        """Hash by identity fields so hosts can key dicts and sets."""
        return hash((self.name, self.address, self.port))

    def as_dict(self) -> dict[str, Any]:
        """Return a JSON-able view; Secrets appear as their reference."""
        return {
            "name": self.name,
            "address": self.address,
            "port": self.port,
            "user": self.user,
            "roles": list(self.roles),
            "groups": list(self.groups),
            "vars": _plain(self.vars),
        }


@dataclass(frozen=True)
class Inventory:
    """A validated inventory: hosts, groups, stack vars, secrets, lab, and the fan-out cap.

    parallel: at most this many hosts at once in a run (defaults.ssh.parallel, 1 to 256).
    """

    path: Path
    hosts: dict[str, Host]
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    group_vars: dict[str, dict[str, Any]] = field(default_factory=dict)
    stack: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, Secret] = field(default_factory=dict)
    lab: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""
    parallel: int = DEFAULT_PARALLEL

    def select(self, pattern: str | None = None) -> list[Host]:
        """Return the hosts matching pattern, in inventory order, once each.

        pattern: comma-separated terms (host name, glob, role:NAME,
            group:NAME, bare group or role name); None, 'all' or '*' = all.
            An empty pattern or an empty term ('', ',', 'web-01,,') is an error, never
            "every host": an unset variable must not widen a selection.
        """
        if pattern is None:
            return list(self.hosts.values())
        terms = [t.strip() for t in pattern.split(",")]
        if not all(terms):
            raise InventoryError(
                f"host pattern {pattern!r} is empty or has an empty term; name hosts, groups or roles "
                "(or 'all' for every host)",
                path=self.path,
            )
        if any(t in ("all", "*") for t in terms):
            return list(self.hosts.values())
        chosen: set[str] = set()
        for term in terms:
            matched = self._match(term)
            if not matched:
                raise InventoryError(self._no_match(term), path=self.path)
            chosen |= matched
        return [h for n, h in self.hosts.items() if n in chosen]

    def _match(self, term: str) -> set[str]:
        """Return the names of the hosts one selection term matches.

        term: a single selection term.
        """
        kind, _, name = term.partition(":")
        if kind == "role" and name:
            return {h.name for h in self.hosts.values() if name in h.roles}
        if kind == "group" and name:
            return set(self.groups.get(name, ()))
        if term in self.hosts:
            return {term}
        if any(c in term for c in "*?["):
            return set(fnmatch.filter(self.hosts, term))
        found = set(self.groups.get(term, ()))
        return found | {h.name for h in self.hosts.values() if term in h.roles}

    def _no_match(self, term: str) -> str:
        """Explain that a term matched no host and list what exists.

        term: the selection term.
        """
        roles = sorted({r for h in self.hosts.values() for r in h.roles})
        hint = suggest(term.partition(":")[2] or term, [*self.hosts, *self.groups, *roles])
        return (
            f"selection '{term}' matches no host{hint}; hosts: "
            f"{_names(self.hosts)}; groups: {_names(self.groups)}; "
            f"roles in use: {_names(roles)}"
        )

    def host(self, name: str) -> Host:
        """Return the host called name, or raise InventoryError.

        name: an inventory host name.
        """
        if name not in self.hosts:
            raise InventoryError(
                f"no such host{suggest(name, self.hosts)}; hosts: {_names(self.hosts)}", path=self.path, host=name
            )
        return self.hosts[name]

    def with_vars(self, pattern: str | None, **values: Any) -> Inventory:
        """Return a copy whose selected hosts have these vars too (for one run; the file is unchanged).
        Its sha256 differs from the file's, so a plan made with it is only applied with it.

        pattern: the hosts (a host pattern).
        values: the vars to set.
        """
        import dataclasses
        import hashlib
        import json

        chosen = {h.name for h in self.select(pattern)}
        hosts = {
            n: dataclasses.replace(h, vars={**h.vars, **values}) if n in chosen else h for n, h in self.hosts.items()
        }
        mark = json.dumps([pattern, values], sort_keys=True, default=str)
        return dataclasses.replace(self, hosts=hosts, sha256=hashlib.sha256((self.sha256 + mark).encode()).hexdigest())

    def _repr_html_(self) -> str:
        """The hosts as an HTML table, for notebooks."""
        import html

        head = "".join(f"<th style='text-align:left'>{h}</th>" for h in ("host", "address", "user", "roles", "groups"))
        rows = "".join(
            "<tr>"
            + "".join(
                f"<td style='text-align:left'>{html.escape(str(v))}</td>"
                for v in (h.name, h.address, h.user, ", ".join(h.roles), ", ".join(h.groups))
            )
            + "</tr>"
            for h in self.hosts.values()
        )
        return f"<p><b>inventory</b> {html.escape(str(self.path))}</p><table><tr>{head}</tr>{rows}</table>"

    def secret(self, name: str) -> Secret:
        """Return the secret declared as name under secrets:.

        name: the secret's name.
        """
        if name not in self.secrets:
            raise InventoryError(
                f"no such secret{suggest(name, self.secrets)}; declare it "
                f"under 'secrets:' (declared: {_names(self.secrets)})",
                path=self.path,
                key=f"secrets.{name}",
            )
        return self.secrets[name]


def load_inventory(
    path: str | Path, known_roles: tuple[str, ...] | None = None, types: VarTypes | None = None
) -> Inventory:
    """Read and validate the inventory file at path.

    path: the YAML inventory file; ~ and $VAR are expanded.
    known_roles: the role names hosts may declare (None: any name).
    types: what stack vars and host vars must be (None: anything).
    """
    path = Path(os.path.expanduser(os.path.expandvars(str(path))))
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InventoryError("inventory file not found; check the path", path=path) from None
    except IsADirectoryError:
        raise InventoryError("is a directory; give the inventory YAML file", path=path) from None
    except OSError as exc:
        raise InventoryError(f"cannot read inventory ({exc.strerror}); check its permissions", path=path) from None
    return parse_inventory(data, path, known_roles, types)


def parse_inventory(
    text: str | bytes, path: str | Path, known_roles: tuple[str, ...] | None = None, types: VarTypes | None = None
) -> Inventory:
    """Validate inventory YAML and build the Inventory.

    text: the YAML document; bytes are hashed as-is, str as UTF-8.
    path: the file it came from; relative paths inside resolve from its dir.
    known_roles: the role names hosts may declare (None: any name).
    types: what stack vars and host vars must be (None: anything).
    """
    fields = parse_document(text, Path(path), known_roles, types)
    hosts = {name: Host(**{**host, "ssh": SSHOptions(**host["ssh"])}) for name, host in fields.pop("hosts").items()}
    return Inventory(hosts=hosts, **fields)


def _names(items: Iterable[Any]) -> str:
    """Join names for a message, or say 'none'.

    items: the names.
    """
    text = ", ".join(str(i) for i in items)
    return text or "none"


def _plain(value: Any) -> Any:
    """Make value JSON-able: Secrets become refs, paths and keys strings.

    value: a vars value.
    """
    if isinstance(value, Secret):
        return value.ref
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path) or hasattr(value, "isoformat"):
        return str(value)
    return value
