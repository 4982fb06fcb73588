"""MariaDB states, run as the database admin through the unix socket: mysql.database,
mysql.user (password as a hash; exactly the grants asked for, database and global ones),
mysql.schema (versioned migrations recorded in the database), mysql.primary (the writable node)
and mysql.replica (replication from the primary: seeded, started, re-pointed or refused).
Identifiers are validated; passwords never travel or appear in clear where a hash will do."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from typing import Any

from .. import gtid
from ..facts import Account, AccountFact, Fact, Peer, ReplicationFact, ReplicationInfo, SQLFact, SQLRows
from ..secrets import Secret
from ..shell import cmd, staged
from .base import Plan, State, StateError

_IDENT = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_HOST = re.compile(r"^[A-Za-z0-9.%_:-]{1,255}$")
_ON = re.compile(r"^(\*\.\*|`[A-Za-z0-9_]{1,64}`\.\*)$")
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
    "REPLICATION SLAVE ADMIN",
    "PROCESS",
    "RELOAD",
    "LOCK TABLES",
    "EVENT",
    "TRIGGER",
    "SHOW VIEW",
    "ALL PRIVILEGES",
}
_GRANT = re.compile(r"^GRANT (.+?) ON (\S+) TO \S+?(?: IDENTIFIED BY .*?)?( WITH GRANT OPTION)?$")
_ROLE_GRANT = re.compile(r"^GRANT (`[^`]+`) TO \S+$")
#: Names MariaDB shows for older privilege names (10.5 renamed them).
ALIASES = {"REPLICATION CLIENT": "BINLOG MONITOR", "REPLICA MONITOR": "SLAVE MONITOR"}
MIN_MARIADB = (10, 6)
#: a switchover turns the old primary into a replica with MASTER_DEMOTE_TO_SLAVE (10.10 and later)
MIN_MARIADB_DEMOTE = (10, 10)
#: the topology row: (epoch, primary name), written on the primary by every role change (and by
#: the role when it finds none), replicated; the app writes only to a writable node that is not
#: a replica and whose row names itself with the highest epoch the app can see
EPOCH_TABLE = "foobar_topology"


def _ident(value: str, what: str) -> str:
    if not _IDENT.match(value or ""):
        raise StateError(f"{what} {value!r} is not a plain identifier ([A-Za-z0-9_], at most 64)")
    return value


def sql_string(value: str) -> str:
    """Return a value as an SQL string literal (quotes and backslashes escaped)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def native_hash(password: str) -> str:
    """Return the mysql_native_password hash of a password: '*' + SHA1(SHA1(password)) in hex.

    password: the clear password.
    """
    return "*" + hashlib.sha1(hashlib.sha1(password.encode()).digest()).hexdigest().upper()


def _staged_sql(sql: list[str], name: str = "sql") -> tuple[list[str], dict[str, bytes | Callable[[], bytes]]]:
    body = ";\n".join(sql) + ";\n"
    return [f"mysql < {staged(name)}"], {name: body.encode()}


def _version_error(info: ReplicationInfo, where: str) -> str | None:
    version = info.mariadb()
    if version is None or version[:2] < MIN_MARIADB:
        found = info.local.get("version", "?")
        return (
            f"{where}: the server is {found}; foobar_ops runs MariaDB {'.'.join(map(str, MIN_MARIADB))} "
            "or newer (GTID replication as MariaDB does it)"
        )
    return None


def epoch_sql(database: str, epoch: int, primary: str) -> str:
    """Return the statements that make the topology row (epoch, primary) in a database.

    database: the app's database.
    epoch: the new epoch (a whole number, higher than any seen).
    primary: the name of the node that is the primary from now on.
    """
    table = f"`{_ident(database, 'database name')}`.`{EPOCH_TABLE}`"
    return (
        f"CREATE TABLE IF NOT EXISTS {table} (id TINYINT UNSIGNED PRIMARY KEY, epoch BIGINT UNSIGNED NOT NULL, "
        "primary_name VARCHAR(255) NOT NULL, at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) "
        "ON UPDATE CURRENT_TIMESTAMP(6)) ENGINE=InnoDB; "
        f"INSERT INTO {table} (id, epoch, primary_name) VALUES (1, {int(epoch)}, {sql_string(primary)}) "
        "ON DUPLICATE KEY UPDATE epoch = VALUES(epoch), primary_name = VALUES(primary_name)"
    )


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


