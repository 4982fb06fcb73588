"""The firewall: prove the rules from the hosts themselves (the rules are applied with the stack:
`apply`, or `apply` of the firewall role alone)."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from ..core.inventory import Inventory
from ..stack.firewall_check import FirewallCheck, check
from .common import inventory_of


def firewall_check(inventory: Inventory | str | Path, timeout: float = 1.5) -> FirewallCheck:
    """From every host and from this machine, connect to every other host on every TCP port the
    topology names; return each path's intended and measured state (`ok` when all agree).

    inventory: the Inventory (with stack.firewall), or its path.
    timeout: seconds before a connection counts as dropped (0.2 to 10).
    """
    from ..core.errors import FirewallError
    from ..core.ssh import Remote  # paramiko: imported by what connects

    if not 0.2 <= float(timeout) <= 10:
        raise FirewallError(f"timeout={timeout!r} must be from 0.2 to 10 seconds")
    inv = inventory_of(inventory)
    with ExitStack() as stack:
        remotes = {name: stack.enter_context(Remote(host, inv)) for name, host in inv.hosts.items()}
        return check(inv, remotes, float(timeout))
