"""The stack's roles and the phases they are applied in: the one registry of both.

A role is a pure function from a host's data to its declared states. An apply of the whole stack
goes phase by phase across all hosts: the database first (the app checks its health against it),
then Nginx and HAProxy everywhere at once, then the app one host at a time (a rolling change: the
other servers keep serving, a host with changes pending is drained in HAProxy first, and a release
that fails its health check on one host goes no further).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...core.engine import Phase
from ...core.errors import FoobarOpsError
from ...core.states import State
from .. import topology
from ..rolling import rolling_phase
from . import app, haproxy, loadgen, mysql, nginx
from .base import Role

__all__ = ["Role", "RoleError", "ROLES", "PHASES", "names", "check_roles", "states_for", "phases"]


class RoleError(FoobarOpsError):
    """A role is unknown, or not one the host has."""


def primary_first(hosts: list[Any], inventory: Any) -> list[Any]:
    """Order database hosts primary first: a replica is seeded from, and pointed at, a primary that
    this same run has already brought to its wanted state."""
    try:
        primary = topology.db_primary(inventory).name
    except topology.TopologyError:
        return hosts
    return sorted(hosts, key=lambda h: h.name != primary)


@dataclass(frozen=True)
class PhaseSpec:
    """A phase of a stack apply.

    name: the name roles give as their phase.
    rolling: one host at a time behind the load balancer (drained while it changes).
    serial: one host at a time in `order` (stopping at the first host that fails).
    order: the order of a serial phase.
    """

    name: str
    rolling: bool = False
    serial: bool = False
    order: Callable[[list[Any], Any], list[Any]] | None = None


#: The phases of an apply, in order.
PHASES: tuple[PhaseSpec, ...] = (
    PhaseSpec("database", serial=True, order=primary_first),
    PhaseSpec("web"),
    PhaseSpec("app", rolling=True),
)

#: Every role, by name, in the order its states are declared within a phase.
ROLES: dict[str, Role] = {r.name: r for r in (mysql.ROLE, nginx.ROLE, haproxy.ROLE, loadgen.ROLE, app.ROLE)}


def names() -> tuple[str, ...]:
    """Return the role names an inventory host may declare."""
    return tuple(ROLES)


def check_roles(roles: list[str] | tuple[str, ...]) -> None:
    """Refuse role names that do not exist, naming them.

    roles: role names given on the command line or to a runbook.
    """
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise RoleError(f"unknown role {', '.join(map(repr, unknown))} (known roles: {', '.join(ROLES)})")


def states_for(host: Any, inventory: Any, roles: list[str] | tuple[str, ...] | None = None) -> list[State[Any]]:
    """Return the states of a host's roles, in the order the host lists them.

    host: the inventory Host.
    inventory: the Inventory.
    roles: only these roles (default: all of the host's roles).
    """
    unknown = [r for r in host.roles if r not in ROLES]
    if unknown:
        raise RoleError(
            f"host {host.name}: unknown role {', '.join(map(repr, unknown))} (known roles: {', '.join(ROLES)})"
        )
    out: list[State[Any]] = []
    for name in host.roles:
        if roles is None or name in roles:
            out += ROLES[name].states(host, inventory)
    return out


def phases(roles: list[str] | tuple[str, ...] | None = None) -> list[Phase]:
    """Return the phases of a stack apply, for the engine.

    roles: only these roles (default: every role a host has).
    """
    check_roles(list(roles or ()))
    out = []
    for spec in PHASES:
        members = tuple(r.name for r in ROLES.values() if r.phase == spec.name and (not roles or r.name in roles))
        if not members:
            continue

        def states(host: Any, inventory: Any, members: tuple[str, ...] = members) -> list[State[Any]]:
            return states_for(host, inventory, members)

        if spec.rolling:
            out.append(rolling_phase(spec.name, states))
        else:
            out.append(Phase(spec.name, states, serial=spec.serial, order=spec.order))
    return out
