"""What roles need to know about the whole stack, read from the inventory: ports, the domain,
which hosts serve the app, which one is the database primary, and where reads go."""

from __future__ import annotations

from typing import Any

from ..core.errors import FoobarOpsError

DEFAULT_PORTS = {"http": 80, "app": 8000, "mysql": 3306}
APP_ROOT = "/srv/foobar"
#: The load balancer's admin socket (HAProxy runtime API) and the backend of the web servers.
STATS_SOCKET = "/run/haproxy/admin.sock"
BACKEND = "bk_web"


class TopologyError(FoobarOpsError):
    """The inventory does not describe a stack the roles can build."""


def ports(inventory: Any) -> dict[str, int]:
    """Return the stack's ports (stack.ports over the defaults)."""
    return {**DEFAULT_PORTS, **(inventory.stack.get("ports") or {})}


def domain(inventory: Any) -> str:
    """Return the site's domain (stack.domain, default foobar.com)."""
    return str(inventory.stack.get("domain", "foobar.com"))


def web_hosts(inventory: Any) -> list[Any]:
    """Return the hosts with the nginx role, in inventory order (the load balancer's servers)."""
    return [h for h in inventory.hosts.values() if "nginx" in h.roles]


def lb_host(inventory: Any) -> Any:
    """Return the load balancer: the first host with the haproxy role, or None when there is none."""
    return next((h for h in inventory.hosts.values() if "haproxy" in h.roles), None)


def app_hosts(inventory: Any) -> list[Any]:
    """Return the hosts with the app role."""
    return [h for h in inventory.hosts.values() if "app" in h.roles]


def db_primary(inventory: Any) -> Any:
    """Return the database primary: the mysql host with vars.mysql_role primary (or the only one)."""
    dbs = [h for h in inventory.hosts.values() if "mysql" in h.roles]
    primaries = [h for h in dbs if h.vars.get("mysql_role", "primary") == "primary"]
    if len(primaries) != 1:
        names = ", ".join(h.name for h in primaries) or "none"
        raise TopologyError(
            f"{inventory.path}: the stack needs exactly one mysql host with vars.mysql_role: primary (found: {names})"
        )
    return primaries[0]


def db_read_pool(inventory: Any) -> list[Any]:
    """Return the hosts reads are spread over: the primary, plus replicas once they exist."""
    primary = db_primary(inventory)
    replicas = [
        h
        for h in inventory.hosts.values()
        if "mysql" in h.roles and h.vars.get("mysql_role") == "replica" and h.vars.get("mysql_read_pool", False)
    ]
    return [primary] + replicas


def db_settings(inventory: Any) -> dict[str, Any]:
    """Return the database name, app user and the app password secret."""
    stack = inventory.stack.get("database") or {}
    try:
        secret = inventory.secret(stack.get("password_secret", "mysql_app_password"))
    except FoobarOpsError as err:
        raise TopologyError(
            f"{inventory.path}: the app's database password must be a secret (secrets.mysql_app_password): {err}"
        ) from None
    return {"name": stack.get("name", "foobar"), "user": stack.get("user", "foobar"), "password": secret}
