"""What roles need to know about the whole stack, read from the inventory: ports, the domain,
which hosts serve the app, which one is the database primary, and where reads go."""

from __future__ import annotations

from typing import Any

from ..core.errors import FoobarOpsError
from ..core.secrets import Secret

DEFAULT_PORTS = {"http": 80, "app": 8000, "mysql": 3306}
APP_ROOT = "/srv/foobar"
#: The load balancer's admin socket (HAProxy runtime API) and the backend of the web servers.
STATS_SOCKET = "/run/haproxy/admin.sock"
BACKEND = "bk_web"
#: Idle keep-alive connections between Nginx and the app: Nginx lets go of one first (after
#: NGINX_APP_IDLE_S) and the app keeps it open longer (APP_KEEPALIVE_S). The other way round, the
#: app closes a connection just as Nginx sends a request on it, and a POST (never retried once
#: sent) fails with a 502.
NGINX_APP_IDLE_S = 30
APP_KEEPALIVE_S = 75


class TopologyError(FoobarOpsError):
    """The inventory does not describe a stack the roles can build."""


def host_number(host: Any, key: str, default: int, low: int, high: int) -> int:
    """Return a whole number from a host's vars (`key`, `default` when absent) within [low, high];
    anything else is a TopologyError naming the host, the key and the value."""
    value = host.vars.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise TopologyError(
            f"host '{host.name}': key 'vars.{key}': must be a whole number from {low} to {high}, not {value!r}"
        )
    return value


def host_switch(host: Any, key: str, default: bool) -> bool:
    """Return true or false from a host's vars (`key`, `default` when absent); anything else is a
    TopologyError naming the host, the key and the value."""
    value = host.vars.get(key, default)
    if not isinstance(value, bool):
        raise TopologyError(f"host '{host.name}': key 'vars.{key}': must be true or false, not {value!r}")
    return value


def web_weight(host: Any) -> int:
    """Return a web server's share of the load balancer's requests: vars.haproxy_weight (default 1,
    0 to 256 as HAProxy takes it)."""
    return host_number(host, "haproxy_weight", 1, 0, 256)


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


def db_hosts(inventory: Any) -> list[Any]:
    """Return the database hosts (the mysql role), in inventory order; each has vars.mysql_role
    primary or replica (one alone may leave it out: it is the primary)."""
    dbs = [h for h in inventory.hosts.values() if "mysql" in h.roles]
    for h in dbs:
        role = h.vars.get("mysql_role", "primary" if len(dbs) == 1 else None)
        if role not in ("primary", "replica"):
            raise TopologyError(
                f"{inventory.path}: host '{h.name}': key 'vars.mysql_role': must be primary or replica, not {role!r}"
            )
    return dbs


def db_role(host: Any, inventory: Any) -> str:
    """Return a database host's role in the inventory: primary or replica."""
    return "primary" if host.name == db_primary(inventory).name else "replica"


def db_primary(inventory: Any) -> Any:
    """Return the database primary: the mysql host with vars.mysql_role primary (or the only one)."""
    dbs = db_hosts(inventory)
    primaries = [h for h in dbs if h.vars.get("mysql_role", "primary" if len(dbs) == 1 else None) == "primary"]
    if len(primaries) != 1:
        names = ", ".join(h.name for h in primaries) or "none"
        raise TopologyError(
            f"{inventory.path}: the stack needs exactly one mysql host with vars.mysql_role: primary (found: {names})"
        )
    return primaries[0]


def db_replicas(inventory: Any) -> list[Any]:
    """Return the database replicas, in inventory order."""
    primary = db_primary(inventory)
    return [h for h in db_hosts(inventory) if h.name != primary.name]


def read_weight(host: Any) -> int:
    """Return a database host's share of reads: vars.mysql_read_weight (default 1); 0 when
    vars.mysql_read_pool is false (it serves reads only when nothing else can)."""
    if not host_switch(host, "mysql_read_pool", True):
        return 0
    return host_number(host, "mysql_read_weight", 1, 0, 1000)


def db_read_pool(inventory: Any) -> list[Any]:
    """Return the hosts reads are spread over (weight above 0), primary first."""
    return [h for h in (db_primary(inventory), *db_replicas(inventory)) if read_weight(h)]


def db_settings(inventory: Any) -> dict[str, Any]:
    """Return the database name, the app's user and password secret, the replication user and its
    password secret, and the replication lag a healthy replica stays under.

    The passwords are the secrets mysql_app_password and mysql_repl_password, or references given
    as stack.database.password and stack.database.replication_password.
    """
    stack = inventory.stack.get("database") or {}
    lag = stack.get("max_lag_s", 5)
    if isinstance(lag, bool) or not isinstance(lag, (int, float)) or lag <= 0:
        raise TopologyError(
            f"{inventory.path}: key 'stack.database.max_lag_s': must be a number of seconds above 0, not {lag!r}"
        )
    out: dict[str, Any] = {
        "name": stack.get("name", "foobar"),
        "user": stack.get("user", "foobar"),
        "replication_user": stack.get("replication_user", "repl"),
        "max_lag_s": float(lag),
    }
    needs_replication = len([h for h in inventory.hosts.values() if "mysql" in h.roles]) > 1
    for key, name, what, needed in (
        ("password", "mysql_app_password", "the app's database password", True),
        ("replication_password", "mysql_repl_password", "with a replica, the replication password", needs_replication),
    ):
        secret_name = name
        out[key] = None
        if isinstance(stack.get(key), Secret):  # a reference given in place
            out[key] = stack[key]
            continue
        try:
            out[key] = inventory.secret(secret_name)
        except FoobarOpsError as err:
            if needed:
                raise TopologyError(
                    f"{inventory.path}: {what} must be a secret (secrets.{secret_name}): {err}"
                ) from None
    return out
