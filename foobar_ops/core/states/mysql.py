"""MariaDB/MySQL states, run as the database admin through the unix socket: mysql.database and
mysql.user (password stored as a hash; grants of least privilege). Identifiers are validated, and
the password never travels or appears in clear: only its mysql_native_password hash does."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from ..facts import Account, AccountFact, SQLFact, SQLRows
from ..secrets import Secret
from ..shell import cmd, staged
from .base import Plan, State, StateError

_IDENT = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_HOST = re.compile(r"^[A-Za-z0-9.%_:-]{1,255}$")
_PRIVS = {
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "CREATE",
    "DROP",
    "ALTER",
    "INDEX",
    "REPLICATION SLAVE",
    "REPLICATION CLIENT",
    "BINLOG MONITOR",
    "SLAVE MONITOR",
    "REPLICA MONITOR",
    "PROCESS",
    "RELOAD",
    "LOCK TABLES",
    "ALL PRIVILEGES",
}


def _ident(value: str, what: str) -> str:
    if not _IDENT.match(value or ""):
        raise StateError(f"{what} {value!r} is not a plain identifier ([A-Za-z0-9_], at most 64)")
    return value


def native_hash(password: str) -> str:
    """Return the mysql_native_password hash of a password: '*' + SHA1(SHA1(password)) in hex.

    password: the clear password.
    """
    return "*" + hashlib.sha1(hashlib.sha1(password.encode()).digest()).hexdigest().upper()


class Database(State[SQLRows]):
    """mysql.database: a database exists (utf8mb4).

    name: the database name.
    """

    kind = "mysql.database"

    def __init__(self, name: str, **kw: Any) -> None:
        super().__init__(_ident(name, "database name"), **kw)

    def fact(self) -> SQLFact:
        return SQLFact(
            f"SELECT schema_name FROM information_schema.schemata WHERE schema_name = '{self.name}'",
            f"database {self.name}",
        )

    def plan(self, fact: SQLRows) -> Plan:
        if (self.name,) in fact.rows:
            return Plan(comment=f"database {self.name} exists")
        return Plan(
            {"old": None, "new": self.name},
            [cmd("mysql", "-e", f"CREATE DATABASE IF NOT EXISTS `{self.name}` CHARACTER SET utf8mb4")],
            comment=f"database {self.name} created",
        )


class User(State["Account | None"]):
    """mysql.user: an account user@host with this password and exactly these privileges on one
    database.

    name: the user.
    host: the client host (an address, or a pattern with %).
    password: a Secret.
    database: the database the grants are on.
    privileges: e.g. ["SELECT", "INSERT", "UPDATE", "DELETE"].
    """

    kind = "mysql.user"

    def __init__(
        self,
        name: str,
        *,
        host: str,
        password: Secret,
        database: str,
        privileges: tuple[str, ...] | list[str] = ("SELECT",),
        **kw: Any,
    ) -> None:
        user = _ident(name, "user name")
        if not _HOST.match(host or ""):
            raise StateError(f"mysql.user {name}: host {host!r} is not an address or pattern")
        super().__init__(f"{user}@{host}", id=kw.pop("id", None) or f"mysql.user:{user}@{host}", **kw)
        self.user, self.host, self.password, self.database = user, host, password, _ident(database, "database")
        self.privileges = sorted({p.upper() for p in privileges})
        unknown = [p for p in self.privileges if p not in _PRIVS]
        if unknown:
            raise StateError(f"mysql.user {name}: unknown privilege(s) {', '.join(unknown)}")

    def fact(self) -> AccountFact:
        return AccountFact(self.user, self.host)

    def _granted(self, account: Account) -> list[str]:
        """Return the privileges granted on the database (with "GRANT OPTION" when it is given)."""
        on = re.escape(self.database)
        pattern = re.compile(rf"^GRANT (.+?) ON `?{on}`?\.\* TO .*?( WITH GRANT OPTION)?$")
        for line in account.grants:
            m = pattern.match(line.rstrip())
            if m:
                return sorted([p.strip() for p in m.group(1).split(",")] + (["GRANT OPTION"] if m.group(2) else []))
        return []

    def plan(self, fact: Account | None) -> Plan:
        want = native_hash(self.password.reveal())
        who = f"'{self.user}'@'{self.host}'"
        on = f"`{self.database}`.*"
        grant = f"GRANT {', '.join(self.privileges)} ON {on} TO {who}"
        if fact is None:
            create = [f"CREATE USER {who} IDENTIFIED BY PASSWORD '{want}'", grant]
            return self._plan(
                {"old": None, "new": {"privileges": self.privileges}}, create, f"user {self.name} created"
            )
        sql: list[str] = []
        old: dict[str, Any] = {}
        new: dict[str, Any] = {}
        if fact.auth != want:
            sql.append(f"ALTER USER {who} IDENTIFIED BY PASSWORD '{want}'")
            old["password"], new["password"] = "(other)", "(from the secret)"
        have = self._granted(fact)
        if have != self.privileges:
            sql += [f"REVOKE ALL PRIVILEGES ON {on} FROM {who}"] if have else []
            sql += [f"REVOKE GRANT OPTION ON {on} FROM {who}"] if "GRANT OPTION" in have else []
            sql.append(grant)
            old["privileges"], new["privileges"] = have, self.privileges
        if not sql:
            return Plan(comment=f"user {self.name} is in the wanted state")
        return self._plan({"old": old, "new": new}, sql, f"user {self.name} updated: {', '.join(new)}")

    def _plan(self, changes: dict[str, Any], sql: list[str], comment: str) -> Plan:
        body = ";\n".join(sql) + ";\n"
        return Plan(changes, [f"mysql < {staged('sql')}"], comment=comment, uploads={"sql": body.encode()})
