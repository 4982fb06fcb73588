"""The foobar.com stack: roles and their templates, the load balancer's runtime API, rolling
changes, verification and the app's builds. Built on the core; knows nothing of the entry points."""

from __future__ import annotations

from pathlib import Path

from ..core.inventory import Inventory
from ..core.inventory import load_inventory as _load
from . import topology

__all__ = ["load_inventory"]


def load_inventory(path: str | Path) -> Inventory:
    """Read and validate an inventory of the stack: its hosts may only have the stack's roles, and
    every stack and host var the stack uses must be of its type (topology.TYPES).

    path: the YAML inventory file.
    """
    return _load(path, known_roles=topology.ROLE_NAMES, types=topology.TYPES)
