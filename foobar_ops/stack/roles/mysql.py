"""Role mysql (first part): MariaDB bound to the host's lab address, the app database and schema,
and an app user per app host with least privilege; admin through the unix socket."""

from __future__ import annotations

from typing import Any

from ...core import states as s
from ...core.shell import cmd
from ...core.states import State
from ..build import app_source
from ..topology import app_hosts, db_settings
from .base import Role, template

CNF = "/etc/mysql/mariadb.conf.d/60-foobar.cnf"
SCHEMA = "/etc/foobar/schema.sql"
SCHEMA_STAMP = "/var/lib/foobar/schema.sha256"
APP_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")


def schema_sql(inventory: Any) -> str:
    """Return the app's schema, from the app's source tree."""
    return (app_source(inventory) / "foobar_app" / "schema.sql").read_text()


def states(host: Any, inventory: Any) -> list[State[Any]]:
    """Return the mysql role's states for a host."""
    db = db_settings(inventory)
    server_id = host.vars.get("mysql_server_id", int(host.address.split(".")[-1]))
    ctx = {
        "address": host.address,
        "server_id": server_id,
        "max_connections": host.vars.get("mysql_max_connections", 200),
    }
    out = [
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
        s.mysql.database(db["name"], require=["mysql:service"], id="mysql:database"),
        s.file.directory("/etc/foobar", mode="0755", id="mysql:etc"),
        s.file.directory("/var/lib/foobar", mode="0700", id="mysql:var"),
        s.file.managed(
            SCHEMA, content=schema_sql(inventory), mode="0644", require=["mysql:etc"], id="mysql:schema-file"
        ),
        s.cmd.run(
            f"mysql {cmd(db['name'])} < {SCHEMA} && sha256sum {SCHEMA} > {SCHEMA_STAMP}",
            unless=f"sha256sum --status -c {SCHEMA_STAMP}",
            label="apply the app schema",
            require=["mysql:database", "mysql:schema-file", "mysql:var"],
            id="mysql:schema",
        ),
    ]
    for app in app_hosts(inventory):
        out.append(
            s.mysql.user(
                db["user"],
                host=app.address,
                password=db["password"],
                database=db["name"],
                privileges=APP_PRIVILEGES,
                require=["mysql:database"],
                id=f"mysql:user:{app.name}",
            )
        )
    return out


ROLE = Role("mysql", "database", states, "MariaDB: the foobar database, its schema and the app's users")
