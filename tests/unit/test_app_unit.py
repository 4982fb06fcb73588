"""The foobar.com WSGI app and its database layer without a database: request parsing, the
configuration, the connection Pool, the Monitor, the Router and the App's routes, over fake
MariaDB servers whose connections answer the SQL the code sends (no network, no real sleeping)."""

from __future__ import annotations

import importlib
import io
import json
import sys
import threading
import time
import types
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

APP_DIR = Path(__file__).resolve().parents[2] / "app"
if str(APP_DIR) not in sys.path:
    sys.path.insert(0, str(APP_DIR))


def _stub_pymysql() -> types.ModuleType:
    """A minimal stand-in for PyMySQL (the app's dependency, not foobar_ops'): the exception
    hierarchy the app catches, and a connect() that must never be called by these tests."""
    mod = types.ModuleType("pymysql")
    err = types.ModuleType("pymysql.err")

    class MySQLError(Exception):
        pass

    class Error(MySQLError):
        pass

    class InterfaceError(Error):
        pass

    class DatabaseError(Error):
        pass

    class OperationalError(DatabaseError):
        pass

    class InternalError(DatabaseError):
        pass

    class ProgrammingError(DatabaseError):
        pass

    class IntegrityError(DatabaseError):
        pass

    classes = (MySQLError, Error, InterfaceError, DatabaseError, OperationalError, InternalError, ProgrammingError)
    for cls in (*classes, IntegrityError):
        setattr(err, cls.__name__, cls)
        setattr(mod, cls.__name__, cls)
    cursors = types.ModuleType("pymysql.cursors")
    cursors.DictCursor = object

    def connect(**kw):
        raise AssertionError("unit tests must not connect to a database")

    mod.err, mod.cursors, mod.connect = err, cursors, connect
    return mod


def _import_app():
    """Import foobar_app with the real PyMySQL when installed, else with the stub (put in
    sys.modules only while foobar_app is imported, so no other test module can see it)."""
    names = ("foobar_app.wsgi", "foobar_app.config", "foobar_app.db")
    try:
        importlib.import_module("pymysql")
        return tuple(importlib.import_module(n) for n in names)
    except ImportError:
        pass
    stub = _stub_pymysql()
    saved = {k: sys.modules.get(k) for k in ("pymysql", "pymysql.err", "pymysql.cursors")}
    sys.modules.update({"pymysql": stub, "pymysql.err": stub.err, "pymysql.cursors": stub.cursors})
    try:
        return tuple(importlib.import_module(n) for n in names)
    finally:
        for key, value in saved.items():
            if value is None:
                sys.modules.pop(key, None)
            else:
                sys.modules[key] = value


wsgi, config_mod, db = _import_app()
pymysql = wsgi.pymysql  # the module the app catches errors from (real or stub)
App, HTTPError, parse_item, MAX_BODY = wsgi.App, wsgi.HTTPError, wsgi.parse_item, wsgi.MAX_BODY
Config, DBNode = config_mod.Config, config_mod.DBNode
NodeState, NoNode = db.NodeState, db.NoNode


@pytest.fixture(autouse=True)
def _no_real_database(monkeypatch):
    """Nothing may connect for real, and a write finding no primary waits 0.1 s, not 5 s."""
    monkeypatch.setattr(pymysql, "connect", lambda **kw: pytest.fail("unit tests must not connect to a database"))
    monkeypatch.setattr(db, "WRITER_WAIT", 0.1)


# --- request helpers ----------------------------------------------------------------------------


