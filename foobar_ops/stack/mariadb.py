"""The database nodes at run time, over SSH as the database admin: what each says of itself and of
its replication, and statements run on it. Used by replication status, switchover and failover."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

from ..core.errors import ConnectionFailed, FoobarOpsError
from ..core.facts import ReplicationFact, ReplicationInfo, parse_vertical
from ..core.shell import cmd
from ..core.ssh import Remote
from .topology import ports


class DBError(FoobarOpsError):
    """A database node refused or failed a statement, or could not be asked."""


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

    def query(self, sql: str, timeout: float | None = None) -> list[dict[str, str]]:
        """Run SQL as the admin and return the rows of its last result by column name.

        sql: the statements (built from checked values only).
        timeout: seconds before the command is abandoned.
        """
        return parse_vertical(
            self._run(f"mysql -e {cmd(sql + chr(92) + 'G')} 2>&1; echo sql-exit=$?", timeout),
            f"{self.name}: {sql[:60]}",
        )

    def execute(self, sql: str, secret_sql: str | None = None) -> None:
        """Run statements as the admin; secret_sql (e.g. with a password) travels as a staged file
        read by mysql, never on a command line.

        sql: statements.
        secret_sql: statements that hold a secret.
        """
        if secret_sql is None:
            self.query(sql)
            return
        conn = self.remote.open()
        sftp = conn.sftp()
        path = f"/tmp/.foobar-sql-{socket.gethostname()}-{id(self):x}"
        with sftp.open(path, "wb") as out:
            out.chmod(0o600)
            out.write((secret_sql.rstrip(";\n") + ";\n").encode())
        try:
            self._run(
                f"mysql -e {cmd(sql)} && mysql < {cmd(path)}; rc=$?; rm -f {cmd(path)}; exit $rc"
                if sql
                else f"mysql < {cmd(path)}; rc=$?; rm -f {cmd(path)}; exit $rc"
            )
        finally:
            self.remote.round_trips += 1

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