def parse_grants(lines: Sequence[str]) -> dict[str, list[str]]:
    """Return an account's grants from SHOW GRANTS: on (`db`.* or *.*) -> sorted privileges
    ("GRANT OPTION" included when given; the bare USAGE left out).

    lines: the SHOW GRANTS lines.
    """
    out: dict[str, set[str]] = {}
    for line in lines:
        role = _ROLE_GRANT.match(line.strip())
        if role:  # a role held: counted, so that an account holding one is not as wanted
            out.setdefault("roles", set()).add(role.group(1))
            continue
        m = _GRANT.match(line.strip())
        if not m:
            continue
        privs = {p.strip() for p in m.group(1).split(",")} - {"USAGE"}
        if m.group(3):
            privs.add("GRANT OPTION")
        if privs:
            out.setdefault(m.group(2), set()).update(privs)
    return {on: sorted(p) for on, p in sorted(out.items())}


class User(State["Account | None"]):
    """mysql.user: an account user@host with this password and exactly these grants.

    name: the user.
    host: the client host (an address, or a pattern with %).
    password: a Secret.
    database, privileges: grants on one database, e.g. database="foobar", privileges=["SELECT"]; or
    grants: every grant, e.g. {"`foobar`.*": ["SELECT", "INSERT"], "*.*": ["SLAVE MONITOR"]}.
    Any other grant the account holds (another database, a global one) is revoked.
    """

    kind = "mysql.user"

    def __init__(
        self,
        name: str,
        *,
        host: str,
        password: Secret,
        database: str | None = None,
        privileges: Sequence[str] = ("SELECT",),
        grants: dict[str, Sequence[str]] | None = None,
        **kw: Any,
    ) -> None:
        user = _ident(name, "user name")
        if not _HOST.match(host or ""):
            raise StateError(f"mysql.user {name}: host {host!r} is not an address or pattern")
        super().__init__(f"{user}@{host}", id=kw.pop("id", None) or f"mysql.user:{user}@{host}", **kw)
        self.user, self.host, self.password = user, host, password
        if grants is None:
            if database is None:
                raise StateError(f"mysql.user {name}: give database= and privileges=, or grants=")
            grants = {f"`{_ident(database, 'database')}`.*": privileges}
        self.grants = {
            on: sorted({ALIASES.get(p.upper(), p.upper()) for p in privs}) for on, privs in sorted(grants.items())
        }
        for on, privs in self.grants.items():
            if not _ON.match(on):
                raise StateError(f"mysql.user {name}: {on!r} is not *.* or `database`.*")
            unknown = [p for p in privs if p not in _PRIVS]
            if unknown:
                raise StateError(f"mysql.user {name}: unknown privilege(s) {', '.join(unknown)}")
        self.grants = {on: privs for on, privs in self.grants.items() if privs}

    @property
    def privileges(self) -> list[str]:
        """The privileges of the account's single database grant (for a one-database account)."""
        return next((p for on, p in self.grants.items() if on != "*.*"), [])

    def fact(self) -> AccountFact:
        return AccountFact(self.user, self.host)

    def _grant_sql(self, who: str) -> list[str]:
        return [
            f"GRANT {', '.join(p for p in privs if p != 'GRANT OPTION')} ON {on} TO {who}"
            + (" WITH GRANT OPTION" if "GRANT OPTION" in privs else "")
            for on, privs in self.grants.items()
        ]

    def plan(self, fact: Account | None) -> Plan:
        want = native_hash(self.password.reveal())
        who = f"'{self.user}'@'{self.host}'"
        if fact is None:
            create = [f"CREATE USER {who} IDENTIFIED BY PASSWORD '{want}'", *self._grant_sql(who)]
            return self._plan({"old": None, "new": {"grants": self.grants}}, create, f"user {self.name} created")
        sql: list[str] = []
        old: dict[str, Any] = {}
        new: dict[str, Any] = {}
        if fact.auth != want:
            sql.append(f"ALTER USER {who} IDENTIFIED BY PASSWORD '{want}'")
            old["password"], new["password"] = "(other)", "(from the secret)"
        have = parse_grants(fact.grants)
        if have != self.grants:
            sql += [f"REVOKE ALL PRIVILEGES, GRANT OPTION FROM {who}"]
            sql += [f"REVOKE {role} FROM {who}" for role in have.get("roles", [])]
            sql += self._grant_sql(who)
            old["grants"], new["grants"] = have, self.grants
        if not sql:
            return Plan(comment=f"user {self.name} is in the wanted state")
        return self._plan({"old": old, "new": new}, sql, f"user {self.name} updated: {', '.join(new)}")

    def _plan(self, changes: dict[str, Any], sql: list[str], comment: str) -> Plan:
        commands, uploads = _staged_sql(sql)
        return Plan(changes, commands, comment=comment, uploads=uploads)