class ReadOnce(io.BytesIO):
    """wsgi.input that records how much was asked for."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.asked: list = []

    def read(self, size=-1):
        self.asked.append(size)
        return super().read(size)


def environ(
    method="GET",
    path="/",
    body: bytes | None = None,
    ctype="application/json",
    length: str | None = None,
    cookie: str | None = None,
) -> dict:
    """A hand-built WSGI environ."""
    data = body or b""
    env = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SERVER_NAME": "test",
        "SERVER_PORT": "80",
        "wsgi.input": ReadOnce(data),
        "wsgi.url_scheme": "http",
    }
    if body is not None or length is not None:
        env["CONTENT_TYPE"] = ctype
        env["CONTENT_LENGTH"] = str(len(data)) if length is None else length
    if cookie is not None:
        env["HTTP_COOKIE"] = cookie
    return env


def json_env(obj, **kw) -> dict:
    return environ("POST", "/api/items", json.dumps(obj).encode(), **kw)


def bad_request(env) -> str:
    with pytest.raises(HTTPError) as info:
        parse_item(env)
    assert info.value.status == "400 Bad Request"
    return info.value.message


# --- parse_item -------------------------------------------------------------------------------


def test_parse_valid_item_strips_name():
    item = parse_item(json_env({"name": "  widget  ", "description": "a thing"}))
    assert item == {"name": "widget", "description": "a thing"}


def test_parse_item_without_description():
    assert parse_item(json_env({"name": "w"})) == {"name": "w", "description": None}
    assert parse_item(json_env({"name": "w", "description": None})) == {"name": "w", "description": None}


def test_parse_item_accepts_charset_in_content_type():
    env = json_env({"name": "w"}, ctype="application/json; charset=utf-8")
    assert parse_item(env)["name"] == "w"


def test_parse_item_reads_only_content_length_bytes():
    env = environ("POST", "/api/items", b'{"name": "w"}GARBAGE AFTER THE BODY', length="13")
    assert parse_item(env) == {"name": "w", "description": None}
    assert env["wsgi.input"].asked == [13]


@pytest.mark.parametrize("body", [b"{not json", b'{"name": "w"', b"", b"\xff\xfe\x00garbage"])
def test_invalid_json_is_400_saying_invalid_json(body):
    env = environ("POST", "/api/items", body)
    assert bad_request(env).startswith("invalid JSON")


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", ""])
def test_wrong_content_type(ctype):
    env = json_env({"name": "w"}, ctype=ctype)
    assert "Content-Type: application/json" in bad_request(env)


def test_missing_content_type():
    env = json_env({"name": "w"})
    del env["CONTENT_TYPE"]
    assert "application/json" in bad_request(env)


@pytest.mark.parametrize("value", [[{"name": "w"}], "w", 5, None, True])
def test_non_object_json(value):
    assert "JSON object" in bad_request(json_env(value))


def test_unknown_fields_are_named():
    msg = bad_request(json_env({"name": "w", "price": 3, "colour": "red"}))
    assert "unknown field" in msg and "colour" in msg and "price" in msg


@pytest.mark.parametrize(
    "obj",
    [
        {},
        {"name": ""},
        {"name": "   "},
        {"name": None},
        {"name": 5},
        {"name": ["w"]},
        {"name": "x" * 201},
        {"description": "only"},
    ],
)
def test_bad_name(obj):
    assert "'name'" in bad_request(json_env(obj))


def test_name_of_200_characters_is_accepted():
    assert parse_item(json_env({"name": "é" * 200}))["name"] == "é" * 200


@pytest.mark.parametrize("desc", [5, ["a"], {"a": 1}, True, "d" * 2001])
def test_bad_description(desc):
    assert "'description'" in bad_request(json_env({"name": "w", "description": desc}))


def test_oversized_content_length_is_refused_without_reading():
    env = environ("POST", "/api/items", b'{"name": "w"}', length=str(MAX_BODY + 1))
    assert "larger than" in bad_request(env)
    assert env["wsgi.input"].asked == []


def test_body_of_exactly_max_body_is_allowed():
    body = json.dumps({"name": "w", "description": ""}).encode()
    body = body[:-1] + b" " * (MAX_BODY - len(body)) + b"}"
    assert len(body) == MAX_BODY
    assert parse_item(environ("POST", "/api/items", body)) == {"name": "w", "description": ""}


def test_non_numeric_content_length():
    env = environ("POST", "/api/items", b'{"name": "w"}', length="12abc")
    assert "Content-Length" in bad_request(env)


def test_negative_content_length_is_refused():
    env = environ("POST", "/api/items", json.dumps({"name": "w" * 100}).encode() + b" " * (MAX_BODY * 2), length="-1")
    with pytest.raises(HTTPError) as info:
        parse_item(env)
    assert info.value.status == "400 Bad Request"
    assert all(size is not None and 0 <= size <= MAX_BODY for size in env["wsgi.input"].asked)


# --- Config -----------------------------------------------------------------------------------


def test_dbnode_parse():
    assert DBNode.parse("db-01=10.77.0.11:3307:3") == DBNode("db-01", "10.77.0.11", 3307, 3)
    assert DBNode.parse("db-01=10.77.0.11") == DBNode("db-01", "10.77.0.11", 3306, 1)
    assert DBNode.parse("db-01=10.77.0.11:3310") == DBNode("db-01", "10.77.0.11", 3310, 1)
    assert DBNode.parse("db-02=10.77.0.21::0") == DBNode("db-02", "10.77.0.21", 3306, 0)
    assert DBNode.parse("  db-03=10.77.0.22:3306:2 ") == DBNode("db-03", "10.77.0.22", 3306, 2)


def test_dbnode_without_a_name_is_named_by_its_host():
    assert DBNode.parse("10.77.0.11") == DBNode("10.77.0.11", "10.77.0.11", 3306, 1)
    assert DBNode.parse("10.77.0.11:3307") == DBNode("10.77.0.11", "10.77.0.11", 3307, 1)
    assert DBNode.parse("db-01:") == DBNode("db-01", "db-01", 3306, 1)
    assert DBNode.parse("db-01:3306:4") == DBNode("db-01", "db-01", 3306, 4)


@pytest.mark.parametrize("text", ["db-01=", "db-01=:3306", ":3306", "db-01=h:port", "db-01=h:3306:heavy"])
def test_dbnode_parse_refuses_a_node_without_host_or_with_bad_numbers(text):
    with pytest.raises(ValueError):
        DBNode.parse(text)


def test_config_reads_every_node_with_names_ports_and_weights():
    env = {
        "FOOBAR_SERVED_BY": "web-02",
        "FOOBAR_DB_NODES": "db-01=10.77.0.11:3306:1, db-02=10.77.0.21:3307:3,db-03=10.77.0.22::0,",
        "FOOBAR_DB_PRIMARY": "10.99.0.1:3306",  # FOOBAR_DB_NODES wins
    }
    cfg = Config.from_env(env)
    assert cfg.nodes == (
        DBNode("db-01", "10.77.0.11", 3306, 1),
        DBNode("db-02", "10.77.0.21", 3307, 3),
        DBNode("db-03", "10.77.0.22", 3306, 0),
    )
    assert [n.name for n in cfg.nodes] == ["db-01", "db-02", "db-03"]


def test_config_defaults():
    cfg = Config.from_env({"FOOBAR_SERVED_BY": "web-01", "FOOBAR_DB_NODES": "db-01=10.77.0.11"})
    assert cfg.nodes == (DBNode("db-01", "10.77.0.11", 3306, 1),)
    assert (cfg.served_by, cfg.release, cfg.db_name, cfg.db_user, cfg.db_password) == (
        "web-01",
        "dev",
        "foobar",
        "foobar",
        "",
    )
    assert (cfg.connect_timeout, cfg.max_lag, cfg.check_interval, cfg.pool_size) == (2.0, 5.0, 1.0, 8)


@pytest.mark.parametrize("nodes", [None, "", " , "])
def test_config_without_nodes_falls_back_to_the_single_primary(nodes):
    env = {"FOOBAR_SERVED_BY": "w", "FOOBAR_DB_PRIMARY": "10.77.0.11:3307"}
    if nodes is not None:
        env["FOOBAR_DB_NODES"] = nodes
    assert Config.from_env(env).nodes == (DBNode("10.77.0.11", "10.77.0.11", 3307, 1),)


def test_config_served_by_defaults_to_the_hostname_and_the_node_to_localhost(monkeypatch):
    monkeypatch.setattr(config_mod.socket, "gethostname", lambda: "box-7")
    cfg = Config.from_env({})
    assert cfg.served_by == "box-7"
    assert cfg.nodes == (DBNode("127.0.0.1", "127.0.0.1", 3306, 1),)


@pytest.mark.parametrize(
    "nodes",
    [
        "db-01=10.77.0.11,db-01=10.77.0.21",
        "db-01=10.77.0.11, db-02=10.77.0.21, db-01=10.77.0.22:3307:2",
        "10.77.0.11:3306,10.77.0.11:3307",  # unnamed: both named 10.77.0.11
    ],
)
def test_config_refuses_a_node_name_given_twice(nodes):
    with pytest.raises(ValueError, match="twice"):
        Config.from_env({"FOOBAR_SERVED_BY": "w", "FOOBAR_DB_NODES": nodes})


def test_config_numeric_settings():
    env = {
        "FOOBAR_SERVED_BY": "web-02",
        "FOOBAR_RELEASE": "1.0.0-abc",
        "FOOBAR_DB_NODES": "db-01=10.77.0.11",
        "FOOBAR_DB_NAME": "fb",
        "FOOBAR_DB_USER": "u",
        "FOOBAR_DB_PASSWORD": "pw",
        "FOOBAR_DB_CONNECT_TIMEOUT": "0.5",
        "FOOBAR_DB_MAX_LAG": "2.5",
        "FOOBAR_DB_CHECK_INTERVAL": "0.25",
        "FOOBAR_DB_POOL_SIZE": "3",
    }
    cfg = Config.from_env(env)
    assert (cfg.release, cfg.db_name, cfg.db_user, cfg.db_password) == ("1.0.0-abc", "fb", "u", "pw")
    assert (cfg.connect_timeout, cfg.max_lag, cfg.check_interval, cfg.pool_size) == (0.5, 2.5, 0.25, 3)
    assert isinstance(cfg.pool_size, int) and isinstance(cfg.max_lag, float)


@pytest.mark.parametrize(
    "key,value", [("FOOBAR_DB_POOL_SIZE", "eight"), ("FOOBAR_DB_MAX_LAG", "5s"), ("FOOBAR_DB_CONNECT_TIMEOUT", "")]
)
def test_config_refuses_a_non_numeric_setting(key, value):
    with pytest.raises(ValueError):
        Config.from_env({"FOOBAR_SERVED_BY": "w", "FOOBAR_DB_NODES": "db-01=10.77.0.11", key: value})


# --- fake MariaDB servers -----------------------------------------------------------------------

ADDRESSES = {"db-01": "10.77.0.11", "db-02": "10.77.0.21", "db-03": "10.77.0.22"}
COLUMNS = "id, name, description, served_by, created_at"
TOPOLOGY_SQL = "SELECT epoch, primary_name FROM foobar_topology WHERE id = 1"
MONITOR_SQL = ("SELECT @@read_only AS ro", "SHOW SLAVE STATUS", TOPOLOGY_SQL)
READ_ONLY_MESSAGE = "The MariaDB server is running with the --read-only option so it cannot execute this statement"


def op_error(code: int, message: str) -> Exception:
    return pymysql.err.OperationalError(code, message)


def lost() -> Exception:
    return op_error(2013, "Lost connection to MySQL server during query")


def slave(io="Yes", sql="Yes", lag: int | None = 0) -> dict:
    """A SHOW SLAVE STATUS row (the columns the monitor reads, and one it must not show anyone)."""
    return {"Master_Host": "10.77.0.11", "Slave_IO_Running": io, "Slave_SQL_Running": sql, "Seconds_Behind_Master": lag}


def item(id_, name, desc=None, served_by="web-01"):
    return {
        "id": id_,
        "name": name,
        "description": desc,
        "served_by": served_by,
        "created_at": datetime(2026, 11, 26, 13, 40, 1, 123456),
    }


class FakeServer:
    """One fake MariaDB server: its role (read_only, SHOW SLAVE STATUS), its items, and every
    statement it received.

    name: its node name.
    writable: read_only is off.
    status: the row SHOW SLAVE STATUS gives (None: not a replica).
    rows: its items (its own copy).
    caught_up: what MASTER_GTID_WAIT answers (0 when True, -1: timed out).
    """

    def __init__(self, name: str, *, writable=False, status: dict | None = None, rows=(), caught_up=True) -> None:
        self.name, self.read_only, self.status = name, not writable, status
        self.rows = [dict(r) for r in rows]
        self.caught_up = caught_up
        self.next_id = max((r["id"] for r in self.rows), default=0) + 1
        self.seq, self.gtid = 100, ""  # @@last_gtid: "" until a write (and always with binlog off)
        self.binlog = True
        self.down = False  # connecting fails; open connections are lost on their next use
        self.refuse: Exception | None = None  # connecting fails with this
        self.failures: list[list] = []
        self.log: list[tuple[str, Any]] = []
        self.conns: list[FakeConn] = []
        self.hook = None  # hook(conn, sql): called as each statement arrives
        self.topology: tuple[int, str] | None = None  # its topology row (None: no table, an older database)

    def promote(self) -> None:
        self.read_only, self.status = False, None

    def demote(self) -> None:
        self.read_only, self.status = True, slave()

    def fail(self, fragment: str, exc: BaseException, *, close=False, times: int | None = None) -> None:
        """Make statements containing fragment fail with exc once received (close: PyMySQL closed
        the connection before raising; times: how often, None for always)."""
        self.failures.append([fragment, exc, close, times])

    def sql(self, fragment: str = "") -> list[tuple[str, Any]]:
        """The statements the app sent (not the monitor's checks) that contain fragment."""
        return [(s, a) for s, a in self.log if s not in MONITOR_SQL and fragment in s]

    def answer(self, cur: FakeCursor, sql: str, args: Any) -> list[dict]:
        if sql == "SELECT @@read_only AS ro":
            return [{"ro": int(self.read_only)}]
        if sql == "SHOW SLAVE STATUS":
            return [dict(self.status)] if self.status else []
        if sql == TOPOLOGY_SQL:
            if self.topology is None:
                raise pymysql.err.ProgrammingError(1146, "Table 'foobar.foobar_topology' doesn't exist")
            return [{"epoch": self.topology[0], "primary_name": self.topology[1]}]
        if sql == "SELECT MASTER_GTID_WAIT(%s, %s) AS w":
            return [{"w": 0 if self.caught_up else -1}]
        if sql == "SELECT COUNT(*) AS n FROM items WHERE id < 0":
            return [{"n": 0}]
        if sql == "INSERT INTO items (name, description, served_by) VALUES (%s, %s, %s)":
            if self.read_only:
                raise op_error(1290, READ_ONLY_MESSAGE)
            self.rows.append(item(self.next_id, *args))
            cur.lastrowid, self.next_id, self.seq = self.next_id, self.next_id + 1, self.seq + 1
            self.gtid = f"0-1-{self.seq}" if self.binlog else ""
            return []
        if sql == "SELECT @@last_gtid AS gtid":
            return [{"gtid": self.gtid}]
        if sql == f"SELECT {COLUMNS} FROM items WHERE id = %s":
            return [r for r in self.rows if r["id"] == args[0]]
        if sql == f"SELECT {COLUMNS} FROM items ORDER BY id DESC LIMIT %s":
            return sorted(self.rows, key=lambda r: r["id"], reverse=True)[: args[0]]
        raise AssertionError(f"{self.name}: unexpected SQL {sql!r}")


class FakeConn:
    """A connection to a FakeServer, with PyMySQL's manners: a closed connection raises
    InterfaceError(0, '') on use and Error('Already closed') on ping."""

    def __init__(self, server: FakeServer) -> None:
        self.server = server
        self.open = True  # as PyMySQL's Connection.open: False once broken or closed
        self.closed = False  # close() was called
        self.dead = False  # the server dropped this connection (its next use fails)
        self.pings = 0
        self.active = 0  # statements running on it right now
        self.overlaps = 0  # statements that started while another one ran (two threads at once)

    def cursor(self) -> FakeCursor:
        return FakeCursor(self)

    def ping(self, reconnect=True) -> None:
        self.pings += 1
        assert reconnect is False, "the app must never let PyMySQL reconnect behind its back"
        if not self.open:
            raise pymysql.err.Error("Already closed")
        if self.dead or self.server.down:
            self.open = False
            raise lost()

    def close(self) -> None:
        self.closed, self.open = True, False


class FakeCursor:
    def __init__(self, conn: FakeConn) -> None:
        self.conn = conn
        self.lastrowid = None
        self._rows: list = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def execute(self, sql, args=None):
        conn, server = self.conn, self.conn.server
        conn.active += 1
        try:
            if conn.active > 1:
                conn.overlaps += 1
            if not conn.open:
                raise pymysql.err.InterfaceError(0, "")
            if conn.dead or server.down:
                conn.open = False
                raise lost()
            server.log.append((sql, args))
            if server.hook is not None:
                server.hook(conn, sql)
            for failure in server.failures:
                fragment, exc, close, times = failure
                if fragment in sql and times != 0:
                    if times is not None:
                        failure[3] = times - 1
                    if close:
                        conn.open = False
                    raise exc
            self._rows = server.answer(self, sql, args)
            return len(self._rows)
        finally:
            conn.active -= 1

    def fetchall(self):
        return list(self._rows)

    def fetchone(self):
        return self._rows[0] if self._rows else None


class Cluster:
    """The fake servers by node name, and the connect function the Router and Monitor are given."""

    def __init__(self, *servers: FakeServer) -> None:
        self.servers = {s.name: s for s in servers}
        self.connects: list[str] = []

    def __getitem__(self, name: str) -> FakeServer:
        return self.servers[name]

    def connect(self, node: DBNode) -> FakeConn:
        server = self.servers[node.name]
        self.connects.append(node.name)
        if server.down:
            raise op_error(2003, f"Can't connect to MySQL server on '{node.host}' ([Errno 111] Connection refused)")
        if server.refuse is not None:
            raise server.refuse
        conn = FakeConn(server)
        server.conns.append(conn)
        return conn

    def sql(self, fragment: str = "") -> list[tuple[str, str, Any]]:
        """(server, statement, args) of what the app sent every server."""
        return [(s.name, sql, args) for s in self.servers.values() for sql, args in s.sql(fragment)]


def primary(name="db-01", rows=()) -> FakeServer:
    return FakeServer(name, writable=True, rows=rows)


def replica(name="db-02", rows=(), **status) -> FakeServer:
    return FakeServer(name, status=slave(**status), rows=rows)


def make_config(*nodes: DBNode, **settings) -> Config:
    return Config(
        served_by="web-01",
        release="1.0.0-abc",
        nodes=nodes,
        db_name="foobar",
        db_user="foobar",
        db_password="s3cret-pw",
        **settings,
    )


def make_router(*servers: FakeServer, weights: dict[str, int] | None = None, check=True, **settings):
    """A Router over fake servers (checked once by its monitor, whose thread is not started)."""
    weights = weights or {}
    cluster = Cluster(*servers)
    nodes = [DBNode(s.name, ADDRESSES[s.name], 3306, weights.get(s.name, 1)) for s in servers]
    router = db.Router(make_config(*nodes, **settings), cluster.connect)
    if check:
        router.monitor.check_all()
    return router, cluster


def node_of(router, name: str) -> DBNode:
    return next(n for n in router.config.nodes if n.name == name)


def served(conn) -> str:
    """Read work: one query; returns the name of the server that answered it."""
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) AS n FROM items WHERE id < 0")
        cur.fetchone()
    return conn.server.name


