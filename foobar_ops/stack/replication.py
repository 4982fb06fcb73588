"""The database pair at run time, as it is: replication health (strictly judged, with any
role change part-way and each node's topology epoch) and a replication probe. The changes of
roles (switchover, failover, unfence, settling a dead one) are stack.rolechange."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from ..core.errors import FoobarOpsError
from ..core.shape import headline, one_line
from ..core.states.mysql import marker_text
from .mariadb import Node, Standing
from .topology import db_hosts, db_primary, db_settings


@dataclass
class NodeStatus:
    """One database node as the replication status shows it.

    host: inventory name.
    role: primary (writable, replicating from nobody) or replica, as the node is now.
    inventory_role: what the inventory calls it.
    read_only, io_running, sql_running: as the node says.
    lag_s: seconds behind its primary (None: unknown or not a replica).
    gtid: its gtid_current_pos.
    source: the node it replicates from (its inventory name, else the address).
    error: what is wrong with it (None when it is healthy).
    epoch, epoch_primary: its topology row (the epoch, and the primary it names).
    marker: the role-change marker on its host (a switchover or failover under way, or dead).
    """

    host: str
    role: str
    inventory_role: str
    read_only: bool | None = None
    io_running: bool | None = None
    sql_running: bool | None = None
    lag_s: float | None = None
    gtid: str | None = None
    source: str | None = None
    error: str | None = None
    binlog_state: str | None = field(default=None, repr=False)
    last_error: str | None = field(default=None, repr=False)
    epoch: int | None = None
    epoch_primary: str | None = None
    marker: dict[str, Any] | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("binlog_state", "last_error", "marker"):
            out.pop(key)
        out["role_change"] = marker_text(self.marker) if self.marker else None
        return out


@dataclass
class ReplicationStatus:
    """The pair's health: ok when one primary (the inventory's) and every replica replicates from
    it with both threads running, no error and a known lag under the threshold.

    nodes: one NodeStatus per database host.
    max_lag_s: the lag threshold.
    """

    nodes: list[NodeStatus]
    max_lag_s: float

    @property
    def ok(self) -> bool:
        return all(n.error is None for n in self.nodes)

    def node(self, name: str) -> NodeStatus:
        return next(n for n in self.nodes if n.host == name)

    def as_json(self) -> dict[str, Any]:
        """`foobar-ops db status --json`."""
        return {"ok": self.ok, "max_lag_s": self.max_lag_s, "nodes": [n.as_dict() for n in self.nodes]}

    def frame(self) -> Any:
        """Return the nodes as a DataFrame."""
        import pandas as pd

        return pd.DataFrame([n.as_dict() for n in self.nodes])

    def __str__(self) -> str:
        """One line: ok or NOT OK, each node's role (and lag, and what is wrong with it), the threshold."""
        nodes = []
        for n in self.nodes:
            text = f"{n.host} {n.role}" + (f" lag {n.lag_s:g} s" if n.lag_s is not None else "")
            nodes.append(text + (f": {n.error}" if n.error else ""))
        return one_line(
            f"replication {'ok' if self.ok else 'NOT OK'}: {'; '.join(nodes) or 'no database node'} "
            f"(lag threshold {self.max_lag_s:g} s)"
        )

    def _repr_html_(self) -> str:
        return headline(str(self), self.ok) + self.frame().to_html(index=False)


def _describe(name: str, inventory_role: str, seen: Standing | str, by_address: dict[str, str]) -> NodeStatus:
    if isinstance(seen, str):
        return NodeStatus(name, inventory_role, inventory_role, error=seen)
    info = seen.info
    rep = info.replica
    lag = rep.get("Seconds_Behind_Master")
    source = rep.get("Master_Host")
    return NodeStatus(
        name,
        "replica" if source or info.read_only else "primary",
        inventory_role,
        info.read_only,
        (rep.get("Slave_IO_Running") == "Yes") if rep else None,
        (rep.get("Slave_SQL_Running") == "Yes") if rep else None,
        float(lag) if lag not in (None, "", "NULL") else None,
        info.local.get("gtid_current_pos"),
        by_address.get(source or "", source) if source else None,
        None,
        epoch=seen.epoch[0] if seen.epoch else None,
        epoch_primary=seen.epoch[1] if seen.epoch else None,
        binlog_state=info.local.get("gtid_binlog_state"),
        last_error=rep.get("Last_SQL_Error") or rep.get("Last_IO_Error") or None,
        marker=seen.marker,
    )