MIGRATIONS_TABLE = "schema_migrations"


class Schema(State[SQLRows]):
    """mysql.schema: a database's schema at the latest of its migrations, each applied once and in
    order, recorded (version and checksum) in the database itself, so replicas and a promoted
    replica know what was applied.

    name: the database.
    migrations: (version, sql) pairs in order; a version's sql must never change once applied.
    """

    kind = "mysql.schema"

    def __init__(self, name: str, migrations: Sequence[tuple[str, str]], **kw: Any) -> None:
        super().__init__(_ident(name, "database name"), **kw)
        self.migrations = [(str(v), sql) for v, sql in migrations]
        versions = [v for v, _ in self.migrations]
        if len(set(versions)) != len(versions) or versions != sorted(versions):
            raise StateError(f"{self.id}: migration versions must be unique and in order: {versions}")

    def fact(self) -> SQLFact:
        return SQLFact(
            f"SELECT version, checksum FROM `{self.name}`.`{MIGRATIONS_TABLE}` ORDER BY version",
            f"migrations of {self.name}",
            missing_table_is_empty=True,
        )

    def plan(self, fact: SQLRows) -> Plan:
        applied = {row[0]: row[1] for row in fact.rows if len(row) == 2}
        todo = []
        for version, sql in self.migrations:
            digest = hashlib.sha256(sql.encode()).hexdigest()
            if version in applied and applied[version] != digest:
                return Plan(
                    error=f"migration {version} of {self.name} changed after it was applied "
                    "(add a new migration instead)"
                )
            if version not in applied:
                todo.append((version, sql, digest))
        if not todo:
            return Plan(comment=f"schema of {self.name} is at {self.migrations[-1][0] if self.migrations else '-'}")
        table = f"`{self.name}`.`{MIGRATIONS_TABLE}`"
        body = [
            f"CREATE TABLE IF NOT EXISTS {table} (version VARCHAR(64) PRIMARY KEY, checksum CHAR(64) NOT NULL, "
            "applied_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB",
            f"USE `{self.name}`",
        ]
        for version, sql, digest in todo:
            body += [
                sql.strip().rstrip(";"),
                f"INSERT INTO {table} (version, checksum) VALUES ({sql_string(version)}, '{digest}')",
            ]
        commands, uploads = _staged_sql(body)
        versions = [v for v, _, _ in todo]
        return Plan(
            {"old": sorted(applied), "new": [v for v, _ in self.migrations]},
            commands,
            comment=f"migrations {', '.join(versions)} applied to {self.name}",
            uploads=uploads,
        )


