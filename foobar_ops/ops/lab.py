"""The built-in lab of hosts on this machine: boot, power off, remove, look at, log in."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.inventory import Inventory
from .common import inventory_of

if TYPE_CHECKING:
    from ..lab import Lab


def _lab(inventory: Inventory | str | Path) -> Lab:
    from ..lab import Lab  # only the lab commands need it

    return Lab(inventory_of(inventory))


def lab_up(inventory: Inventory | str | Path, names: list[str] | None = None) -> None:
    """Boot the lab's hosts (all by default); running hosts are left alone.

    inventory: the lab's Inventory, or its path.
    names: only these hosts.
    """
    _lab(inventory).up(names or None)


def lab_down(inventory: Inventory | str | Path, names: list[str] | None = None) -> None:
    """Power the lab's hosts off cleanly (all by default).

    inventory: the lab's Inventory, or its path.
    names: only these hosts.
    """
    _lab(inventory).down(names or None)


def lab_destroy(inventory: Inventory | str | Path, names: list[str] | None = None) -> None:
    """Power the lab's hosts off and remove their disks (all by default).

    inventory: the lab's Inventory, or its path.
    names: only these hosts.
    """
    _lab(inventory).destroy(names or None)


def lab_status(inventory: Inventory | str | Path) -> list[dict[str, Any]]:
    """Return one row per lab host: host, address, state, uptime_s.

    inventory: the lab's Inventory, or its path.
    """
    return _lab(inventory).status()


def lab_ssh_argv(inventory: Inventory | str | Path, name: str, command: list[str]) -> list[str]:
    """Return the command line that runs command as root on a lab host (a shell without one).

    inventory: the lab's Inventory, or its path.
    name: the lab host.
    command: the remote command's arguments (may be empty).
    """
    return _lab(inventory).ssh_argv(name, command)