def _judge(status: NodeStatus, primary: str, max_lag: float) -> str | None:
    """Return what is wrong with a node (None when it is healthy)."""
    if status.inventory_role == "primary":
        if status.source:
            return f"replicates from {status.source} although the inventory calls it the primary"
        if status.read_only:
            return "read-only: no node takes writes"
        return None
    if status.source is None:
        return "writable and not replicating: a second primary" if not status.read_only else "not replicating"
    if status.source != primary:
        return f"replicates from {status.source}, not from the primary {primary}"
    if not status.io_running or not status.sql_running:
        return f"replication threads stopped (io {status.io_running}, sql {status.sql_running})" + (
            f": {status.last_error}" if status.last_error else ""
        )
    if status.lag_s is None:
        return "replication lag unknown"
    if status.lag_s > max_lag:
        return f"replication lag {status.lag_s:g} s over {max_lag:g} s"
    if not status.read_only:
        return "a replica that is writable"
    return None


def status(inventory: Any, nodes: dict[str, Node] | None = None) -> ReplicationStatus:
    """Return the replication health of every database host, strictly judged.

    inventory: the Inventory.
    nodes: Node objects to reuse (by name).
    """
    hosts = db_hosts(inventory)
    primary = db_primary(inventory).name
    by_address = {h.address: h.name for h in hosts}
    max_lag = db_settings(inventory)["max_lag_s"]
    own = nodes is None
    nodes = nodes if nodes is not None else {h.name: Node(h, inventory) for h in hosts}
    out = []
    try:
        seen = standings(inventory, {h.name: nodes[h.name] for h in hosts})
        for h in hosts:
            described = _describe(h.name, "primary" if h.name == primary else "replica", seen[h.name], by_address)
            if described.error is None and described.marker:
                described.error = (
                    f"{marker_text(described.marker)} is under way, or ended part-way: "
                    "`foobar-ops db status` settles it once its run is over"
                )
            if described.error is None:
                described.error = _judge(described, primary, max_lag)
                if described.error is None and described.last_error:
                    described.error = f"replication error: {described.last_error}"
            out.append(described)
    finally:
        if own:
            for node in nodes.values():
                node.close()
    return ReplicationStatus(out, max_lag)


def standings(inventory: Any, nodes: dict[str, Node]) -> dict[str, Standing | str]:
    """Each node's standing, or why it cannot be asked."""
    database = db_settings(inventory)["name"]
    out: dict[str, Standing | str] = {}
    for name, node in nodes.items():
        try:
            out[name] = node.standing(database)
        except FoobarOpsError as err:
            out[name] = f"cannot be asked: {err}"
    return out


def probe(inventory: Any, timeout: float = 5.0) -> dict[str, bool]:
    """Write a probe row on the primary (as the admin, in a table of its own) and return, per
    replica, whether it arrived within timeout seconds.

    inventory: the Inventory.
    timeout: seconds each replica gets.
    """
    import uuid

    db = db_settings(inventory)["name"]
    token = uuid.uuid4().hex
    table = f"`{db}`.`foobar_ops_probe`"
    primary = Node(db_primary(inventory), inventory)
    replicas = [Node(h, inventory) for h in db_hosts(inventory) if h.name != primary.name]
    try:
        primary.query(
            f"CREATE TABLE IF NOT EXISTS {table} (mark CHAR(32) PRIMARY KEY, at TIMESTAMP(6) NOT NULL "
            f"DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB; INSERT INTO {table} (mark) VALUES ('{token}'); "
            f"DELETE FROM {table} WHERE at < NOW() - INTERVAL 1 DAY; SELECT 1 AS ok"
        )
        seen = {}
        for node in replicas:
            deadline = time.monotonic() + timeout
            while True:
                found = node.query(f"SELECT COUNT(*) AS n FROM {table} WHERE mark = '{token}'")[0]["n"] == "1"
                if found or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            seen[node.name] = found
        return seen
    finally:
        for node in [primary, *replicas]:
            node.close()