class Primary(State[ReplicationInfo]):
    """mysql.primary: this node is the writable primary: it replicates from nobody, no peer is
    writable, and read_only is off (every node starts read-only; only this makes one writable).
    Fail closed: a peer that cannot be asked may be a primary already, so a read-only node is not
    made writable then (the refusal names the peer and `foobar-ops db unfence`).

    name: the node's inventory name.
    client_cnf: the option file used to ask peers.
    peers: the other database nodes.
    inventory_path: named in the refusal's command.
    """

    kind = "mysql.primary"

    def __init__(
        self, name: str, *, client_cnf: str, peers: Sequence[Peer] = (), inventory_path: str = "INVENTORY", **kw: Any
    ) -> None:
        super().__init__(name, id=kw.pop("id", None) or "mysql:primary", **kw)
        self.client_cnf, self.peers, self.inventory_path = client_cnf, tuple(peers), inventory_path

    def fact(self) -> ReplicationFact:
        return ReplicationFact(self.client_cnf, self.peers)

    def steady(self, fact: ReplicationInfo) -> Any:
        return fact.steady(peers=True)  # whether a peer is writable (or silent) decides this plan

    def plan(self, fact: ReplicationInfo) -> Plan:
        bad = _version_error(fact, self.name)
        if bad:
            return Plan(error=bad)
        source = fact.replica.get("Master_Host")
        source = next((peer.name for peer in self.peers if peer.host == source), source)
        if source:
            return Plan(
                error=f"{self.name} replicates from {source} but the inventory calls it the primary; "
                "run `foobar-ops db switchover` (or failover) rather than apply, or make the inventory "
                "name the node that is the primary"
            )
        silent = {n: peer for n, peer in fact.peers.items() if not isinstance(peer, dict)}
        # a node that holds no database of its own is the pair's first primary being set up (its
        # peers may not run MariaDB yet): it has no data that a second primary could split
        holds_data = str(fact.local.get("user_schemas", "1")) != "0"
        if silent and fact.read_only and holds_data:
            names = ", ".join(silent)
            why = "; ".join(f"{n}: {str(err)[-160:]}" for n, err in silent.items())
            return Plan(
                error=f"cannot ask {names} whether it is writable ({why}): refusing to make {self.name} "
                f"writable, as {names} may be a primary already (fail closed); bring {names} back, or when "
                f"it is known to be gone for good run `foobar-ops db unfence -i {self.inventory_path} "
                + " ".join(f"--peer-gone {n}" for n in silent)
                + "`"
            )
        writable = [n for n, peer in fact.peers.items() if isinstance(peer, dict) and peer.get("read_only") == "0"]
        if writable:
            return Plan(
                error=f"{', '.join(writable)} is writable too: making {self.name} writable would split the "
                "data; fence it (read_only) or run `foobar-ops db failover`/`switchover` first"
            )
        if not fact.read_only:
            return Plan(comment=f"{self.name} is the writable primary")
        return Plan(
            {"old": {"read_only": True}, "new": {"read_only": False}},
            [cmd("mysql", "-e", "SET GLOBAL read_only = 0")],
            comment=f"{self.name} made writable (the primary)",
        )


