"""Stack roles: each role is a function from a host's data to desired states.

ROLE_NAMES lists the roles an inventory host may declare; anything else is
rejected when the inventory is loaded.
"""

from __future__ import annotations

ROLE_NAMES: tuple[str, ...] = ("haproxy", "nginx", "app", "mysql")
