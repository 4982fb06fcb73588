"""Role firewall: on every host when the inventory has stack.firewall, its own nftables table
(input dropped unless the topology opens it, see stack/firewall.py), loaded with a rollback armed
and kept only once a new SSH connection gets in (the firewall phase's guard)."""

from __future__ import annotations

from typing import Any

from ...core import states as s
from ...core.states.base import State
from ...core.states.nft import Table
from .. import firewall as fw
from .base import Role, template
from .inputs import StackInputs

UNIT = f"/etc/systemd/system/{fw.BOOT_UNIT}"


def states(host: Any, inventory: Any, inputs: StackInputs | None = None) -> list[State[Any]]:
    """Return the firewall role's states for a host (none when the host has no firewall)."""
    found = fw.settings(inventory)
    if found is None or not fw.enabled(host, inventory):
        return []
    return [
        s.pkg.installed("nftables", id="firewall:package"),
        s.file.managed(
            UNIT, template=template("foobar-firewall.service.j2"), context={"persist": fw.PERSIST}, id="firewall:unit"
        ),
        s.cmd.run(
            "systemctl daemon-reload",
            onchanges=["firewall:unit"],
            label="systemctl daemon-reload",
            id="firewall:daemon-reload",
        ),
        Table(
            fw.TABLE,
            fw.render(host, inventory),
            persist=fw.PERSIST,
            boot_unit=fw.BOOT_UNIT,
            confirm_timeout=found.confirm_timeout,
            timer=fw.TIMER,
            require=["firewall:package", "firewall:unit"],
            id="firewall:table",
        ),
    ]


ROLE = Role("firewall", "firewall", states, "nftables on every host: only what the topology opens, commit-confirmed")