class Replica(State[ReplicationInfo]):
    """mysql.replica: this node replicates from the primary with GTIDs (slave_pos). A healthy
    replica is left alone; stopped threads are started; a new replica is seeded from a consistent
    copy of the primary; a former primary whose transactions all reached the primary rejoins; a
    node that holds transactions the primary lacks (errant GTIDs) is refused, never overwritten.

    name: the node's inventory name.
    primary: the primary as a Peer.
    user, password: the replication account (a Secret).
    client_cnf: the option file with that account (used to ask the primary for its GTIDs).
    seed: returns a consistent copy of the primary with its GTID position (a dump), when needed.
    connect_wait: seconds to wait for both replication threads to run after a start.
    """

    kind = "mysql.replica"

    def __init__(
        self,
        name: str,
        *,
        primary: Peer,
        user: str,
        password: Secret,
        client_cnf: str,
        seed: Callable[[], bytes] | None = None,
        connect_wait: int = 30,
        **kw: Any,
    ) -> None:
        super().__init__(name, id=kw.pop("id", None) or "mysql:replica", **kw)
        self.primary, self.user, self.password = primary, _ident(user, "user name"), password
        self.client_cnf, self.seed, self.connect_wait = client_cnf, seed, connect_wait

    def fact(self) -> ReplicationFact:
        return ReplicationFact(self.client_cnf, (self.primary,))

    def steady(self, fact: ReplicationInfo) -> Any:
        # not the primary's own state: the same run may just have made it writable (the database
        # phase takes the primary first); what of it decides this plan shows in the plan itself
        return fact.steady()

    def _change_master(self, *extra: str) -> str:
        p = self.primary
        options = [
            f"MASTER_HOST={sql_string(p.host)}",
            f"MASTER_PORT={p.port}",
            f"MASTER_USER={sql_string(self.user)}",
            f"MASTER_PASSWORD={sql_string(self.password.reveal())}",
            "MASTER_USE_GTID=slave_pos",
            "MASTER_CONNECT_RETRY=1",
            *extra,
        ]
        return "CHANGE MASTER TO " + ", ".join(options)

    def _wait_running(self) -> str:
        """A command that waits until both threads run (exit 1 with the status when they do not)."""
        status = cmd("mysql", "-e", "SHOW SLAVE STATUS\\G")
        return (
            f"i=0; until {status} | grep -q 'Slave_IO_Running: Yes' && {status} | grep -q 'Slave_SQL_Running: Yes'; "
            f"do i=$((i+1)); if [ $i -ge {self.connect_wait * 5} ]; then {status} | grep -E "
            "'Running|Error|Master_Host' >&2; echo 'replication did not start' >&2; exit 1; fi; sleep 0.2; done"
        )

    def plan(self, fact: ReplicationInfo) -> Plan:
        bad = _version_error(fact, self.name)
        if bad:
            return Plan(error=bad)
        rep, p = fact.replica, self.primary
        if rep.get("Master_Host") == p.host and rep.get("Using_Gtid") in ("Slave_Pos", "Current_Pos"):
            return self._running(rep)
        if not fact.read_only and not rep.get("Master_Host"):
            return Plan(
                error=f"{self.name} is a writable primary (it replicates from nobody) but the inventory calls it "
                f"a replica of {p.name}; run `foobar-ops db switchover` to swap roles without losing "
                "writes, or make the inventory name the node that is the primary"
            )
        peer = fact.peers.get(p.name)
        if not isinstance(peer, dict):
            return Plan(error=f"cannot ask the primary {p.name} ({p.host}) for its GTID position: {peer}")
        errant = gtid.missing(fact.local.get("gtid_binlog_state"), peer.get("gtid_binlog_state"))
        if errant:
            return Plan(
                error=f"{self.name} holds transactions the primary {p.name} lacks (errant GTIDs "
                f"{', '.join(map(str, errant))}): refusing to replicate over them; reconcile the data "
                "by hand (or rebuild this node) first"
            )
        if rep.get("Master_Host"):
            return self._start(
                f"re-point replication from {rep['Master_Host']} to {p.name}",
                ["STOP SLAVE"],
                self._change_master(),
                {"old": {"source": rep["Master_Host"]}},
            )
        if fact.local.get("gtid_binlog_state"):
            return self._start(
                f"rejoin as a replica of {p.name} from its own position {fact.local.get('gtid_current_pos')}",
                [],
                self._change_master("MASTER_DEMOTE_TO_SLAVE=1"),
                {"old": {"source": None}},
            )
        if fact.local.get("user_schemas", "0") != "0":
            return Plan(
                error=f"{self.name} holds databases but no replication history: refusing to seed over "
                "them (drop them by hand if they are disposable)"
            )
        return self._seed(peer)

    def _running(self, rep: dict[str, str]) -> Plan:
        p = self.primary
        if rep.get("Last_SQL_Error"):
            return Plan(
                error=f"replication from {p.name} is broken: {rep.get('Last_SQL_Errno')}: "
                f"{rep['Last_SQL_Error']}; the data may differ: repair it by hand"
            )
        if rep.get("Slave_IO_Running") == "Yes" and rep.get("Slave_SQL_Running") == "Yes":
            lag = rep.get("Seconds_Behind_Master")
            return Plan(comment=f"replicating from {p.name} (lag {lag} s, at {rep.get('Gtid_IO_Pos') or '-'})")
        return Plan(
            {
                "old": {"io": rep.get("Slave_IO_Running"), "sql": rep.get("Slave_SQL_Running")},
                "new": {"io": "Yes", "sql": "Yes"},
            },
            [cmd("mysql", "-e", "START SLAVE"), self._wait_running()],
            comment=f"replication from {p.name} restarted",
        )

    def _start(self, comment: str, before: list[str], change: str, old: dict[str, Any]) -> Plan:
        commands, uploads = _staged_sql([*before, change, "START SLAVE"], "change")
        return Plan(
            {**old, "new": {"source": self.primary.name, "gtid": "slave_pos"}},
            commands + [self._wait_running()],
            comment=comment,
            uploads=uploads,
        )

    def _seed(self, peer: dict[str, str]) -> Plan:
        if self.seed is None:
            return Plan(error=f"{self.name} is a new replica and no seed (a copy of the primary) was given")
        seed = self.seed
        commands, uploads = _staged_sql([self._change_master(), "START SLAVE"], "change")
        load = f"{{ echo 'SET SESSION sql_log_bin = 0;'; cat {staged('seed')}; }} | mysql"
        comment = (
            f"seeded from a consistent copy of {self.primary.name} (at {peer.get('gtid_binlog_pos') or '-'}) "
            "and replicating"
        )
        return Plan(
            {"old": {"source": None}, "new": {"source": self.primary.name, "seeded": True}},
            [cmd("mysql", "-e", "STOP SLAVE; RESET SLAVE ALL; RESET MASTER"), load, *commands, self._wait_running()],
            comment=comment,
            uploads={**uploads, "seed": seed},
        )


