"""HTTPS at the load balancers: which certificate each one serves and how long it has left, and a
new certificate served without a reload."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.inventory import Inventory
from ..core.journal import Journal
from .common import inventory_of


def tls_status(inventory: Inventory | str | Path) -> Any:
    """Ask every load balancer which certificates it serves (HAProxy's runtime API): subject, names,
    serial, issuer, end and days left; a TLSStatus (`ok` False when one has under 3 days left or a
    load balancer cannot say; a warning under 20 days).

    inventory: the Inventory (with stack.tls), or its path.
    """
    from ..stack import tls

    return tls.status(inventory_of(inventory))


def tls_rotate(
    inventory: Inventory | str | Path,
    cert: str | None = None,
    key: str | None = None,
    *,
    test: bool = False,
    journal: Journal | str | Path | None = None,
    command: str = "python: tls_rotate",
    lock_wait: float | None = None,
) -> Any:
    """Serve a certificate on every load balancer without a reload (the file written, then HAProxy's
    runtime API); return the Rotation: the run's Report and what was checked of the certificate.
    Nothing reaches a host unless the chain and key check out for the site.

    inventory: the Inventory (with stack.tls), or its path.
    cert, key: secret references (env:/file:) of a new chain and key; they become the inventory's
        tls_cert and tls_key once served. Default: the inventory's own.
    test: say what would change, change nothing.
    journal: the journal (default: the records folder's).
    lock_wait: seconds to wait for another run holding a load balancer's run lock.
    """
    from ..stack import tls

    return tls.rotate(
        inventory_of(inventory), cert, key, test=test, journal=journal, command=command, lock_wait=lock_wait
    )
