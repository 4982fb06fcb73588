"""The inventory's hosts: which they are, and whether each answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.inventory import Inventory
from .common import inventory_of


def hosts(inventory: Inventory | str | Path, pattern: str | None = None) -> dict[str, Any]:
    """Return the inventory's hosts as {"inventory": its path, "hosts": [host dicts]}.

    inventory: the Inventory, or its path.
    pattern: only the hosts it matches (name, glob, role:NAME, group:NAME; default: all).
    """
    inv = inventory_of(inventory)
    return {"inventory": str(inv.path), "hosts": [h.as_dict() for h in inv.select(pattern)]}


def ping(
    inventory: Inventory | str | Path,
    pattern: str | None = None,
    *,
    sudo: bool = False,
    parallel: int | None = None,
) -> list[dict[str, Any]]:
    """Run `uname -r` on each host in parallel; return one row per host, in order: host, outcome,
    rtt_ms, kernel (when it answered), error (when it did not).

    inventory: the Inventory, or its path.
    pattern: only the hosts it matches (default: all).
    sudo: run the probe through sudo.
    parallel: at most this many hosts at once (default: the inventory's ssh.parallel).
    """
    from ..core import ssh

    inv = inventory_of(inventory)
    outcomes = ssh.run_many(inv.select(pattern), "uname -r", inventory=inv, sudo=sudo, cap=parallel or inv.parallel)
    return [
        {
            "host": o.host,
            "outcome": o.outcome,
            "rtt_ms": o.rtt_ms,
            "kernel": o.stdout.strip() or None if o.ok else None,
            "error": o.error if not o.ok else None,
        }
        for o in outcomes
    ]
