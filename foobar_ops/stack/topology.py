"""What roles need to know about the whole stack, read from the inventory: ports, the domain,
which hosts serve the app, which one is the database primary, and where reads go."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.errors import FoobarOpsError, InventoryError, RoleError, TopologyError
from ..core.inventory import VarTypes, typed
from ..core.inventory.context import Ctx
from ..core.secrets import Secret

DEFAULT_PORTS = {"http": 80, "app": 8000, "mysql": 3306}
APP_ROOT = "/srv/foobar"
#: The load balancer's admin socket (HAProxy runtime API) and the backend of the web servers.
STATS_SOCKET = "/run/haproxy/admin.sock"
BACKEND = "bk_web"
#: the roles an inventory host may declare (roles.ROLES holds each one's states; a test holds the two
#: lists equal): reading an inventory needs only their names, not the roles' modules
ROLE_NAMES = ("firewall", "mysql", "nginx", "haproxy", "keepalived", "loadgen", "app", "exporters", "monitoring")
#: Idle keep-alive connections between Nginx and the app: Nginx lets go of one first (after
#: NGINX_APP_IDLE_S) and the app keeps it open longer (APP_KEEPALIVE_S). The other way round, the
#: app closes a connection just as Nginx sends a request on it, and a POST (never retried once
#: sent) fails with a 502.
NGINX_APP_IDLE_S = 30
APP_KEEPALIVE_S = 75


def check_roles(roles: list[str] | tuple[str, ...]) -> None:
    """Refuse role names that do not exist, naming them.

    roles: role names given on the command line or to a runbook.
    """
    unknown = [r for r in roles if r not in ROLE_NAMES]
    if unknown:
        raise RoleError(f"unknown role {', '.join(map(repr, unknown))} (known roles: {', '.join(ROLE_NAMES)})")


_PORT = typed.whole(1, 65535)
_NAME = typed.word(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", "a host or group name of the inventory")
_SQL_NAME = typed.word(r"[A-Za-z0-9_]{1,64}", "a database name of 1 to 64 letters, digits or '_'")
_SQL_USER = typed.word(r"[A-Za-z0-9_]{1,32}", "an account name of 1 to 32 letters, digits or '_'")
#: HAProxy's time format: a whole number and a unit (no unit: milliseconds).
_DURATION = typed.word(r"[0-9]{1,9}(us|ms|s|m|h|d)?", "a time such as 500ms, 2s or 1m")
#: Prometheus's and Alertmanager's time format: a whole number and a unit.
_PROM_DURATION = typed.word(r"[0-9]{1,6}(ms|s|m|h|d|w|y)", "a time such as 5s, 1m or 15d")
#: Alertmanager's own receiver kinds (a receiver of the inventory is passed to it as written, and
#: the whole file is checked with amtool before it goes live).
RECEIVER_KINDS = (
    "email_configs",
    "webhook_configs",
    "slack_configs",
    "pagerduty_configs",
    "opsgenie_configs",
    "victorops_configs",
    "pushover_configs",
    "wechat_configs",
    "telegram_configs",
    "discord_configs",
    "webex_configs",
    "sns_configs",
)
STACK_DATABASE: typed.Spec = {
    "name": _SQL_NAME,
    "user": _SQL_USER,
    "replication_user": _SQL_USER,
    "max_lag_s": typed.number(0, 3600, above_low=True),
    "password": typed.secret(),
    "replication_password": typed.secret(),
}
#: What every value of the stack section that a role or command uses must be: checked when the
#: inventory is loaded (load_inventory), and again where it is read (ports(), domain(), ...).
STACK_TYPES: typed.Spec = {
    "ports": typed.mapping_of({"http": _PORT, "app": _PORT, "mysql": _PORT}),
    "domain": typed.dns_name(),
    "app_source": typed.plain_path(),
    "database": typed.mapping_of(STACK_DATABASE, closed=False),
    "vip": typed.ipv4_address(),
    "vrrp_router_id": typed.whole(1, 255),
    # https at the load balancers; the certificate chain and its key are the secrets tls_cert and
    # tls_key (see roles/haproxy.py); ca: the CA file foobar_ops's own clients (verify, load tests)
    # trust for the site (default: the system's)
    "tls": typed.mapping_of({"port": _PORT, "hsts_include_subdomains": typed.switch(), "ca": typed.plain_path()}),
    # Prometheus, Alertmanager and the blackbox exporter on the host with the monitoring role; the
    # exporters on every host (see stack/monitoring.py)
    "monitoring": typed.mapping_of(
        {
            "scrape_interval": _PROM_DURATION,
            "evaluation_interval": _PROM_DURATION,
            "retention": _PROM_DURATION,
            "group_wait": _PROM_DURATION,
            "group_interval": _PROM_DURATION,
            "repeat_interval": _PROM_DURATION,
            "max_5xx_ratio": typed.number(0, 1, above_low=True),
            "disk_min_free": typed.number(0, 1, above_low=True),
            "alert_for": typed.mapping_of({}, closed=False),
            "webhook": typed.mapping_of({"address": typed.ipv4_address(), "port": _PORT}, required=("address",)),
            "receivers": typed.list_of(
                typed.mapping_of(
                    {
                        "name": _NAME,
                        "severity": typed.choice("warning", "critical"),
                        **{kind: typed.list_of(typed.mapping_of({}, closed=False), 1, 20) for kind in RECEIVER_KINDS},
                    },
                    required=("name",),
                ),
                0,
                20,
            ),
        }
    ),
    # the host that runs scheduled runbooks (`foobar-ops runbook schedule`; see stack/scheduler.py)
    "scheduler": _NAME,
    # two-person change control: every change to the hosts' roles goes through a saved plan that
    # someone other than its author approved (see ops.apply_plan)
    "change_control": typed.mapping_of({"require_approval": typed.switch()}),
    "firewall": typed.mapping_of(
        {
            "admin_sources": typed.list_of(typed.ip_network(), 1, 100),
            "confirm_timeout": typed.number(5, 600),
            "allow": typed.list_of(
                typed.mapping_of(
                    {
                        "port": _PORT,
                        "from": typed.list_of(typed.ip_network(), 1, 100),
                        "to": typed.list_of(_NAME, 1, 1000),
                    },
                    required=("port", "from", "to"),
                )
            ),
        }
    ),
}
#: The same for hosts' vars (the roles' settings; the roles check them again where they use them).
VAR_TYPES: typed.Spec = {
    "app_build": typed.word(r"[A-Za-z0-9._]{1,32}", "1 to 32 letters, digits, dots or underscores", numbers=True),
    "app_workers": typed.whole(1, 64),
    "app_threads": typed.whole(1, 256),
    "app_access_log": typed.switch(),
    "app_keep_releases": typed.whole(1, 100),
    "haproxy_weight": typed.whole(0, 256),
    "haproxy_timeout_connect": _DURATION,
    "haproxy_timeout_client": _DURATION,
    "haproxy_timeout_server": _DURATION,
    "haproxy_timeout_check": _DURATION,
    "haproxy_check_interval": _DURATION,
    "haproxy_check_fall": typed.whole(1, 1000),
    "haproxy_check_rise": typed.whole(1, 1000),
    "keepalived_interface": typed.word(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,14}", "a network interface name such as eth0"),
    "keepalived_priority": typed.whole(1, 254),
    "firewall": typed.switch(),
    "mysql_role": typed.choice("primary", "replica"),
    "mysql_server_id": typed.whole(1, 2**32 - 1),
    "mysql_read_weight": typed.whole(0, 1000),
    "mysql_read_pool": typed.switch(),
    "mysql_binlog_days": typed.whole(0, 99),
    "mysql_max_connections": typed.whole(10, 100000),
}
#: What the stack loader (stack.load_inventory) checks when it reads an inventory.
TYPES = VarTypes(stack=STACK_TYPES, vars=VAR_TYPES)

_VARS = Ctx(Path("."), Path("."), prefix="vars.")


def _host_checked(host: Any, key: str, value: Any, check: typed.Check) -> Any:
    """Return value checked; a TopologyError naming the host, the key and the value otherwise."""
    try:
        return check(value, _VARS)
    except InventoryError as err:
        raise TopologyError(f"host '{host.name}': key 'vars.{key}': {err.message}") from None


def host_value(host: Any, key: str, default: Any) -> Any:
    """Return a host's var (`default` when absent or null) checked against its type in VAR_TYPES;
    anything else is a TopologyError naming the host, the key and the value.

    host: an inventory Host.
    key: a key of VAR_TYPES.
    default: its value when the host has none.
    """
    value = host.vars.get(key)
    return default if value is None else _host_checked(host, key, value, VAR_TYPES[key])


def stack_vars(inventory: Any) -> dict[str, Any]:
    """Return the inventory's stack section with every value the stack uses checked (an Inventory
    built in Python, not loaded from a file, is checked here too); a TopologyError names the key.
    """
    ctx = Ctx(Path(str(inventory.path)), Path("."), prefix="stack.")
    try:
        return typed.check_tree(inventory.stack, STACK_TYPES, ctx)
    except InventoryError as err:
        raise TopologyError(str(err)) from None


def require_approval(inventory: Any) -> bool:
    """Return whether the inventory puts changes under two-person control
    (stack.change_control.require_approval, default false)."""
    control = stack_vars(inventory).get("change_control") or {}
    return bool(control.get("require_approval"))


def host_number(host: Any, key: str, default: int, low: int, high: int) -> int:
    """Return a whole number from a host's vars (`key`, `default` when absent) within [low, high];
    anything else (null too) is a TopologyError naming the host, the key and the value."""
    return int(_host_checked(host, key, host.vars.get(key, default), typed.whole(low, high)))


def host_switch(host: Any, key: str, default: bool) -> bool:
    """Return true or false from a host's vars (`key`, `default` when absent); anything else (null
    too) is a TopologyError naming the host, the key and the value."""
    return bool(_host_checked(host, key, host.vars.get(key, default), typed.switch()))


def web_weight(host: Any) -> int:
    """Return a web server's share of the load balancer's requests: vars.haproxy_weight (default 1,
    0 to 256 as HAProxy takes it)."""
    return host_number(host, "haproxy_weight", 1, 0, 256)


def ports(inventory: Any) -> dict[str, int]:
    """Return the stack's ports (stack.ports over the defaults)."""
    given = stack_vars(inventory).get("ports") or {}
    return {**DEFAULT_PORTS, **{k: v for k, v in given.items() if v is not None}}


