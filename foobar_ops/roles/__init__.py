"""Stack roles: each role is a function from a host's data to desired states.

ROLE_NAMES lists the roles an inventory host may declare; anything else is
rejected when the inventory is loaded.
"""

from __future__ import annotations

from ..errors import FoobarOpsError

ROLE_NAMES: tuple[str, ...] = ("haproxy", "nginx", "app", "mysql")


class RoleError(FoobarOpsError):
    """A role is unknown, not targeted by the host, or not implemented yet."""


def states_for(host, inventory, roles: list[str] | None = None) -> list:
    """Return the states of a host's roles, in the order the host lists them.

    host: the inventory Host.
    inventory: the Inventory.
    roles: only these roles (each must be one the host has); default: all of the host's roles.
    """
    import importlib

    wanted = [r for r in host.roles if roles is None or r in roles]
    states: list = []
    for role in wanted:
        try:
            module = importlib.import_module(f"{__name__}.{role}")
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{role}":
                raise
            raise RoleError(f"host {host.name}: role {role!r} has no states yet "
                            f"(no module foobar_ops/roles/{role}.py)") from None
        states += module.states(host, inventory)
    return states


#: Roles applied in phases across all hosts: the database first (the app checks its health against
#: it), then Nginx and HAProxy everywhere at once, then the app one host at a time (a rolling
#: change: the other servers keep serving, and a release that fails its health check on one
#: host goes no further; a host with changes pending is drained in HAProxy first).
PHASES: tuple[tuple[tuple[str, ...], bool], ...] = (
    (("mysql",), False), (("nginx", "haproxy"), False), (("app",), True))


def phases(roles: list[str] | None = None) -> list:
    """Return the phases of a role apply, for `highstate.apply`.

    roles: only these roles (default: every role a host has).
    """
    from ..highstate import Phase

    def phase_fn(names):
        return lambda host, inventory: states_for(host, inventory, [r for r in names if not roles or r in roles])
    from .rolling import drained, out_of_rotation_first
    return [Phase(phase_fn(names), serial, guard=drained if serial else None,
                  order=out_of_rotation_first if serial else None)
            for names, serial in PHASES if not roles or set(names) & set(roles)]


def check_roles(roles: list[str]) -> None:
    """Refuse role names that do not exist, naming them.

    roles: role names given on the command line.
    """
    unknown = [r for r in roles if r not in ROLE_NAMES]
    if unknown:
        raise RoleError(f"unknown role {', '.join(map(repr, unknown))} (known roles: {', '.join(ROLE_NAMES)})")
