"""The stack's roles and the phases they are applied in: the one registry of both.

A role is a pure function from a host's data (and the run's inputs: the wheels made once per run on
the control machine, see inputs) to its declared states. An apply of the whole stack
goes phase by phase across all hosts: the firewall first when the inventory has one (one host at a
time, each change kept only once a new SSH connection gets in), then the database (the app checks
its health against it),
then Nginx everywhere at once, then the load balancers (HAProxy and keepalived) one at a time, each
only while its peer serves, then the app one host at a time (a rolling change: the
other servers keep serving, a host with changes pending is drained in HAProxy first, and a release
that fails its health check on one host goes no further).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...core.engine import Phase
from ...core.states import State
from .. import topology
from ..firewall import enabled as firewall_enabled
from ..firewall import firewall_phase
from ..monitoring import settings as monitoring_settings
from ..pair import pair_phase
from ..rolling import rolling_phase
from ..topology import RoleError, check_roles
from . import app, exporters, firewall, haproxy, keepalived, loadgen, monitoring, mysql, nginx
from .base import Role
from .inputs import StackInputs, inputs_for

__all__ = [
    "Role",
    "RoleError",
    "ROLES",
    "PHASES",
    "StackInputs",
    "inputs_for",
    "names",
    "check_roles",
    "states_for",
    "phases",
]


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
    pair: one load balancer at a time, each changed only while its peer serves.
    firewall: one host at a time, each change confirmed by a new SSH connection before the next.
    serial: one host at a time in `order` (stopping at the first host that fails).
    order: the order of a serial phase.
    """

    name: str
    rolling: bool = False
    pair: bool = False
    firewall: bool = False
    serial: bool = False
    order: Callable[[list[Any], Any], list[Any]] | None = None


#: The phases of an apply, in order.
PHASES: tuple[PhaseSpec, ...] = (
    PhaseSpec("firewall", firewall=True),
    PhaseSpec("database", serial=True, order=primary_first),
    PhaseSpec("web"),
    PhaseSpec("lb", pair=True),
    PhaseSpec("app", rolling=True),
    PhaseSpec("monitoring"),
)

#: Every role, by name, in the order its states are declared within a phase.
ROLES: dict[str, Role] = {
    r.name: r
    for r in (
        firewall.ROLE,
        mysql.ROLE,
        nginx.ROLE,
        haproxy.ROLE,
        keepalived.ROLE,
        loadgen.ROLE,
        app.ROLE,
        exporters.ROLE,
        monitoring.ROLE,
    )
}
if tuple(ROLES) != topology.ROLE_NAMES:  # the names an inventory is read against
    raise RuntimeError(f"topology.ROLE_NAMES {topology.ROLE_NAMES} differs from the roles {tuple(ROLES)}")


def names() -> tuple[str, ...]:
    """Return the role names an inventory host may declare."""
    return tuple(ROLES)


def host_roles(host: Any, inventory: Any) -> tuple[str, ...]:
    """Return a host's roles: the ones it lists, the firewall first when the inventory has one
    (stack.firewall) and the host does not opt out (vars.firewall: false), and the exporters on
    every host when the inventory has monitoring (stack.monitoring)."""
    listed = tuple(r for r in host.roles if r not in ("firewall", "exporters"))
    if monitoring_settings(inventory) is not None:
        listed = (*listed, "exporters")
    elif "exporters" in host.roles:
        raise RoleError(
            f"host {host.name}: it lists the exporters role, but the inventory has no stack.monitoring "
            "(every host gets the exporters once it has)"
        )
    if firewall_enabled(host, inventory):
        return ("firewall", *listed)
    if "firewall" in host.roles:
        raise RoleError(
            f"host {host.name}: it lists the firewall role, but the inventory has no stack.firewall "
            "(or the host says vars.firewall: false)"
        )
    return listed


def states_for(
    host: Any,
    inventory: Any,
    roles: list[str] | tuple[str, ...] | None = None,
    inputs: StackInputs | None = None,
) -> list[State[Any]]:
    """Return the states of a host's roles, in the order the host lists them.

    host: the inventory Host.
    inventory: the Inventory.
    roles: only these roles (default: all of the host's roles).
    inputs: the run's inputs (see inputs_for); None: each role that needs a build makes it for this
        call.
    """
    unknown = [r for r in host.roles if r not in ROLES]
    if unknown:
        raise RoleError(
            f"host {host.name}: unknown role {', '.join(map(repr, unknown))} (known roles: {', '.join(ROLES)})"
        )
    out: list[State[Any]] = []
    for name in host_roles(host, inventory):
        if roles is None or name in roles:
            out += ROLES[name].states(host, inventory, inputs)
    return out


def phases(
    roles: list[str] | tuple[str, ...] | None = None,
    *,
    inventory: Any = None,
    hosts: str | None = None,
) -> list[Phase]:
    """Return the phases of a stack apply, for the engine.

    With an inventory, the run's inputs (the app's and the load generator's wheels, see inputs_for)
    are made once for every phase and host, and only for what the targeted hosts apply: a run (or a
    dry-run, which compares the wheels by content) of lb-01 alone builds nothing. They are made when
    the engine first asks for a host's states (it declares every phase's states before it applies
    any, inside the run's journal record: a build that fails is the run's journaled error).
    Without an inventory, each role that needs a build makes it at each call.

    roles: only these roles (default: every role a host has).
    inventory: the Inventory the run applies (None: no inputs made ahead).
    hosts: the run's host pattern (default: all hosts), to make only what its hosts need.
    """
    check_roles(list(roles or ()))
    run_inputs = None if inventory is None else _once(lambda: inputs_for(inventory, inventory.select(hosts), roles))
    out = []
    for spec in PHASES:
        members = tuple(r.name for r in ROLES.values() if r.phase == spec.name and (not roles or r.name in roles))
        if not members:
            continue

        def states(host: Any, inventory: Any, members: tuple[str, ...] = members) -> list[State[Any]]:
            return states_for(host, inventory, members, run_inputs() if run_inputs is not None else None)

        if spec.rolling:
            out.append(rolling_phase(spec.name, states))
        elif spec.pair:
            out.append(pair_phase(spec.name, states))
        elif spec.firewall:
            out.append(firewall_phase(spec.name, states))
        else:
            out.append(Phase(spec.name, states, serial=spec.serial, order=spec.order))
    return out


def _once(make: Callable[[], StackInputs]) -> Callable[[], StackInputs]:
    """Return a function that makes the inputs at its first call and returns the same ones after."""
    lock = threading.Lock()
    made: list[StackInputs] = []

    def get() -> StackInputs:
        with lock:
            if not made:
                made.append(make())
            return made[0]

    return get
