"""The database nodes at run time, over SSH as the database admin: what each says of itself and of
its replication, and statements run on it. Used by replication status, switchover and failover."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from typing import Any

from ..core.errors import ConnectionFailed, DBError
from ..core.facts import ReplicationFact, ReplicationInfo, parse_vertical
from ..core.shell import cmd
from ..core.ssh import Remote, stage
from ..core.states.mysql import EPOCH_TABLE, MarkerFact
from .topology import ports

#: a role change under way on this host (JSON: run, kind, old, new, phase, since), written before
#: the primary turns read-only and removed once the new topology is in the inventory: a change
#: that died part-way is found by the next `db status`, `apply` or role change
MARKER = "/var/lib/foobar-ops/rolechange"
MARKER_LOCK = f"{MARKER}.lock"
#: the transient systemd timer on the old primary that makes it writable again (unless disarmed
#: before the promotion) when the run that fenced it dies, even with its control machine
GUARD = "foobar-rolechange-guard"
_FENCED = 'grep -q \'"phase": "fenced"\' ' + MARKER
_LOCKED = f"mkdir -p -m 0700 /var/lib/foobar-ops; exec 7>>{MARKER_LOCK}; flock 7"
#: what the guard runs (as root): still fenced by a dead run, and not made a replica since
GUARD_SCRIPT = (
    f"{_LOCKED}; if {_FENCED} && [ -z \"$(mysql -N -e 'SHOW SLAVE STATUS')\" ]; then "
    f"mysql -e 'SET GLOBAL read_only = 0' && rm -f {MARKER}; fi"
)


@dataclass
class Standing:
    """A node's replication info, the role-change marker on its host, and its topology row.

    info: what the node says of itself and its replication.
    marker: the role-change marker (None: no role change under way there).
    epoch: (epoch, primary name) of its topology row (None: no row, or no table yet).
    """

    info: ReplicationInfo
    marker: dict[str, Any] | None
    epoch: tuple[int, str] | None

    @property
    def writer(self) -> bool:
        """True when the node takes writes: writable, and replicating from nobody."""
        return not self.info.read_only and not self.info.replica.get("Master_Host")


def mark(marker: dict[str, Any]) -> str:
    """A shell command that writes the role-change marker on a host (for Node.execute(before=...)).

    marker: the role change (run, kind, old, new, phase, since).
    """
    return f"{_LOCKED} && {_write(MARKER, json.dumps(marker, sort_keys=True))}"


def _write(path: str, text: str) -> str:
    """A shell command that replaces a file atomically with text (one line)."""
    return f"printf '%s\\n' {cmd(text)} > {path}.new && mv -f {path}.new {path}"


@dataclass
class Node:
    """One database host, asked over SSH (as root, through the unix socket).

    host: the inventory Host.
    inventory: the Inventory.
    """

    host: Any
    inventory: Any

    def __post_init__(self) -> None:
        self.remote = Remote(self.host, self.inventory)

    @property
    def name(self) -> str:
        return str(self.host.name)

    def _run(self, script: str, timeout: float | None = None) -> str:
        out = self.remote.run(cmd("sh", "-c", script), sudo=self.host.user != "root", timeout=timeout)
        if not out.ok:
            raise DBError(f"{self.name}: {out.error}: {(out.stdout + out.stderr).strip()[-400:]}")
        return out.stdout

    def info(self) -> ReplicationInfo:
        """Return what the node says of itself and its replication (raises ConnectionFailed)."""
        fact = ReplicationFact()
        return fact.parse(self._run(fact.command()))

    def standing(self, database: str) -> Standing:
        """Return the node's info, its host's role-change marker and its topology row, in one
        round trip (raises ConnectionFailed or DBError).

        database: the app's database (it holds the topology table).
        """
        fact, marker = ReplicationFact(), MarkerFact(MARKER)
        row = f"SELECT epoch, primary_name FROM `{database}`.`{EPOCH_TABLE}` WHERE id = 1"
        out = self._run(
            f"{fact.command()}; echo @@@marker; {marker.command()}; echo; echo @@@epoch; "
            f"mysql -N -B -e {cmd(row)} 2>&1; echo epoch-exit=$?"
        )
        head, _, rest = out.partition("\n@@@marker\n")
        marked, _, epoch = rest.partition("\n@@@epoch\n")
        return Standing(fact.parse(head), marker.parse(marked), _epoch(epoch, self.name))

    def fence(self, marker: dict[str, Any], guard_s: float) -> None:
        """Turn this node (the primary) read-only for a role change: first the marker, then the
        guard (a timer that makes it writable again after guard_s seconds unless disarmed), then
        read_only; any of them failing stops the rest.

        marker: the role change (run, kind, old, new, phase fenced).
        guard_s: seconds before the guard fires.
        """
        unit = cmd(f"{GUARD}.timer", f"{GUARD}.service")
        self._run(
            f"{_LOCKED}; {_write(MARKER, json.dumps(marker, sort_keys=True))}; "
            f"systemctl stop {unit} 2>/dev/null; systemctl reset-failed {unit} 2>/dev/null; "
            f"systemd-run --quiet --collect --unit={GUARD} --on-active={guard_s:g}s "
            f"--timer-property=AccuracySec=100ms sh -c {cmd(GUARD_SCRIPT)} && "
            "mysql -e 'SET GLOBAL read_only = 1'"
        )

    def disarm(self, marker: dict[str, Any]) -> bool:
        """Stop the guard before the promotion; True when the node is still fenced by this run
        (its marker is then rewritten, e.g. phase promoting); False when the guard fired first
        (the node took writes back).

        marker: the marker's new content.
        """
        out = self._run(
            f"{_LOCKED}; systemctl stop {GUARD}.timer 2>/dev/null; "
            f"if [ \"$(mysql -N -e 'SELECT @@read_only')\" = 1 ] && {_FENCED}; then "
            f"{_write(MARKER, json.dumps(marker, sort_keys=True))} && echo DISARMED; else echo FIRED; fi"
        )
        return "DISARMED" in out

    def settle(self) -> None:
        """Stop the guard (if any) and remove the role-change marker: the change is over."""
        unit = cmd(f"{GUARD}.timer", f"{GUARD}.service")
        self._run(f"{_LOCKED}; systemctl stop {unit} 2>/dev/null; rm -f {MARKER}")

    def restore(self, sql: str) -> bool:
        """Make this (old) primary take writes again after a role change that did not reach the
        promotion, unless it replicates from someone; end its guard and marker. True when done.

        sql: the statements that make it writable (a new topology epoch, read_only off).
        """
        unit = cmd(f"{GUARD}.timer", f"{GUARD}.service")
        out = self._run(
            f"{_LOCKED}; if [ -n \"$(mysql -N -e 'SHOW SLAVE STATUS')\" ]; then echo REPLICA; exit 0; fi; "
            f"mysql -e {cmd(sql)} || exit 1; systemctl stop {unit} 2>/dev/null; rm -f {MARKER}; echo RESTORED"
        )
        return "RESTORED" in out

    def query(self, sql: str, timeout: float | None = None) -> list[dict[str, str]]:
        """Run SQL as the admin and return the rows of its last result by column name.

        sql: the statements (built from checked values only).
        timeout: seconds before the command is abandoned.
        """
        return parse_vertical(
            self._run(f"mysql -e {cmd(sql + chr(92) + 'G')} 2>&1; echo sql-exit=$?", timeout),
            f"{self.name}: {sql[:60]}",
        )

    def execute(self, sql: str, secret_sql: str | None = None, *, before: str = "") -> None:
        """Run statements as the admin; secret_sql (e.g. with a password) travels as a file
        private from its creation, in a folder of its own (ssh.stage), read by mysql and removed
        by the same command, never on a command line.

        sql: statements.
        secret_sql: statements that hold a secret.
        before: a shell command run first (e.g. writing a role-change marker); its failure stops it.
        """
        if secret_sql is None:
            if before:
                self._run(f"{before} && mysql -e {cmd(sql)}")
            else:
                self.query(sql)
            return
        folder = stage(self.remote, {"sql": (secret_sql.rstrip(";\n") + ";\n").encode()})
        first = " && ".join(part for part in (before, f"mysql -e {cmd(sql)}" if sql else "") if part)
        read = f"mysql < {cmd(folder + '/sql')}"
        self._run(f"{first + ' && ' if first else ''}{read}; rc=$?; rm -rf {cmd(folder)}; exit $rc")

    def answers(self, timeout: float = 3.0) -> bool:
        """Return True when the node's MariaDB port accepts a connection from here."""
        try:
            with socket.create_connection((self.host.address, ports(self.inventory)["mysql"]), timeout=timeout):
                return True
        except OSError:
            return False

    def reachable(self) -> bool:
        """Return True when the node answers over SSH."""
        try:
            self._run("true", timeout=10)
            return True
        except (ConnectionFailed, DBError):
            return False

    def close(self) -> None:
        self.remote.close()


def _epoch(text: str, where: str) -> tuple[int, str] | None:
    body, _, code = text.rpartition("epoch-exit=")
    if code.strip() != "0":
        if "1146" in body or "1049" in body:  # no such table (or database) yet: no epoch
            return None
        raise DBError(f"{where}: cannot read the topology row: {body.strip()[-300:]}")
    line = body.strip().splitlines()[0] if body.strip() else ""
    if not line:
        return None
    epoch, _, name = line.partition("\t")
    return int(epoch), name