class Topology(State[SQLRows]):
    """mysql.topology: the primary's topology row names it (epoch, primary); a new one starts at
    epoch 1, and one that names another node gets the next epoch (this runs after mysql.primary
    found this node the only writable one). Replicated, it tells the app which writable node to
    trust when two are (an old primary come back after a failover has a lower epoch).

    name: the primary's inventory name.
    database: the app's database (it holds the table).
    """

    kind = "mysql.topology"

    def __init__(self, name: str, *, database: str, **kw: Any) -> None:
        super().__init__(name, id=kw.pop("id", None) or "mysql:topology", **kw)
        self.database = _ident(database, "database name")

    def fact(self) -> SQLFact:
        return SQLFact(
            f"SELECT epoch, primary_name FROM `{self.database}`.`{EPOCH_TABLE}` WHERE id = 1",
            f"topology row of {self.database}",
            missing_table_is_empty=True,
        )

    def plan(self, fact: SQLRows) -> Plan:
        row = fact.rows[0] if fact.rows else None
        if row is not None and len(row) == 2 and row[1] == self.name:
            return Plan(comment=f"topology epoch {row[0]}: {self.name} is the primary")
        epoch = int(row[0]) + 1 if row is not None and str(row[0]).isdigit() else 1
        commands, uploads = _staged_sql([epoch_sql(self.database, epoch, self.name)])
        return Plan(
            {
                "old": {"epoch": row[0], "primary": row[1]} if row else None,
                "new": {"epoch": epoch, "primary": self.name},
            },
            commands,
            comment=f"topology epoch {epoch}: {self.name} is the primary",
            uploads=uploads,
        )


def marker_text(marker: dict[str, Any]) -> str:
    """Describe a role-change marker in one phrase (for refusals, status and steps).

    marker: the marker as MarkerFact parses it (run, kind, old, new, phase; any may be missing).
    """
    return (
        f"a {marker.get('kind', 'role change')} (run {marker.get('run', '?')}) from {marker.get('old', '?')} "
        f"to {marker.get('new', '?')} (phase {marker.get('phase', '?')})"
    )


class MarkerFact(Fact["dict[str, Any] | None"]):
    """The role-change marker a switchover or failover keeps on a database host while it runs.

    path: the marker file.
    """

    def __init__(self, path: str) -> None:
        self.path = path

    def command(self) -> str:
        return f"cat {cmd(self.path)} 2>/dev/null; true"

    def parse(self, output: str) -> dict[str, Any] | None:
        text = output.strip()
        if not text:
            return None
        try:
            found = json.loads(text)
        except ValueError:
            return {"phase": "unreadable"}
        return found if isinstance(found, dict) else {"phase": "unreadable"}


class Settled(State["dict[str, Any] | None"]):
    """mysql.settled: no role change (switchover or failover) is part-way on this host: one that
    died (its run killed, cut off, its machine gone) leaves its marker, and apply refuses until
    `foobar-ops db status` has finished or undone it.

    name: the host's inventory name.
    path: the marker file.
    inventory_path: named in the refusal's command.
    """

    kind = "mysql.settled"

    def __init__(self, name: str, *, path: str, inventory_path: str = "INVENTORY", **kw: Any) -> None:
        super().__init__(name, id=kw.pop("id", None) or "mysql:settled", **kw)
        self.path, self.inventory_path = path, inventory_path

    def fact(self) -> MarkerFact:
        return MarkerFact(self.path)

    def plan(self, fact: dict[str, Any] | None) -> Plan:
        if fact is None:
            return Plan(comment="no role change part-way")
        return Plan(
            error=f"{self.name}: {marker_text(fact)} ended part-way: run `foobar-ops db status -i "
            f"{self.inventory_path}`, which finishes or undoes it, then apply again"
        )
