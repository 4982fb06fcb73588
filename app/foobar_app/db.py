"""Database access for the app: a pool of connections per node, a monitor that knows every
node's role and health, and a router that sends writes to the primary and spreads reads over the
healthy nodes by weight.

The primary is whichever node is writable and not replicating (all nodes start read-only; the
control plane makes one writable), so a switchover needs no restart: the monitor sees the new
primary within a check interval, and a write refused as read-only waits for it and is retried.
A replica leaves the read pool when it is down, stops replicating or lags past max_lag.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pymysql

from .config import Config, DBNode

log = logging.getLogger("foobar_app.db")

NO_TABLE, NO_DATABASE, NO_ACCESS = 1146, 1049, 1142  # a database without the topology table
READ_ONLY_ERROR = 1290  # ER_OPTION_PREVENTS_STATEMENT: the server runs with --read-only
#: Errors that say the node (or the connection to it) is gone, not that the query was wrong:
#: can't connect, gone away, lost, shutting down, connection killed.
NODE_GONE = {2003, 2006, 2013, 2055, 1053, 1927, 1152}
WRITER_WAIT = 5.0  # seconds a write waits for a primary to appear (e.g. during a switchover)
GTID_WAIT = 0.5  # seconds a read waits for a replica to catch up with the client's own write


class NoNode(Exception):
    """No database node can serve the request (no primary for a write, nothing for a read)."""


@dataclass(frozen=True)
class NodeState:
    """What the monitor last saw of a node.

    up: it answered.
    writable: read_only is off.
    replica: it replicates (or tries to) from a primary.
    replicating: it is a replica whose two threads run, within max_lag.
    lag: seconds behind its primary (None: unknown, or not a replica).
    error: why it is down or not a healthy replica (for /health, in the app's own words).
    """

    up: bool = False
    writable: bool = False
    replica: bool = False
    replicating: bool = False
    lag: float | None = None
    error: str | None = "not checked yet"
    applying: bool = False  # its SQL thread runs (it may still wait for a primary that is gone)
    epoch: int | None = None  # its topology row: the epoch, and the primary that row names
    names: str | None = None


class Pool:
    """Idle connections to one node, reused across requests; a connection idle for a while is
    pinged before it is handed out, and one that fails is dropped.

    node: the node.
    connect: function (node) -> a new connection.
    size: idle connections kept.
    """

    def __init__(self, node: DBNode, connect: Callable[[DBNode], Any], size: int) -> None:
        self.node, self._connect, self.size = node, connect, size
        self._idle: list[tuple[Any, float]] = []
        self._lock = threading.Lock()

    def get(self) -> Any:
        """Return a working connection (pooled or new)."""
        while True:
            with self._lock:
                conn, since = self._idle.pop() if self._idle else (None, 0.0)
            if conn is None:
                return self._connect(self.node)
            if time.monotonic() - since < 1.0:
                return conn
            try:
                conn.ping(reconnect=False)
                return conn
            except pymysql.MySQLError:
                _close(conn)  # stale: the node restarted, or the connection timed out

    def put(self, conn: Any) -> None:
        """Give a healthy connection back."""
        with self._lock:
            if len(self._idle) < self.size:
                self._idle.append((conn, time.monotonic()))
                return
        _close(conn)

    def clear(self) -> None:
        """Close every idle connection (the node went down or changed role)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn, _ in idle:
            _close(conn)


def _close(conn: Any) -> None:
    try:
        conn.close()
    except Exception:  # noqa: BLE001 - closing a broken connection
        pass


class Monitor:
    """Checks every node on a background thread; knows the primary and the read pool.

    config: the Config.
    connect: function (node) -> a new connection.
    """

    def __init__(self, config: Config, connect: Callable[[DBNode], Any]) -> None:
        self.config, self._connect = config, connect
        self.states: dict[str, NodeState] = {n.name: NodeState() for n in config.nodes}
        self._conns: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._checking = threading.Lock()  # one check at a time: its connections are not shared
        self._highest: tuple[int, str] | None = None  # the highest topology row seen since start

    def start(self) -> None:
        """Check every node once now, then keep checking in the background."""
        self.check_all()
        self._thread = threading.Thread(target=self._loop, name="foobar-db-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self.config.check_interval):
            self.check_all()

    def check_all(self) -> None:
        """Check every node now, all at once (a node that does not answer costs one check timeout,
        not one per node); a check already under way is waited for, not run twice at once."""
        with self._checking:
            nodes = list(self.config.nodes)
            threads = [threading.Thread(target=self._check_and_keep, args=(node,), daemon=True) for node in nodes[1:]]
            for thread in threads:
                thread.start()
            self._check_and_keep(nodes[0])
            for thread in threads:
                thread.join()

    def _check_and_keep(self, node: DBNode) -> None:
        state = self._check(node)
        with self._changed:
            self.states[node.name] = state
            if state.epoch is not None and state.names and (self._highest is None or state.epoch > self._highest[0]):
                self._highest = (state.epoch, state.names)  # never forgotten: a stale primary stays stale
            self._changed.notify_all()

    def _check(self, node: DBNode) -> NodeState:
        try:
            conn = self._conns.get(node.name) or self._connect(node)
            self._conns[node.name] = conn
            with conn.cursor() as cur:
                cur.execute("SELECT @@read_only AS ro")
                read_only = bool(cur.fetchone()["ro"])
                cur.execute("SHOW SLAVE STATUS")
                status = cur.fetchone()
                epoch, names = _topology(cur)
        except pymysql.MySQLError as err:
            _close(self._conns.pop(node.name, None))
            log.warning("database node %s is down: %s", node.name, err)
            return NodeState(error="unreachable")
        if not status:
            error = None if not read_only else "read-only, not replicating"
            return NodeState(True, not read_only, error=error, epoch=epoch, names=names)
        applying = status.get("Slave_SQL_Running") == "Yes"
        running = status.get("Slave_IO_Running") == "Yes" and applying
        lag = status.get("Seconds_Behind_Master")
        lag = None if lag is None else float(lag)
        error = None
        if not running:
            error = "replication stopped"
        elif lag is None or lag > self.config.max_lag:
            error = f"replication lag {lag} s over {self.config.max_lag:g} s"
        return NodeState(True, not read_only, True, error is None, lag, error, applying, epoch, names)

    def report_down(self, node: DBNode) -> None:
        """Take a node out at once after a request failed on it (the next check may put it back)."""
        with self._changed:
            self.states[node.name] = NodeState(error="unreachable")

    def writer(self) -> DBNode | None:
        """Return the primary: the one node that is writable and not a replica (None when there is
        not exactly one)."""
        with self._lock:
            return self._writer()

    def _writer(self) -> DBNode | None:
        """The primary: a writable node that replicates from nobody. With topology rows (a role
        change writes one, replicated), only the node whose row names itself with the highest
        epoch any node shows: an old primary back after a failover (a lower epoch) is never
        written to, nor is any node while the row with the highest epoch names a node out of
        sight, or than the highest it has seen since it started. Without rows (an older database):
        the one such node, none when there are two."""
        up = {n.name: self.states[n.name] for n in self.config.nodes if self.states[n.name].up}
        found = [n for n in self.config.nodes if n.name in up and up[n.name].writable and not up[n.name].replica]
        if self._highest is None:
            return found[0] if len(found) == 1 else None
        top, name = self._highest
        named = {s.names for s in up.values() if s.epoch == top} | {name}
        chosen = [n for n in found if up[n.name].epoch == top and named == {n.name}]
        return chosen[0] if len(chosen) == 1 else None

    def wait_writer(self, timeout: float) -> DBNode | None:
        """Wait up to timeout seconds for a primary (checking all nodes again at once)."""
        self.check_all()
        deadline = time.monotonic() + timeout
        with self._changed:
            while (node := self._writer()) is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._changed.wait(min(left, 0.2))
        return node

    def readers(self) -> list[DBNode]:
        """Return the nodes reads may go to: the primary and the healthy replicas, by weight > 0.
        With no primary at all (it is gone, before a failover), replicas that still apply what they
        received serve reads: stale for a while, but the site keeps answering."""
        with self._lock:
            writer = self._writer()
            healthy = [n for n in self.config.nodes if n == writer or self.states[n.name].replicating]
            if writer is None and not healthy:
                healthy = [n for n in self.config.nodes if self.states[n.name].up and self.states[n.name].applying]
        weighted = [n for n in healthy if n.weight > 0]
        return weighted or healthy


class Router:
    """Hands out connections: writer() to the primary, reader() to the next node of the read pool
    (smooth weighted round robin), each with the node's name.

    config: the Config.
    connect: function (node) -> a new connection (default: PyMySQL with the config's account).
    """

    def __init__(self, config: Config, connect: Callable[[DBNode], Any] | None = None) -> None:
        self.config = config
        self._connect = connect or self._pymysql
        self.pools = {n.name: Pool(n, self._connect, config.pool_size) for n in config.nodes}
        # the monitor's checks give up sooner: a node that does not answer within check_timeout is down
        checks = connect or (lambda node: self._pymysql(node, config.check_timeout))
        self.monitor = Monitor(config, checks)
        self._current: dict[str, float] = {n.name: 0.0 for n in config.nodes}
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start watching the nodes."""
        self.monitor.start()

    def _pymysql(self, node: DBNode, timeout: float | None = None) -> Any:
        c = self.config
        return pymysql.connect(
            host=node.host,
            port=node.port,
            user=c.db_user,
            password=c.db_password,
            database=c.db_name,
            connect_timeout=timeout or c.connect_timeout,
            read_timeout=10,
            write_timeout=10,
            autocommit=True,
            cursorclass=pymysql.cursors.DictCursor,
            charset="utf8mb4",
        )

    def _next_reader(self, nodes: list[DBNode]) -> DBNode:
        """Smooth weighted round robin: over N picks, each node gets its weight's share, evenly spread."""
        with self._lock:
            total = sum(max(n.weight, 1) for n in nodes)
            for n in nodes:
                self._current[n.name] += max(n.weight, 1)
            best = max(nodes, key=lambda n: self._current[n.name])
            self._current[best.name] -= total
            return best

    @contextmanager
    def _use(self, node: DBNode) -> Iterator[Any]:
        pool = self.pools[node.name]
        conn = pool.get()
        try:
            yield conn
        except pymysql.OperationalError:
            _close(conn)  # the connection may be broken: never reuse it
            raise
        except Exception:
            if getattr(conn, "open", True):
                pool.put(conn)
            else:
                _close(conn)  # PyMySQL closed it (e.g. a packet out of sequence)
            raise
        except BaseException:
            _close(conn)  # interrupted mid-query: its state is unknown
            raise
        pool.put(conn)

    @contextmanager
    def writer(self) -> Iterator[tuple[Any, str]]:
        """Yield (connection, node name) to the primary; NoNode when there is none."""
        node = self.monitor.writer() or self.monitor.wait_writer(WRITER_WAIT)
        if node is None:
            raise NoNode("no writable primary database")
        with self._use(node) as conn:
            yield conn, node.name

    def write(self, work: Callable[[Any], Any]) -> tuple[Any, str]:
        """Run work(connection) on the primary and return (its result, node name). A write refused
        because the node turned read-only (a switchover) was not made: it waits for the new primary
        and is retried once. A connection lost mid-write is not retried (the write may have landed).

        work: the function that writes.
        """
        try:
            with self.writer() as (conn, name):
                return work(conn), name
        except pymysql.MySQLError as err:
            if not (err.args and err.args[0] == READ_ONLY_ERROR):
                raise
            log.warning("write refused as read-only: waiting for the new primary")
        if self.monitor.wait_writer(WRITER_WAIT) is None:
            raise NoNode("no writable primary database")
        with self.writer() as (conn, name):
            return work(conn), name

    def read(self, work: Callable[[Any], Any], after: str | None = None) -> tuple[Any, str]:
        """Run work(connection) on the next node of the read pool and return (its result, node
        name); a node that fails is taken out and the read goes to another one.

        work: the function that reads.
        after: the GTID of the client's last write: a replica is used only once it has applied it.
        """
        tried: set[str] = set()
        while True:
            nodes = [n for n in self.monitor.readers() if n.name not in tried]
            writer = self.monitor.writer()
            if nodes:
                node = self._next_reader(nodes)
            elif writer is not None and writer.name not in tried:
                node = writer  # the last resort: the primary, whatever its read weight
            else:
                raise NoNode("no database node can serve reads")
            tried.add(node.name)
            try:
                with self._use(node) as conn:
                    if after and node != writer and not _caught_up(conn, after):
                        continue
                    return work(conn), node.name
            except pymysql.OperationalError as err:
                if not (err.args and err.args[0] in NODE_GONE):
                    raise  # the query's own fault (e.g. a time limit): not the node's
                log.warning("read on %s failed (%s): trying another node", node.name, err)
                self.monitor.report_down(node)
                self.pools[node.name].clear()


def _topology(cur: Any) -> tuple[int | None, str | None]:
    """The node's topology row (epoch, primary name); (None, None) when it has none (no table)."""
    try:
        cur.execute("SELECT epoch, primary_name FROM foobar_topology WHERE id = 1")
    except pymysql.MySQLError as err:
        if err.args and err.args[0] in (NO_TABLE, NO_DATABASE, NO_ACCESS):
            return None, None
        raise
    row = cur.fetchone()
    return (int(row["epoch"]), str(row["primary_name"])) if row else (None, None)


def _caught_up(conn: Any, gtid: str) -> bool:
    """Return True when the node has applied the transaction (waiting up to GTID_WAIT seconds)."""
    with conn.cursor() as cur:
        cur.execute("SELECT MASTER_GTID_WAIT(%s, %s) AS w", (gtid, GTID_WAIT))
        return cur.fetchone()["w"] == 0
