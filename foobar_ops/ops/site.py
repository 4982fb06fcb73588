"""Verify the site through the load balancer."""

from __future__ import annotations

from pathlib import Path

from ..core.inventory import Inventory
from ..stack.verify import Verification, check_site
from .common import inventory_of


def verify(inventory: Inventory | str | Path, n: int = 20, wait: float = 30.0) -> Verification:
    """Wait until the load balancer sees every server UP, send n requests through it and judge
    them: ok only when all answered 200 and every web server answered some.

    inventory: the Inventory, or its path.
    n: requests to send.
    wait: seconds to wait for every server to be UP first (0: do not wait).
    """
    return check_site(inventory_of(inventory), n, wait)