def https_port(inventory: Any) -> int:
    """Return the port the load balancers serve https on (stack.tls.port, default 443): the one
    both the haproxy role binds and the firewall opens."""
    tls = stack_vars(inventory).get("tls") or {}
    return int(tls.get("port") or 443)


def site_scheme(inventory: Any) -> str:
    """Return how the site is reached: https when the inventory sets stack.tls, else http."""
    return "https" if stack_vars(inventory).get("tls") is not None else "http"


def site_port(inventory: Any) -> int:
    """Return the port the site is reached on: the https port with stack.tls, else the http one."""
    return https_port(inventory) if site_scheme(inventory) == "https" else ports(inventory)["http"]


def site_ca(inventory: Any) -> str | None:
    """Return the CA file foobar_ops's clients verify the site against (stack.tls.ca, relative to
    the inventory's folder), or None: the system's trust store."""
    tls = stack_vars(inventory).get("tls") or {}
    if not tls.get("ca"):
        return None
    path = Path(str(tls["ca"])).expanduser()
    return str(path if path.is_absolute() else Path(inventory.path).parent / path)


def site_url(inventory: Any, address: str | None = None) -> str:
    """Return the URL requests to the site are sent to (scheme, address, port; the Host header and
    the name TLS checks are the domain): the floating address by default."""
    return f"{site_scheme(inventory)}://{address or site_address(inventory)}:{site_port(inventory)}"