def insert(conn) -> int:
    """Write work: one INSERT; returns the new id."""
    with conn.cursor() as cur:
        cur.execute("INSERT INTO items (name, description, served_by) VALUES (%s, %s, %s)", ("w", None, "web-01"))
        return cur.lastrowid


def names(router, reads: int, **kw) -> list[str]:
    out = []
    for _ in range(reads):
        answered_by, name = router.read(served, **kw)
        assert answered_by == name  # the name returned is the node that ran the work
        out.append(name)
    return out


# --- Pool -------------------------------------------------------------------------------------


class FakeClock:
    """db.time, with a monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(db, "time", fake)
    return fake


def make_pool(size=8):
    cluster = Cluster(primary("db-01"))
    return db.Pool(DBNode("db-01", "10.77.0.11"), cluster.connect, size), cluster


def test_pool_connects_when_it_has_nothing_idle(clock):
    pool, cluster = make_pool()
    a, b = pool.get(), pool.get()
    assert a is not b and cluster.connects == ["db-01", "db-01"]


def test_pool_reuses_a_connection_given_back(clock):
    pool, cluster = make_pool()
    conn = pool.get()
    pool.put(conn)
    clock.now += 0.5
    assert pool.get() is conn
    assert cluster.connects == ["db-01"]
    assert conn.pings == 0  # idle under a second: handed out as it is


def test_pool_pings_a_connection_idle_for_over_a_second(clock):
    pool, cluster = make_pool()
    conn = pool.get()
    pool.put(conn)
    clock.now += 1.5
    assert pool.get() is conn
    assert conn.pings == 1
    assert cluster.connects == ["db-01"] and not conn.closed


def test_pool_drops_a_stale_connection_and_hands_out_a_new_one(clock):
    pool, cluster = make_pool()
    old = pool.get()
    pool.put(old)
    old.dead = True  # the server restarted, or killed the idle connection
    clock.now += 5
    new = pool.get()
    assert new is not old and new.open
    assert old.pings == 1 and old.closed
    assert cluster.connects == ["db-01", "db-01"]
    pool.put(new)
    assert pool.get() is new  # the stale one is gone for good


def test_pool_drops_every_stale_connection_before_connecting(clock):
    pool, cluster = make_pool()
    stale = [pool.get() for _ in range(3)]
    for conn in stale:
        pool.put(conn)
        conn.dead = True
    clock.now += 2
    fresh = pool.get()
    assert fresh not in stale
    assert all(c.closed and c.pings == 1 for c in stale)
    assert len(cluster.connects) == 4


def test_pool_keeps_at_most_size_idle_connections(clock):
    pool, cluster = make_pool(size=2)
    a, b, c = pool.get(), pool.get(), pool.get()
    for conn in (a, b, c):
        pool.put(conn)
    assert c.closed and not a.closed and not b.closed
    assert {pool.get(), pool.get()} == {a, b}
    assert len(cluster.connects) == 3
    assert pool.get() not in (a, b, c)  # nothing idle left: a new connection
    assert len(cluster.connects) == 4


def test_pool_clear_closes_every_idle_connection(clock):
    pool, cluster = make_pool()
    conns = [pool.get() for _ in range(3)]
    for conn in conns:
        pool.put(conn)
    pool.clear()
    assert all(c.closed for c in conns)
    assert pool.get() not in conns


# --- Monitor ----------------------------------------------------------------------------------


def make_monitor(*servers: FakeServer, weights: dict[str, int] | None = None, **settings):
    router, cluster = make_router(*servers, weights=weights, **settings)
    return router.monitor, cluster


def test_monitor_state_of_a_writable_primary():
    mon, _ = make_monitor(primary("db-01"))
    assert mon.states["db-01"] == NodeState(
        up=True, writable=True, replica=False, replicating=False, lag=None, error=None
    )


def test_monitor_state_of_a_healthy_replica():
    mon, _ = make_monitor(primary("db-01"), replica("db-02", lag=2))
    assert mon.states["db-02"] == NodeState(
        up=True, writable=False, replica=True, replicating=True, lag=2.0, error=None, applying=True
    )


@pytest.mark.parametrize("io,sql", [("No", "Yes"), ("Yes", "No"), ("No", "No"), ("Connecting", "Yes")])
def test_monitor_state_of_a_stopped_replica(io, sql):
    mon, _ = make_monitor(primary("db-01"), replica("db-02", io=io, sql=sql, lag=None))
    state = mon.states["db-02"]
    assert state.up and state.replica and not state.replicating and not state.writable
    assert state.error == "replication stopped"


@pytest.mark.parametrize("lag,healthy", [(0, True), (5, True), (6, False), (3600, False), (None, False)])
def test_monitor_state_of_a_lagging_replica(lag, healthy):
    mon, _ = make_monitor(primary("db-01"), replica("db-02", lag=lag), max_lag=5)
    state = mon.states["db-02"]
    assert state.up and state.replica
    assert state.replicating is healthy
    assert state.lag == (None if lag is None else float(lag))
    assert (state.error is None) is healthy
    if not healthy:
        assert "lag" in state.error


def test_monitor_state_of_an_unreachable_node():
    mon, cluster = make_monitor(primary("db-01"), replica("db-02"), check=False)
    cluster["db-02"].refuse = op_error(1045, "Access denied for user 'foobar'@'10.77.0.31' (using password: YES)")
    mon.check_all()
    assert mon.states["db-02"] == NodeState(up=False, error="unreachable")
    assert mon.states["db-01"].up


def test_monitor_state_of_a_read_only_node_that_does_not_replicate():
    mon, _ = make_monitor(FakeServer("db-01"))
    assert mon.states["db-01"] == NodeState(up=True, writable=False, error="read-only, not replicating")
    assert mon.writer() is None and mon.readers() == []


def test_two_writable_primaries_the_one_the_highest_epoch_names_takes_the_writes():
    # a failover made db-02 the primary at epoch 2; db-01 came back writable (a partition healed)
    old, new = primary("db-01"), primary("db-02")
    old.topology, new.topology = (1, "db-01"), (2, "db-02")
    mon, _ = make_monitor(old, new)
    assert mon.states["db-01"].epoch == 1 and mon.states["db-02"].names == "db-02"
    assert mon.writer().name == "db-02"
    new.down = True  # the new primary out of sight: the old one is still never written to
    mon.check_all()
    assert mon.writer() is None


def test_without_topology_rows_two_writable_nodes_take_no_writes_and_one_does():
    mon, cluster = make_monitor(primary("db-01"), primary("db-02"))
    assert mon.states["db-01"].epoch is None and mon.writer() is None
    cluster["db-02"].read_only = True
    mon.check_all()
    assert mon.writer().name == "db-01"


def test_a_replica_with_the_highest_epoch_naming_another_node_stops_writes_to_a_stale_primary():
    # three nodes: db-01 an old primary come back writable (epoch 1); db-03 a replica of the new
    # primary db-02 (epoch 2), which this app cannot reach
    old, new, rep = primary("db-01"), primary("db-02"), replica("db-03")
    old.topology, new.topology, rep.topology = (1, "db-01"), (2, "db-02"), (2, "db-02")
    mon, _ = make_monitor(old, new, rep)
    assert mon.writer().name == "db-02"
    new.down = True
    mon.check_all()
    assert mon.writer() is None  # db-03 says db-02 is the primary at epoch 2: db-01 is not


def test_a_writable_node_whose_row_names_another_node_is_not_the_primary():
    node = primary("db-01")
    node.topology = (3, "db-02")  # its row says db-02 is the primary (e.g. restored by hand)
    mon, _ = make_monitor(node, replica("db-02"))
    assert mon.writer() is None


def test_monitor_nodes_are_down_until_checked():
    mon, cluster = make_monitor(primary("db-01"), check=False)
    assert not mon.states["db-01"].up and mon.writer() is None
    assert cluster.connects == []


def test_monitor_keeps_one_connection_per_node_across_checks():
    mon, cluster = make_monitor(primary("db-01"), replica("db-02"))
    mon.check_all()
    mon.check_all()
    assert sorted(cluster.connects) == ["db-01", "db-02"]
    assert len(cluster["db-01"].log) == 9  # three statements per check


def test_monitor_drops_a_lost_connection_and_reconnects_on_the_next_check():
    mon, cluster = make_monitor(primary("db-01"))
    first = cluster["db-01"].conns[0]
    first.dead = True
    mon.check_all()
    assert mon.states["db-01"] == NodeState(up=False, error="unreachable")
    assert first.closed
    mon.check_all()
    assert mon.states["db-01"].up and mon.writer().name == "db-01"
    assert cluster.connects == ["db-01", "db-01"]


def test_monitor_sees_a_node_come_back():
    mon, cluster = make_monitor(primary("db-01"), replica("db-02"))
    cluster["db-02"].down = True
    mon.check_all()
    assert not mon.states["db-02"].up
    cluster["db-02"].down = False
    mon.check_all()
    assert mon.states["db-02"].replicating


def test_writer_is_the_one_writable_node_that_is_not_a_replica():
    mon, _ = make_monitor(replica("db-02"), primary("db-01"), replica("db-03"))
    assert mon.writer().name == "db-01"


def test_writer_is_none_with_two_writable_nodes_split_brain():
    mon, _ = make_monitor(primary("db-01"), primary("db-02"), replica("db-03"))
    assert mon.writer() is None


def test_writer_is_none_when_no_node_is_writable():
    mon, _ = make_monitor(FakeServer("db-01"), replica("db-02"))
    assert mon.writer() is None


def test_writer_is_none_when_the_primary_is_down():
    mon, cluster = make_monitor(primary("db-01"), replica("db-02", io="Connecting", lag=None), check=False)
    cluster["db-01"].down = True
    mon.check_all()
    assert mon.writer() is None


def test_a_writable_replica_is_not_the_primary():
    writable_replica = FakeServer("db-02", writable=True, status=slave())
    mon, _ = make_monitor(primary("db-01"), writable_replica)
    assert mon.writer().name == "db-01"
    mon2, _ = make_monitor(FakeServer("db-01"), FakeServer("db-02", writable=True, status=slave()))
    assert mon2.writer() is None


def test_readers_are_the_primary_and_the_healthy_replicas():
    mon, _ = make_monitor(primary("db-01"), replica("db-02"), replica("db-03", lag=60))
    assert [n.name for n in mon.readers()] == ["db-01", "db-02"]


def test_readers_leave_out_weight_zero_while_another_node_can_serve():
    mon, cluster = make_monitor(primary("db-01"), replica("db-02"), replica("db-03"), weights={"db-01": 0, "db-02": 2})
    assert [(n.name, n.weight) for n in mon.readers()] == [("db-02", 2), ("db-03", 1)]
    cluster["db-02"].status = slave(io="No")
    cluster["db-03"].down = True
    mon.check_all()
    assert [n.name for n in mon.readers()] == ["db-01"]  # nothing else: the weight-0 primary serves


def test_readers_without_a_primary_are_the_healthy_replicas():
    mon, _ = make_monitor(FakeServer("db-01"), replica("db-02"), replica("db-03", sql="No"))
    assert [n.name for n in mon.readers()] == ["db-02"]


def test_readers_are_empty_when_every_node_is_down():
    mon, cluster = make_monitor(primary("db-01"), replica("db-02"), check=False)
    cluster["db-01"].down = cluster["db-02"].down = True
    mon.check_all()
    assert mon.readers() == [] and mon.writer() is None


def test_report_down_takes_a_node_out_until_the_next_check():
    mon, _ = make_monitor(primary("db-01"), replica("db-02"))
    mon.report_down(DBNode("db-02", "10.77.0.21"))
    assert mon.states["db-02"] == NodeState(up=False, error="unreachable")
    assert [n.name for n in mon.readers()] == ["db-01"]
    assert mon.writer().name == "db-01"
    mon.check_all()
    assert [n.name for n in mon.readers()] == ["db-01", "db-02"]


def test_report_down_of_the_primary_leaves_no_writer():
    mon, _ = make_monitor(primary("db-01"), replica("db-02"))
    mon.report_down(DBNode("db-01", "10.77.0.11"))
    assert mon.writer() is None
    assert [n.name for n in mon.readers()] == ["db-02"]


def test_monitor_thread_follows_a_switchover():
    mon, cluster = make_monitor(primary("db-01"), replica("db-02"), check=False, check_interval=0.02)
    mon.start()
    try:
        assert mon.writer().name == "db-01"  # start() checks once before returning
        cluster["db-01"].demote()
        cluster["db-02"].promote()
        deadline = time.monotonic() + 2
        while getattr(mon.writer(), "name", None) != "db-02" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert mon.writer().name == "db-02"
    finally:
        mon.stop()
        mon._thread.join(2)
    assert not mon._thread.is_alive()


def test_wait_writer_returns_none_after_its_timeout():
    mon, _ = make_monitor(FakeServer("db-01"))
    started = time.monotonic()
    assert mon.wait_writer(0.05) is None
    assert 0.04 <= time.monotonic() - started < 1


def test_monitor_checks_never_use_one_connection_from_two_threads_at_once():
    """BUG: wait_writer() runs check_all() on the request thread while the monitor thread may be
    running it too; both use the monitor's one connection per node, and a PyMySQL connection must
    never be used by two threads at once (the protocol interleaves: wrong answers, 'Packet sequence
    number wrong', nodes shown down during a switchover)."""
    mon, cluster = make_monitor(primary("db-01"))
    server = cluster["db-01"]
    inside, release = threading.Event(), threading.Event()

    def hook(conn, sql):
        if threading.current_thread().name == "monitor-check" and not inside.is_set():
            inside.set()
            release.wait(0.3)  # the monitor thread is mid-check
        else:
            release.set()

    server.hook = hook
    background = threading.Thread(target=mon.check_all, name="monitor-check")
    background.start()
    try:
        assert inside.wait(2)
        assert mon.wait_writer(0).name == "db-01"  # what a write does when it sees no primary
    finally:
        release.set()
        background.join(2)
    assert [c.overlaps for c in server.conns] == [0] * len(server.conns)


# --- Router: reads ------------------------------------------------------------------------------


def test_reads_alternate_between_two_nodes_of_equal_weight():
    router, _ = make_router(primary("db-01"), replica("db-02"))
    got = names(router, 10)
    assert len(set(got[0::2])) == 1 and len(set(got[1::2])) == 1
    assert set(got) == {"db-01", "db-02"}


def test_reads_follow_the_weights_3_to_1_evenly_spread():
    router, _ = make_router(primary("db-01"), replica("db-02"), weights={"db-01": 3, "db-02": 1})
    got = names(router, 100)
    assert Counter(got) == {"db-01": 75, "db-02": 25}
    assert all(got[i : i + 4].count("db-02") == 1 for i in range(97))  # smooth: one in every four


def test_reads_follow_the_weights_over_three_nodes():
    router, _ = make_router(
        primary("db-01"), replica("db-02"), replica("db-03"), weights={"db-01": 1, "db-02": 2, "db-03": 2}
    )
    assert Counter(names(router, 100)) == {"db-01": 20, "db-02": 40, "db-03": 40}


def test_reads_skip_a_weight_zero_primary_and_an_unhealthy_replica():
    router, _ = make_router(primary("db-01"), replica("db-02"), replica("db-03", lag=60), weights={"db-01": 0})
    assert set(names(router, 10)) == {"db-02"}


def test_read_goes_to_the_weight_zero_primary_when_no_replica_can_serve():
    router, cluster = make_router(primary("db-01"), replica("db-02"), weights={"db-01": 0})
    cluster["db-02"].status = slave(sql="No")
    router.monitor.check_all()
    assert set(names(router, 3)) == {"db-01"}


def test_reads_reuse_pooled_connections():
    router, cluster = make_router(primary("db-01"), replica("db-02"))
    names(router, 10)
    assert Counter(cluster.connects) == {"db-01": 2, "db-02": 2}  # the monitor's and one pooled each
    assert all(c.open for s in cluster.servers.values() for c in s.conns)


@pytest.mark.parametrize("how", ["connect refused", "lost mid-query"])
def test_a_read_failing_on_a_node_goes_to_another_and_the_node_is_reported_down(how):
    router, cluster = make_router(primary("db-01"), replica("db-02"), weights={"db-01": 1, "db-02": 3})
    bad = cluster["db-02"]
    pool = router.pools["db-02"]
    idle = [cluster.connect(node_of(router, "db-02")) for _ in range(2)]
    for conn in idle:
        pool.put(conn)
    if how == "connect refused":
        pool.clear()
        bad.refuse = op_error(2003, "Can't connect to MySQL server on '10.77.0.21' ([Errno 113] No route to host)")
    else:
        bad.fail("FROM items", lost(), close=True)
    assert router.read(served) == ("db-01", "db-01")  # db-02 (weight 3) was asked first
    if how == "lost mid-query":
        assert bad.sql("FROM items")  # it was tried
    state = router.monitor.states["db-02"]
    assert not state.up and state.error == "unreachable"
    assert [n.name for n in router.monitor.readers()] == ["db-01"]
    assert all(c.closed for c in idle)  # its pool was emptied
    assert set(names(router, 5)) == {"db-01"}  # until the next check


def test_a_read_failing_on_every_node_is_nonode_and_every_node_is_reported_down():
    router, cluster = make_router(primary("db-01"), replica("db-02"), replica("db-03"))
    for server in cluster.servers.values():
        server.fail("FROM items", lost(), close=True)
    with pytest.raises(NoNode):
        router.read(served)
    assert all(len(s.sql("FROM items")) == 1 for s in cluster.servers.values())  # each tried once
    assert not any(state.up for state in router.monitor.states.values())


def test_a_read_with_no_node_is_nonode():
    router, cluster = make_router(primary("db-01"), check=False)
    cluster["db-01"].down = True
    router.monitor.check_all()
    with pytest.raises(NoNode):
        router.read(served)


def test_a_read_failing_with_a_query_error_is_not_retried_elsewhere():
    router, cluster = make_router(primary("db-01"), replica("db-02"))
    for server in cluster.servers.values():
        server.fail("FROM items", pymysql.err.ProgrammingError(1146, "Table 'foobar.items' doesn't exist"))
    with pytest.raises(pymysql.err.ProgrammingError):
        router.read(served)
    assert len(cluster.sql("FROM items")) == 1
    assert all(state.up for state in router.monitor.states.values())


def test_read_after_write_uses_a_replica_that_caught_up():
    router, cluster = make_router(primary("db-01"), replica("db-02"), weights={"db-01": 0})
    assert router.read(served, after="0-1-42") == ("db-02", "db-02")
    assert cluster["db-02"].sql() == [
        ("SELECT MASTER_GTID_WAIT(%s, %s) AS w", ("0-1-42", db.GTID_WAIT)),
        ("SELECT COUNT(*) AS n FROM items WHERE id < 0", None),
    ]
    assert cluster["db-01"].sql() == []


@pytest.mark.parametrize("weights", [{"db-01": 0}, {"db-01": 1, "db-02": 3}])
def test_read_after_write_goes_to_the_primary_when_the_replica_has_not_caught_up(weights):
    router, cluster = make_router(primary("db-01"), replica("db-02"), weights=weights)
    cluster["db-02"].caught_up = False
    assert router.read(served, after="0-1-42") == ("db-01", "db-01")
    assert cluster["db-02"].sql() == [("SELECT MASTER_GTID_WAIT(%s, %s) AS w", ("0-1-42", db.GTID_WAIT))]
    assert cluster["db-01"].sql() == [("SELECT COUNT(*) AS n FROM items WHERE id < 0", None)]  # no wait asked
    assert router.monitor.states["db-02"].replicating  # a replica behind is not a replica down


def test_reads_without_a_previous_write_never_wait():
    router, cluster = make_router(primary("db-01"), replica("db-02"))
    names(router, 4)
    assert cluster.sql("MASTER_GTID_WAIT") == []


# --- Router: writes -----------------------------------------------------------------------------


def test_write_goes_to_the_primary():
    router, cluster = make_router(replica("db-02"), primary("db-01"), replica("db-03"))
    assert router.write(insert) == (1, "db-01")
    assert [name for name, _, _ in cluster.sql("INSERT")] == ["db-01"]


def test_a_write_refused_as_read_only_is_retried_once_on_the_new_primary():
    router, cluster = make_router(primary("db-01", rows=[item(1, "a")]), replica("db-02", rows=[item(1, "a")]))
    cluster["db-01"].demote()  # a switchover since the monitor's last check
    cluster["db-02"].promote()
    assert router.monitor.writer().name == "db-01"
    assert router.write(insert) == (2, "db-02")
    assert [name for name, _, _ in cluster.sql("INSERT")] == ["db-01", "db-02"]
    assert router.monitor.writer().name == "db-02"


def test_a_write_refused_as_read_only_twice_is_not_retried_again():
    router, cluster = make_router(primary("db-01"), replica("db-02"))
    cluster["db-01"].demote()
    cluster["db-02"].promote()
    cluster["db-02"].fail("INSERT", op_error(1290, READ_ONLY_MESSAGE))
    with pytest.raises(pymysql.err.OperationalError) as info:
        router.write(insert)
    assert info.value.args[0] == 1290
    assert len(cluster.sql("INSERT")) == 2


def test_a_write_refused_as_read_only_with_no_new_primary_is_nonode():
    router, cluster = make_router(primary("db-01"), replica("db-02"))
    cluster["db-01"].demote()
    started = time.monotonic()
    with pytest.raises(NoNode):
        router.write(insert)
    assert time.monotonic() - started < 1
    assert len(cluster.sql("INSERT")) == 1


@pytest.mark.parametrize(
    "error,closes",
    [
        (op_error(2013, "Lost connection to MySQL server during query"), True),
        (op_error(2006, "MySQL server has gone away (BrokenPipeError(32, 'Broken pipe'))"), True),
        (pymysql.err.IntegrityError(1062, "Duplicate entry 'w' for key 'name'"), False),
    ],
)
def test_a_write_that_failed_otherwise_is_not_retried(error, closes):
    router, cluster = make_router(primary("db-01"), replica("db-02"))
    cluster["db-01"].fail("INSERT", error, close=closes)
    with pytest.raises(type(error)) as info:
        router.write(insert)
    assert info.value is error
    assert len(cluster.sql("INSERT")) == 1  # the write may have landed: never sent twice


def test_a_connection_lost_mid_write_is_not_reused():
    router, cluster = make_router(primary("db-01"))
    cluster["db-01"].fail("INSERT", lost(), close=True, times=1)
    with pytest.raises(pymysql.err.OperationalError):
        router.write(insert)
    broken = [c for c in cluster["db-01"].conns if not c.open]
    assert len(broken) == 1 and broken[0].closed
    assert router.write(insert) == (1, "db-01")
    assert len(cluster.sql("INSERT")) == 2


@pytest.mark.parametrize(
    "servers",
    [
        lambda: (FakeServer("db-01"), replica("db-02")),  # none writable
        lambda: (primary("db-01"), primary("db-02")),  # split brain
    ],
)
def test_a_write_with_no_primary_is_nonode_and_sends_nothing(servers):
    router, cluster = make_router(*servers())
    started = time.monotonic()
    with pytest.raises(NoNode):
        router.write(insert)
    assert time.monotonic() - started < 1  # waited WRITER_WAIT (0.1 s here), no more
    assert cluster.sql("INSERT") == []


def test_a_write_waits_for_a_primary_that_appears(monkeypatch):
    monkeypatch.setattr(db, "WRITER_WAIT", 2.0)
    router, cluster = make_router(primary("db-01"), replica("db-02"))
    cluster["db-01"].demote()
    router.monitor.check_all()  # mid-switchover: no primary

    def promoted():
        cluster["db-02"].promote()
        router.monitor.check_all()  # the monitor thread's next check

    timer = threading.Timer(0.05, promoted)
    timer.start()
    try:
        assert router.write(insert) == (1, "db-02")
    finally:
        timer.join(2)
    assert [name for name, _, _ in cluster.sql("INSERT")] == ["db-02"]


def test_router_connects_with_pymysql_and_the_configs_account(monkeypatch):
    calls = []
    monkeypatch.setattr(pymysql, "connect", lambda **kw: calls.append(kw) or object())
    node = DBNode("db-02", "10.77.0.21", 3307, 2)
    router = db.Router(make_config(node, connect_timeout=0.5))
    router.pools["db-02"].get()
    assert calls == [
        {
            "host": "10.77.0.21",
            "port": 3307,
            "user": "foobar",
            "password": "s3cret-pw",
            "database": "foobar",
            "connect_timeout": 0.5,
            "read_timeout": 10,
            "write_timeout": 10,
            "autocommit": True,
            "cursorclass": pymysql.cursors.DictCursor,
            "charset": "utf8mb4",
        }
    ]


class WorkerTimeout(BaseException):
    """As gevent.Timeout or a worker's abort: not an Exception, raised mid-query."""


@pytest.mark.parametrize(
    "error",
    [pymysql.err.InternalError("Packet sequence number wrong - got 3 expected 1"), WorkerTimeout("30 s")],
    ids=["InternalError", "BaseException"],
)
def test_a_connection_pymysql_closed_is_never_handed_out_again(error):
    """BUG: Router._use gives the connection back to the pool after any error but
    OperationalError, though PyMySQL closes a connection before raising InternalError (bad packet
    sequence) and before letting a BaseException through; given back, the dead connection is the
    first one the next request gets (LIFO, idle < 1 s: no ping), fails it with InterfaceError(0, '')
    and is given back again, forever under steady traffic."""
    router, cluster = make_router(primary("db-01"))
    cluster["db-01"].fail("FROM items", error, close=True, times=1)
    with pytest.raises(type(error)):
        router.read(served)
    assert router.read(served) == ("db-01", "db-01")


# --- the App ----------------------------------------------------------------------------------


def make_app(rows=(), *, servers=None, weights=None, check=True):
    """The App over a Router over a primary db-01 (weight 0: it takes the writes) and a replica
    db-02 that serves the reads, both holding rows."""
    servers = servers or (primary("db-01", rows), replica("db-02", rows))
    router, cluster = make_router(*servers, weights=weights if weights is not None else {"db-01": 0}, check=check)
    return App(router.config, router), cluster


class Response:
    def __init__(self, app, env) -> None:
        self.calls = []
        chunks = app(env, lambda status, headers: self.calls.append((status, headers)))
        assert len(self.calls) == 1, "start_response must be called exactly once"
        self.status, self.header_list = self.calls[0]
        self.headers = dict(self.header_list)
        self.body = b"".join(chunks)
        self.code = int(self.status.split()[0])

    def json(self):
        assert self.headers["Content-Type"] == "application/json; charset=utf-8"
        return json.loads(self.body)


def call(app, method="GET", path="/", **kw) -> Response:
    return Response(app, environ(method, path, **kw))


def post(app, obj, **kw) -> Response:
    return call(app, "POST", "/api/items", body=json.dumps(obj).encode(), **kw)


ROUTES = [
    ("GET", "/"),
    ("HEAD", "/"),
    ("GET", "/health"),
    ("GET", "/api/items"),
    ("POST", "/api/items"),
    ("GET", "/api/items/1"),
    ("GET", "/api/items/999"),
    ("GET", "/nope"),
    ("PUT", "/api/items"),
    ("DELETE", "/api/items/1"),
]


@pytest.mark.parametrize("method,path", ROUTES)
def test_every_response_has_served_by_release_and_consistent_length(method, path):
    app, _ = make_app([item(1, "a")])
    r = call(app, method, path)
    assert r.headers["X-Served-By"] == "web-01"
    assert r.headers["X-Release"] == "1.0.0-abc"
    assert r.headers["Content-Length"] == str(len(r.body))
    assert r.headers["Cache-Control"] == "no-store"


def test_error_responses_also_have_served_by_and_release_when_the_db_is_down():
    app, cluster = make_app(check=False)
    for server in cluster.servers.values():
        server.down = True
    app.db.monitor.check_all()
    r = call(app, "GET", "/api/items")
    assert r.code == 503 and r.status == "503 Service Unavailable"
    assert r.headers["X-Served-By"] == "web-01" and r.headers["X-Release"] == "1.0.0-abc"
    assert r.json() == {"error": "no database node can serve reads"}


def test_list_items():
    app, cluster = make_app([item(1, "a", "first"), item(2, "b")])
    r = call(app, "GET", "/api/items")
    assert r.code == 200
    assert r.headers["X-DB-Node"] == "db-02"
    body = r.json()
    assert [i["name"] for i in body["items"]] == ["b", "a"]
    assert body["items"][1]["description"] == "first"
    assert body["items"][0]["created_at"] == "2026-11-26T13:40:01.123456"
    assert cluster["db-02"].sql() == [(f"SELECT {COLUMNS} FROM items ORDER BY id DESC LIMIT %s", (50,))]
    assert cluster["db-01"].sql() == []  # reads stay off the primary


def test_x_db_node_names_the_node_that_served():
    app, cluster = make_app([item(1, "a")], weights={})
    seen = []
    for _ in range(6):
        before = {name: len(s.sql("ORDER BY")) for name, s in cluster.servers.items()}
        r = call(app, "GET", "/api/items")
        after = {name: len(s.sql("ORDER BY")) for name, s in cluster.servers.items()}
        served_by = {name for name in after if after[name] != before[name]}
        assert served_by == {r.headers["X-DB-Node"]}
        seen.append(r.headers["X-DB-Node"])
    assert Counter(seen) == {"db-01": 3, "db-02": 3}


def test_get_item():
    app, cluster = make_app([item(5, "five")])
    r = call(app, "GET", "/api/items/5")
    assert r.code == 200
    assert r.headers["X-DB-Node"] == "db-02"
    assert r.json()["name"] == "five"
    assert cluster["db-02"].sql() == [(f"SELECT {COLUMNS} FROM items WHERE id = %s", (5,))]
    assert cluster["db-01"].sql() == []


def test_get_item_missing_on_the_replica_is_asked_of_the_primary():
    app, cluster = make_app([item(1, "a")])
    cluster["db-01"].rows.append(item(2, "new"))  # written, not replicated yet
    r = call(app, "GET", "/api/items/2")
    assert r.code == 200
    assert r.json()["name"] == "new"
    assert r.headers["X-DB-Node"] == "db-01"
    assert cluster["db-02"].sql() == [(f"SELECT {COLUMNS} FROM items WHERE id = %s", (2,))]
    assert cluster["db-01"].sql() == [(f"SELECT {COLUMNS} FROM items WHERE id = %s", (2,))]


def test_get_missing_item_is_404_json_after_asking_the_primary():
    app, cluster = make_app([item(1, "a")])
    r = call(app, "GET", "/api/items/5")
    assert r.code == 404 and r.status == "404 Not Found"
    assert r.json() == {"error": "no item 5"}
    assert len(cluster["db-02"].sql("WHERE id")) == 1 and len(cluster["db-01"].sql("WHERE id")) == 1


def test_get_missing_item_read_on_the_primary_is_not_asked_twice():
    app, cluster = make_app(servers=(primary("db-01", [item(1, "a")]),))
    r = call(app, "GET", "/api/items/5")
    assert r.code == 404
    assert cluster["db-01"].sql() == [(f"SELECT {COLUMNS} FROM items WHERE id = %s", (5,))]


def test_post_bad_json_is_400_and_runs_no_sql():
    app, cluster = make_app()
    r = call(app, "POST", "/api/items", body=b"{oops")
    assert r.code == 400
    assert r.json()["error"].startswith("invalid JSON")
    assert cluster.sql() == []


def test_post_invalid_item_runs_no_sql():
    app, cluster = make_app()
    r = post(app, {"name": ""})
    assert r.code == 400 and "'name'" in r.json()["error"]
    assert cluster.sql() == []


def test_post_valid_item_is_201_on_the_primary_with_location():
    app, cluster = make_app([item(41, "old")])
    r = post(app, {"name": " new <thing> ", "description": "d"})
    assert r.code == 201 and r.status == "201 Created"
    assert r.headers["Location"] == "/api/items/42"
    assert r.headers["X-DB-Node"] == "db-01"
    assert r.json()["id"] == 42 and r.json()["name"] == "new <thing>"
    insert_sql, gtid_sql, select_sql = cluster["db-01"].sql()
    assert insert_sql == (
        "INSERT INTO items (name, description, served_by) VALUES (%s, %s, %s)",
        ("new <thing>", "d", "web-01"),
    )
    assert gtid_sql == ("SELECT @@last_gtid AS gtid", None)
    assert select_sql == (f"SELECT {COLUMNS} FROM items WHERE id = %s", (42,))
    assert cluster["db-02"].sql() == []


def test_post_sets_the_gtid_cookie_of_the_write():
    app, cluster = make_app()
    r = post(app, {"name": "w"})
    assert r.code == 201
    assert cluster["db-01"].gtid == "0-1-101"
    (value,) = [v for k, v in r.header_list if k == "Set-Cookie"]
    cookie, attributes = value.split(";", 1)
    gtid, issued, _ = cookie.removeprefix("foobar_gtid=").split(".")  # signed: GTID.ISSUED.SIGNATURE
    assert gtid == "0-1-101"
    assert cookie == "foobar_gtid=" + wsgi.sign_gtid(wsgi.cookie_key(app.config), gtid, int(issued))
    assert attributes == " Path=/; Max-Age=300; HttpOnly; SameSite=Lax"


def test_post_without_a_gtid_sets_no_cookie():
    app, cluster = make_app()
    cluster["db-01"].binlog = False
    r = post(app, {"name": "w"})
    assert r.code == 201
    assert "Set-Cookie" not in r.headers


def test_post_with_no_primary_is_503_and_sends_nothing():
    app, cluster = make_app(servers=(FakeServer("db-01"), replica("db-02")))
    r = post(app, {"name": "w"})
    assert r.code == 503
    assert r.json() == {"error": "no writable primary database"}
    assert cluster.sql("INSERT") == []


def test_a_clients_reads_after_its_write_see_it():
    app, cluster = make_app([item(1, "old")])
    w = post(app, {"name": "mine"})
    cookie = w.headers["Set-Cookie"].split(";")[0]
    assert cookie.startswith("foobar_gtid=0-1-101.")  # signed (see test_app_cookie.py)
    cluster["db-02"].caught_up = False  # the replica has not applied it yet

    r = call(app, "GET", "/api/items", cookie=cookie)
    assert r.headers["X-DB-Node"] == "db-01"
    assert [i["name"] for i in r.json()["items"]] == ["mine", "old"]
    assert cluster["db-02"].sql("MASTER_GTID_WAIT") == [
        ("SELECT MASTER_GTID_WAIT(%s, %s) AS w", ("0-1-101", db.GTID_WAIT))
    ]
    assert call(app, "GET", "/", cookie=cookie).headers["X-DB-Node"] == "db-01"

    cluster["db-02"].rows.append(item(2, "mine"))
    cluster["db-02"].caught_up = True  # replicated now
    r = call(app, "GET", "/api/items", cookie=cookie)
    assert r.headers["X-DB-Node"] == "db-02"
    assert [i["name"] for i in r.json()["items"]] == ["mine", "old"]

    r = call(app, "GET", "/api/items")  # another client: no wait
    assert r.headers["X-DB-Node"] == "db-02"
    assert len(cluster["db-02"].sql("MASTER_GTID_WAIT")) == 3  # one per read with the cookie
    assert cluster["db-01"].sql("MASTER_GTID_WAIT") == []


@pytest.mark.parametrize(
    "cookie", ["foobar_gtid=abc", "foobar_gtid=0-1-", "foobar_gtid=0-1-2-3", "other=0-1-1", "foobar_gtid=0-1-1 OR 1"]
)
def test_a_malformed_gtid_cookie_is_ignored(cookie):
    app, cluster = make_app([item(1, "a")])
    r = call(app, "GET", "/api/items", cookie=cookie)
    assert r.code == 200 and r.headers["X-DB-Node"] == "db-02"
    assert cluster.sql("MASTER_GTID_WAIT") == []


def test_unknown_route_is_404():
    app, _ = make_app()
    r = call(app, "GET", "/admin")
    assert r.code == 404
    assert "no route for GET /admin" == r.json()["error"]


@pytest.mark.parametrize("path", ["/api/items/", "/api/items/abc", "/api/items/-1", "/api/items/1/x"])
def test_malformed_item_paths_are_404(path):
    app, _ = make_app()
    assert call(app, "GET", path).code == 404


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_methods_on_the_collection_are_405(method):
    app, _ = make_app()
    r = call(app, method, "/api/items")
    assert r.code == 405 and r.status == "405 Method Not Allowed"
    assert method in r.json()["error"]


@pytest.mark.parametrize("method", ["PUT", "DELETE", "POST"])
def test_other_methods_on_an_item_are_405_and_run_no_sql(method):
    app, cluster = make_app([item(1, "a")])
    r = call(app, method, "/api/items/1")
    assert r.code == 405
    assert cluster.sql() == []


def test_health_ok_names_the_read_node_and_the_primary():
    app, cluster = make_app()
    r = call(app, "GET", "/health")
    assert r.code == 200
    body = r.json()
    assert body == {
        "status": "ok",
        "checks": {"app": "ok", "db_read": "ok (db-02)", "db_write": "ok (db-01)"},
        "served_by": "web-01",
        "release": "1.0.0-abc",
    }
    assert cluster["db-02"].sql() == [("SELECT COUNT(*) AS n FROM items WHERE id < 0", None)]


def test_health_ok_without_a_primary_while_reads_work():
    app, _ = make_app(servers=(FakeServer("db-01"), replica("db-02")))
    r = call(app, "GET", "/health")
    assert r.code == 200
    assert r.json()["checks"] == {"app": "ok", "db_read": "ok (db-02)", "db_write": "unavailable: no writable primary"}


def test_health_ok_on_the_primary_when_the_replica_is_down():
    app, cluster = make_app(check=False)
    cluster["db-02"].down = True
    app.db.monitor.check_all()
    r = call(app, "GET", "/health")
    assert r.code == 200
    assert r.json()["checks"]["db_read"] == "ok (db-01)"


def test_health_503_when_every_node_is_down():
    app, cluster = make_app(check=False)
    for server in cluster.servers.values():
        server.down = True
    app.db.monitor.check_all()
    r = call(app, "GET", "/health")
    assert r.code == 503 and r.status == "503 Service Unavailable"
    body = r.json()
    assert body["status"] == "failing"
    assert body["checks"] == {"app": "ok", "db_read": "failed", "db_write": "unavailable: no writable primary"}
    assert body["served_by"] == "web-01" and body["release"] == "1.0.0-abc"


def test_health_503_when_every_read_fails_though_the_monitor_saw_the_nodes_up():
    app, cluster = make_app()
    for server in cluster.servers.values():
        server.fail("FROM items", lost(), close=True)
    r = call(app, "GET", "/health")
    assert r.code == 503
    assert r.json()["checks"]["db_read"] == "failed"


def test_health_503_when_the_query_fails():
    app, cluster = make_app()
    for server in cluster.servers.values():
        server.fail("FROM items", pymysql.err.ProgrammingError(1146, "Table 'foobar.items' doesn't exist"))
    r = call(app, "GET", "/health")
    assert r.code == 503
    assert r.json()["checks"]["db_read"] == "failed"
    assert b"doesn't exist" not in r.body


ACCESS_DENIED = "Access denied for user 'foobar'@'10.77.0.31' (using password: YES)"
LEAKS = (
    "foobar'@",
    "10.77.",
    "Access denied",
    "Can't connect",
    "doesn't exist",
    "Lost connection",
    "read-only",
    "s3cret",
)
GENERIC = {"database unavailable", "no database node can serve reads", "no writable primary database"}


def _unreachable(cluster):
    for server in cluster.servers.values():
        server.down = True


def _access_denied(cluster):  # the monitor saw them up; the account was dropped since
    for server in cluster.servers.values():
        server.refuse = op_error(1045, ACCESS_DENIED)


def _missing_table(cluster):
    for server in cluster.servers.values():
        server.fail("items", pymysql.err.ProgrammingError(1146, "Table 'foobar.items' doesn't exist"))


def _lost(cluster):
    for server in cluster.servers.values():
        server.fail("items", lost(), close=True)


def _read_only_everywhere(cluster):  # the monitor still thinks db-01 is the primary
    cluster["db-01"].read_only = True


@pytest.mark.parametrize("breakage", [_unreachable, _access_denied, _missing_table, _lost, _read_only_everywhere])
def test_database_error_details_never_reach_the_client(breakage):
    app, cluster = make_app([item(1, "a")], check=breakage is not _unreachable)
    breakage(cluster)
    if breakage is _unreachable:
        app.db.monitor.check_all()
    responses = [
        call(app, "GET", "/"),
        call(app, "GET", "/health"),
        call(app, "GET", "/api/items"),
        call(app, "GET", "/api/items/1"),
        call(app, "GET", "/api/items/2"),
        post(app, {"name": "w"}),
    ]
    assert responses[-1].code == 503
    for r in responses:
        text = r.body.decode() + "\n".join(f"{k}: {v}" for k, v in r.header_list)
        for leak in LEAKS:
            assert leak not in text, (r.status, text)
        if r.code == 503 and "error" in r.json():
            assert r.json()["error"] in GENERIC


def test_home_page_escapes_item_names_and_links_static_files():
    app, cluster = make_app([item(2, "Tom & Jerry"), item(3, "<script>alert(1)</script>", served_by="web-<02>")])
    r = call(app, "GET", "/")
    assert r.code == 200
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    assert r.headers["X-DB-Node"] == "db-02"
    page = r.body.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert" not in page
    assert "web-&lt;02&gt;" in page
    assert "Tom &amp; Jerry" in page
    assert 'href="/static/app.css"' in page
    assert '<script src="/static/app.js"></script>' in page
    assert "1.0.0-abc" in page and 'data-served-by="web-01"' in page
    assert "database <b>db-02</b>" in page
    assert cluster["db-02"].sql()[-1][1] == (10,)


def test_home_page_with_no_items():
    app, _ = make_app()
    r = call(app, "GET", "/")
    assert r.code == 200 and "No items yet." in r.body.decode()


def test_non_ascii_body_length_counts_bytes():
    app, _ = make_app([item(1, "çà ☃")])
    r = call(app, "GET", "/api/items")
    assert r.headers["Content-Length"] == str(len(r.body))
    assert r.json()["items"][0]["name"] == "çà ☃"


def test_sql_uses_parameters_never_formatted_values():
    nasty = "Robert'); DROP TABLE items;--"
    app, cluster = make_app([item(7, nasty, nasty)])
    w = post(app, {"name": nasty, "description": nasty})
    assert w.code == 201
    cookie = w.headers["Set-Cookie"].split(";")[0]
    call(app, "GET", "/api/items/7")
    call(app, "GET", "/api/items/8")  # on the primary only: asked of both
    call(app, "GET", "/api/items", cookie=cookie)
    call(app, "GET", "/")
    call(app, "GET", "/health")
    statements = [(sql, args) for server in cluster.servers.values() for sql, args in server.log]
    assert len(cluster.sql()) >= 9
    for sql, args in statements:
        assert nasty not in sql and "Robert" not in sql
        assert "7" not in sql and "8" not in sql and "50" not in sql and "0-1-" not in sql
        if args is not None:
            assert sql.count("%s") == len(args)
        else:
            assert "%s" not in sql


def test_with_the_primary_gone_replicas_that_still_apply_serve_reads():
    """The primary is unreachable (before a failover): its replicas' IO threads are `Connecting`, so
    none is a healthy replica; still, rather than failing every read (and /health on every web
    server), a replica whose SQL thread runs serves them."""
    mon, cluster = make_monitor(primary("db-01"), replica("db-02", io="Connecting", lag=None))
    cluster["db-01"].down = True
    mon.check_all()
    assert mon.writer() is None
    assert [n.name for n in mon.readers()] == ["db-02"]
