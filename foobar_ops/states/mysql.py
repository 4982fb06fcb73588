"""MariaDB/MySQL states, run as the database admin through the unix socket: mysql.database and
mysql.user (password stored as a hash; grants of least privilege). Identifiers are validated, and
the password never travels or appears in clear: only its mysql_native_password hash does."""
from __future__ import annotations

import hashlib
import re

from ..secrets import Secret
from ..shell import cmd, staged
from .base import Plan, State, StateError

_IDENT = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_HOST = re.compile(r"^[A-Za-z0-9.%_:-]{1,255}$")
_PRIVS = {"SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "ALTER", "INDEX", "REPLICATION SLAVE",
          "REPLICATION CLIENT", "BINLOG MONITOR", "SLAVE MONITOR", "REPLICA MONITOR", "PROCESS",
          "RELOAD", "LOCK TABLES", "ALL PRIVILEGES"}


def _ident(value: str, what: str) -> str:
    if not _IDENT.match(value or ""):
        raise StateError(f"{what} {value!r} is not a plain identifier ([A-Za-z0-9_], at most 64)")
    return value


def native_hash(password: str) -> str:
    """Return the mysql_native_password hash of a password: '*' + SHA1(SHA1(password)) in hex.

    password: the clear password.
    """
    return "*" + hashlib.sha1(hashlib.sha1(password.encode()).digest()).hexdigest().upper()


def sql_probe(sql: str) -> str:
    """Return a shell snippet that runs read-only SQL as the admin and prints tab-separated rows."""
    return f"mysql --batch --skip-column-names -e {cmd(sql)}"


class Database(State):
    """mysql.database: a database exists (utf8mb4).

    name: the database name.
    """

    kind = "mysql.database"

    def __init__(self, name, **kw):
        super().__init__(_ident(name, "database name"), **kw)

    def probe(self) -> str:
        return sql_probe(f"SELECT CONCAT('db=', schema_name) FROM information_schema.schemata "
                         f"WHERE schema_name = '{self.name}'")

    def plan(self, facts: str) -> Plan:
        if "ERROR" in facts and "db=" not in facts:
            return Plan(error=f"cannot query the database server: {facts.strip()[-300:]}")
        if f"db={self.name}" in facts.split():
            return Plan(comment=f"database {self.name} exists")
        return Plan({"old": None, "new": self.name},
                    [cmd("mysql", "-e", f"CREATE DATABASE IF NOT EXISTS `{self.name}` CHARACTER SET utf8mb4")],
                    comment=f"database {self.name} created")


class User(State):
    """mysql.user: an account user@host with this password and exactly these privileges on one
    database.

    name: the user.
    host: the client host (an address, or a pattern with %).
    password: a Secret.
    database: the database the grants are on.
    privileges: e.g. ["SELECT", "INSERT", "UPDATE", "DELETE"].
    """

    kind = "mysql.user"

    def __init__(self, name, *, host, password: Secret, database, privileges=("SELECT",), **kw):
        user = _ident(name, "user name")
        if not _HOST.match(host or ""):
            raise StateError(f"mysql.user {name}: host {host!r} is not an address or pattern")
        super().__init__(f"{user}@{host}", id=kw.pop("id", None) or f"mysql.user:{user}@{host}", **kw)
        self.user, self.host, self.password, self.database = user, host, password, _ident(database, "database")
        self.privileges = sorted({p.upper() for p in privileges})
        unknown = [p for p in self.privileges if p not in _PRIVS]
        if unknown:
            raise StateError(f"mysql.user {name}: unknown privilege(s) {', '.join(unknown)}")

    def probe(self) -> str:
        who = f"'{self.user}'@'{self.host}'"
        return (sql_probe(f"SELECT CONCAT('auth=', authentication_string) FROM mysql.user "
                          f"WHERE User = '{self.user}' AND Host = '{self.host}'")
                + f"; {sql_probe(f'SHOW GRANTS FOR {who}')} 2>/dev/null | sed 's/^/grant: /'; true")

    def _granted(self, facts: str) -> list[str]:
        """Return the privileges granted on the database (with "GRANT OPTION" when it is given)."""
        pattern = re.compile(r"^grant: GRANT (.+?) ON `?%s`?\.\* TO .*?( WITH GRANT OPTION)?$" % re.escape(self.database))
        for line in facts.splitlines():
            m = pattern.match(line.rstrip())
            if m:
                return sorted([p.strip() for p in m.group(1).split(",")] + (["GRANT OPTION"] if m.group(2) else []))
        return []

    def plan(self, facts: str) -> Plan:
        if "ERROR" in facts and "auth=" not in facts:
            return Plan(error=f"cannot query the database server: {facts.strip()[-300:]}")
        auth = next((ln[5:].strip() for ln in facts.splitlines() if ln.startswith("auth=")), None)
        want = native_hash(self.password.reveal())
        who = f"'{self.user}'@'{self.host}'"
        on = f"`{self.database}`.*"
        grant = f"GRANT {', '.join(self.privileges)} ON {on} TO {who}"
        if auth is None:
            sql = [f"CREATE USER {who} IDENTIFIED BY PASSWORD '{want}'", grant]
            return self._plan({"old": None, "new": {"privileges": self.privileges}}, sql, f"user {self.name} created")
        sql, old, new = [], {}, {}
        if auth != want:
            sql.append(f"ALTER USER {who} IDENTIFIED BY PASSWORD '{want}'")
            old["password"], new["password"] = "(other)", "(from the secret)"
        have = self._granted(facts)
        if have != self.privileges:
            sql += [f"REVOKE ALL PRIVILEGES ON {on} FROM {who}"] if have else []
            sql += [f"REVOKE GRANT OPTION ON {on} FROM {who}"] if "GRANT OPTION" in have else []
            sql.append(grant)
            old["privileges"], new["privileges"] = have, self.privileges
        if not sql:
            return Plan(comment=f"user {self.name} is in the wanted state")
        return self._plan({"old": old, "new": new}, sql, f"user {self.name} updated: {', '.join(new)}")

    def _plan(self, changes: dict, sql: list[str], comment: str) -> Plan:
        body = ";\n".join(sql) + ";\n"
        return Plan(changes, [f"mysql < {staged('sql')}"], comment=comment, uploads={"sql": body.encode()})
