"""Role mysql: MariaDB on every database host, the same server config everywhere (a node starts
read-only), GTID replication from the inventory's primary to its replicas.

- the primary: made writable (refused when it replicates or a peer is writable), the app's
  database and its migrations, the app's accounts (one per app host, only the privileges the app
  uses) and the replication accounts (one per database host, replication rights only); all of
  them reach the replicas by replication;
- a replica: seeded from a consistent copy of the primary when new, pointed at the primary with
  GTIDs, started; a node holding transactions the primary lacks is refused, never overwritten.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...core import states as s
from ...core.errors import FoobarOpsError
from ...core.facts import Peer
from ...core.shell import cmd
from ...core.ssh import Remote
from ...core.states import State
from ...core.states.mysql import Settled, Topology
from ..build import app_source
from ..mariadb import MARKER
from ..monitoring import EXPORTER_GRANTS, EXPORTER_USER, exporter_password
from ..monitoring import settings as monitoring_settings
from ..topology import TopologyError, app_hosts, db_hosts, db_primary, db_settings, host_number, host_value, ports
from .base import Role, template
from .inputs import StackInputs

CNF = "/etc/mysql/mariadb.conf.d/60-foobar.cnf"
CLIENT_CNF = "/etc/mysql/foobar-replication.cnf"
#: What the app does with the database, and nothing more: it reads and adds items, and asks
#: each node whether it is a healthy replica (SHOW SLAVE STATUS).
APP_GRANTS = {"*.*": ["SLAVE MONITOR"]}
APP_DB_PRIVILEGES = ["SELECT", "INSERT"]


def migrations(inventory: Any) -> list[tuple[str, str]]:
    """Return the app's schema migrations (version, sql), from the app's source tree, in order."""
    folder = app_source(inventory) / "foobar_app" / "migrations"
    found = sorted(folder.glob("*.sql"))
    if not found:
        raise TopologyError(f"the app has no schema migrations in {folder}")
    return [(p.stem, p.read_text()) for p in found]


def peer(host: Any, inventory: Any) -> Peer:
    """Return a database host as the peer facts ask over the network."""
    return Peer(host.name, host.address, ports(inventory)["mysql"])


def seed_from(primary: Any, inventory: Any, database: str) -> Callable[[], bytes]:
    """Return a function that makes a consistent copy of the primary with its GTID position (a
    dump of the app's database and the accounts), for seeding a new replica. The copy holds
    password hashes: it goes from host to host through this process and is never kept.

    primary: the primary's Host.
    inventory: the Inventory.
    database: the app's database.
    """

    def dump() -> bytes:
        line = cmd(
            "mariadb-dump",
            "--single-transaction",
            "--gtid",
            "--master-data=1",
            "--system=users",
            "--insert-ignore",
            "--databases",
            database,
        )
        with Remote(primary, inventory) as remote:
            out = remote.run(line, sudo=primary.user != "root")
        if not out.ok:
            raise FoobarOpsError(
                f"seeding from {primary.name}: mariadb-dump failed: {out.error}: {out.stderr.strip()[-300:]}"
            )
        if "gtid_slave_pos" not in out.stdout:
            raise FoobarOpsError(f"seeding from {primary.name}: the copy carries no GTID position")
        return out.stdout.encode()

    return dump


def server_id_of(host: Any) -> int:
    """Return a database host's server id: vars.mysql_server_id, else the last number of its IPv4
    address (unique on one /24)."""
    if "mysql_server_id" in host.vars:
        return host_number(host, "mysql_server_id", 0, 1, 2**32 - 1)
    last = host.address.rsplit(".", 1)[-1]
    if not last.isdigit() or host.address.count(".") != 3:
        raise TopologyError(
            f"host '{host.name}': key 'vars.mysql_server_id': needed, as its address "
            f"{host.address} is not an IPv4 address to take one from"
        )
    return int(last)


def states(host: Any, inventory: Any, inputs: StackInputs | None = None) -> list[State[Any]]:
    """Return the mysql role's states for a host (its part as primary or replica)."""
    db = db_settings(inventory)
    primary = db_primary(inventory)
    server_id = server_id_of(host)
    ctx = {
        "address": host.address,
        "server_id": server_id,
        # typed where they are read (and MariaDB validates the file on the host before it is installed)
        "binlog_days": host_value(host, "mysql_binlog_days", 7),
        "max_connections": host_value(host, "mysql_max_connections", 200),
    }
    out: list[State[Any]] = [
        s.pkg.installed(names=["mariadb-server", "mariadb-client"], id="mysql:packages"),
        s.file.managed(
            CNF,
            template=template("mariadb-foobar.cnf.j2"),
            context=ctx,
            require=["mysql:packages"],
            validate="mariadbd --help --verbose >/dev/null",
            validate_in_context=True,
            id="mysql:config",
        ),
        s.service.running("mariadb", reload=False, watch=["mysql:config"], id="mysql:service"),
        # a switchover or failover that died part-way is finished or undone by `db status` first
        Settled(
            host.name, path=MARKER, inventory_path=str(inventory.path), require=["mysql:service"], id="mysql:settled"
        ),
    ]
    peers = [peer(h, inventory) for h in db_hosts(inventory) if h.name != host.name]
    if db["replication_password"] is not None:
        out.append(
            s.file.managed(
                CLIENT_CNF,
                template=template("mysql-client.cnf.j2"),
                mode="0600",
                context={"user": db["replication_user"], "password": db["replication_password"]},
                require=["mysql:packages"],
                id="mysql:client-cnf",
            )
        )
    if host.name != primary.name:
        out.append(
            s.mysql.replica(
                host.name,
                primary=peer(primary, inventory),
                user=db["replication_user"],
                password=db["replication_password"],
                client_cnf=CLIENT_CNF,
                seed=seed_from(primary, inventory, db["name"]),
                require=["mysql:settled", "mysql:client-cnf"],
                id="mysql:replica",
            )
        )
        return out
    ready = ["mysql:settled"] + (["mysql:client-cnf"] if peers else [])
    primary_state = s.mysql.primary(
        host.name,
        client_cnf=CLIENT_CNF,
        peers=peers,
        inventory_path=str(inventory.path),
        require=ready,
        id="mysql:primary",
    )
    out += [
        primary_state,
        s.mysql.database(db["name"], require=["mysql:primary"], id="mysql:database"),
        s.mysql.schema(db["name"], migrations(inventory), require=["mysql:database"], id="mysql:schema"),
        Topology(host.name, database=db["name"], require=["mysql:database"], id="mysql:topology"),
    ]
    for app in app_hosts(inventory):
        out.append(
            s.mysql.user(
                db["user"],
                host=app.address,
                password=db["password"],
                grants={f"`{db['name']}`.*": APP_DB_PRIVILEGES, **APP_GRANTS},
                require=["mysql:database"],
                id=f"mysql:user:{app.name}",
            )
        )
    if peers:
        for node in db_hosts(inventory):
            out.append(
                s.mysql.user(
                    db["replication_user"],
                    host=node.address,
                    password=db["replication_password"],
                    grants={"*.*": ["REPLICATION SLAVE"]},
                    require=["mysql:primary"],
                    id=f"mysql:replication-user:{node.name}",
                )
            )
    if monitoring_settings(inventory) is not None:
        # the MySQL exporter's account (over the local socket on every node, by replication)
        out.append(
            s.mysql.user(
                EXPORTER_USER,
                host="localhost",
                password=exporter_password(inventory),
                grants=EXPORTER_GRANTS,
                require=["mysql:primary"],
                id="mysql:exporter-user",
            )
        )
    return out


ROLE = Role("mysql", "database", states, "MariaDB: the primary (database, migrations, accounts) and its replicas")