def domain(inventory: Any) -> str:
    """Return the site's domain (stack.domain, default foobar.com)."""
    return str(stack_vars(inventory).get("domain") or "foobar.com")


def web_hosts(inventory: Any) -> list[Any]:
    """Return the hosts with the nginx role, in inventory order (the load balancer's servers)."""
    return [h for h in inventory.hosts.values() if "nginx" in h.roles]


def lb_hosts(inventory: Any) -> list[Any]:
    """Return the load balancers: the hosts with the haproxy role, in inventory order (empty when
    there is none). Each one serves the same configuration; the one holding the floating address
    (stack.vip) takes the site's traffic."""
    return [h for h in inventory.hosts.values() if "haproxy" in h.roles]


def vip(inventory: Any) -> str | None:
    """Return the stack's floating address (stack.vip), or None when it has none."""
    value = stack_vars(inventory).get("vip")
    return str(value) if value else None


def site_address(inventory: Any) -> str:
    """Return the address the site is reached at: the floating address (stack.vip) when there is
    one, else the only load balancer's own address. Several load balancers without a floating
    address, or none at all, is a TopologyError naming what is missing."""
    address = vip(inventory)
    if address:
        return address
    lbs = lb_hosts(inventory)
    if not lbs:
        raise TopologyError(
            f"{inventory.path}: no host has the haproxy role, so there is no load balancer to send requests through"
        )
    if len(lbs) > 1:
        raise TopologyError(
            f"{inventory.path}: {len(lbs)} load balancers ({', '.join(h.name for h in lbs)}) need a floating "
            "address to be reached at: set stack.vip"
        )
    return str(lbs[0].address)


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
    stack = stack_vars(inventory).get("database") or {}
    lag = stack.get("max_lag_s") or 5  # null: the default
    out: dict[str, Any] = {
        "name": stack.get("name") or "foobar",
        "user": stack.get("user") or "foobar",
        "replication_user": stack.get("replication_user") or "repl",
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
