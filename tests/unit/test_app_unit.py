"""The foobar.com WSGI app without a database: request parsing, configuration, and routing over a
fake read/write Router (connections and cursors that record the SQL they are given)."""

from __future__ import annotations

import importlib
import io
import json
import sys
import types
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

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

    class DatabaseError(Error):
        pass

    class OperationalError(DatabaseError):
        pass

    for cls in (MySQLError, Error, DatabaseError, OperationalError):
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
    try:
        importlib.import_module("pymysql")
        return importlib.import_module("foobar_app.wsgi"), importlib.import_module("foobar_app.config")
    except ImportError:
        pass
    stub = _stub_pymysql()
    saved = {k: sys.modules.get(k) for k in ("pymysql", "pymysql.err", "pymysql.cursors")}
    sys.modules.update({"pymysql": stub, "pymysql.err": stub.err, "pymysql.cursors": stub.cursors})
    try:
        return importlib.import_module("foobar_app.wsgi"), importlib.import_module("foobar_app.config")
    finally:
        for key, value in saved.items():
            if value is None:
                sys.modules.pop(key, None)
            else:
                sys.modules[key] = value


wsgi, config_mod = _import_app()
pymysql = wsgi.pymysql  # the module the app catches errors from (real or stub)
App, HTTPError, parse_item, MAX_BODY = wsgi.App, wsgi.HTTPError, wsgi.parse_item, wsgi.MAX_BODY
Config, DBNode = config_mod.Config, config_mod.DBNode


# --- helpers --------------------------------------------------------------------------------


class ReadOnce(io.BytesIO):
    """wsgi.input that records how much was asked for."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.asked: list = []

    def read(self, size=-1):
        self.asked.append(size)
        return super().read(size)


def environ(
    method="GET", path="/", body: bytes | None = None, ctype="application/json", length: str | None = None
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
    assert DBNode.parse("10.77.0.11") == DBNode("10.77.0.11", 3306)
    assert DBNode.parse("10.77.0.11:3307") == DBNode("10.77.0.11", 3307)
    assert DBNode.parse("  db-01:3310 ") == DBNode("db-01", 3310)
    assert DBNode.parse("db-01:") == DBNode("db-01", 3306)


def test_config_defaults_read_pool_to_the_primary():
    cfg = Config.from_env({"FOOBAR_SERVED_BY": "web-01", "FOOBAR_DB_PRIMARY": "10.77.0.11:3306"})
    assert cfg.primary == DBNode("10.77.0.11", 3306)
    assert cfg.read_pool == (cfg.primary,)
    assert (cfg.served_by, cfg.release, cfg.db_name, cfg.db_user, cfg.db_password) == (
        "web-01",
        "dev",
        "foobar",
        "foobar",
        "",
    )
    assert cfg.connect_timeout == 2.0


def test_config_empty_read_list_defaults_to_the_primary():
    cfg = Config.from_env({"FOOBAR_SERVED_BY": "w", "FOOBAR_DB_PRIMARY": "db", "FOOBAR_DB_READ": " , "})
    assert cfg.read_pool == (DBNode("db", 3306),)


def test_config_read_list_is_parsed():
    env = {
        "FOOBAR_SERVED_BY": "web-02",
        "FOOBAR_RELEASE": "1.0.0-abc",
        "FOOBAR_DB_PRIMARY": "10.77.0.11",
        "FOOBAR_DB_READ": "10.77.0.11:3306, 10.77.0.21:3307,10.77.0.22,",
        "FOOBAR_DB_NAME": "fb",
        "FOOBAR_DB_USER": "u",
        "FOOBAR_DB_PASSWORD": "pw",
        "FOOBAR_DB_CONNECT_TIMEOUT": "0.5",
    }
    cfg = Config.from_env(env)
    assert cfg.primary == DBNode("10.77.0.11", 3306)
    assert cfg.read_pool == (DBNode("10.77.0.11", 3306), DBNode("10.77.0.21", 3307), DBNode("10.77.0.22", 3306))
    assert (cfg.release, cfg.db_name, cfg.db_user, cfg.db_password, cfg.connect_timeout) == (
        "1.0.0-abc",
        "fb",
        "u",
        "pw",
        0.5,
    )


def test_config_served_by_defaults_to_the_hostname(monkeypatch):
    monkeypatch.setattr(config_mod.socket, "gethostname", lambda: "box-7")
    assert Config.from_env({}).served_by == "box-7"
    assert Config.from_env({}).primary == DBNode("127.0.0.1", 3306)


# --- the App over a fake Router ---------------------------------------------------------------


class FakeCursor:
    def __init__(self, conn) -> None:
        self.conn = conn
        self.lastrowid = None
        self._rows: list = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def execute(self, sql, args=None):
        self.conn.executed.append((sql, args))
        if self.conn.fail:
            raise self.conn.fail
        if sql.lstrip().upper().startswith("INSERT"):
            self.lastrowid = self.conn.next_id
        self._rows = list(self.conn.answer(sql, args))
        return len(self._rows)

    def fetchall(self):
        return self._rows

    def fetchone(self):
        return self._rows[0] if self._rows else None


class FakeConn:
    def __init__(self, rows=(), fail=None, next_id=42) -> None:
        self.rows, self.fail, self.next_id = list(rows), fail, next_id
        self.executed: list = []

    def cursor(self):
        return FakeCursor(self)

    def answer(self, sql, args):
        if "WHERE id = %s" in sql:
            return [r for r in self.rows if r["id"] == args[0]]
        if sql.startswith("SELECT id"):
            return self.rows[: args[0]] if args else self.rows
        return []


class FakeRouter:
    """writer()/reader() yield (fake_conn, node); connect_error makes them fail as a dead server."""

    def __init__(self, conn: FakeConn, writer_node="db-primary", reader_node="db-read", connect_error=None) -> None:
        self.conn, self.writer_node, self.reader_node = conn, writer_node, reader_node
        self.connect_error = connect_error
        self.opened: list[str] = []

    @contextmanager
    def _open(self, role, node):
        self.opened.append(role)
        if self.connect_error is not None:
            raise self.connect_error
        yield self.conn, node

    def writer(self):
        return self._open("writer", self.writer_node)

    def reader(self):
        return self._open("reader", self.reader_node)


def item(id_, name, desc=None, served_by="web-01"):
    return {
        "id": id_,
        "name": name,
        "description": desc,
        "served_by": served_by,
        "created_at": datetime(2026, 11, 26, 13, 40, 1, 123456),
    }


CONFIG = Config(
    served_by="web-01",
    release="1.0.0-abc",
    primary=DBNode("10.77.0.11"),
    read_pool=(DBNode("10.77.0.11"),),
    db_name="foobar",
    db_user="foobar",
    db_password="pw",
)


def make_app(conn=None, **kw):
    app = App(CONFIG)
    app.db = FakeRouter(conn if conn is not None else FakeConn(), **kw)
    return app


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


@pytest.fixture(autouse=True)
def _no_real_router(monkeypatch):
    """App() builds a Router; make sure nothing ever connects for real."""
    monkeypatch.setattr(wsgi.pymysql, "connect", lambda **kw: pytest.fail("unit tests must not connect to a database"))


ROUTES = [
    ("GET", "/"),
    ("GET", "/health"),
    ("GET", "/api/items"),
    ("GET", "/api/items/1"),
    ("GET", "/api/items/999"),
    ("GET", "/nope"),
    ("PUT", "/api/items"),
    ("DELETE", "/api/items/1"),
]


@pytest.mark.parametrize("method,path", ROUTES)
def test_every_response_has_served_by_release_and_consistent_length(method, path):
    r = call(make_app(FakeConn([item(1, "a")])), method, path)
    assert r.headers["X-Served-By"] == "web-01"
    assert r.headers["X-Release"] == "1.0.0-abc"
    assert r.headers["Content-Length"] == str(len(r.body))
    assert r.headers["Cache-Control"] == "no-store"


def test_error_responses_also_have_served_by_and_release_when_the_db_is_down():
    app = make_app(connect_error=pymysql.err.OperationalError(2003, "Can't connect to MySQL server"))
    r = call(app, "GET", "/api/items")
    assert r.code == 503
    assert r.headers["X-Served-By"] == "web-01" and r.headers["X-Release"] == "1.0.0-abc"
    assert r.json() == {"error": "database: Can't connect to MySQL server"}


def test_list_items():
    conn = FakeConn([item(2, "b"), item(1, "a", "first")])
    r = call(make_app(conn), "GET", "/api/items")
    assert r.code == 200
    assert r.headers["X-DB-Node"] == "db-read"
    body = r.json()
    assert [i["name"] for i in body["items"]] == ["b", "a"]
    assert body["items"][1]["description"] == "first"
    assert body["items"][0]["created_at"] == "2026-11-26T13:40:01.123456"
    sql, args = conn.executed[-1]
    assert "LIMIT %s" in sql and args == (50,)


def test_list_items_uses_the_reader():
    app = make_app(FakeConn([item(1, "a")]))
    call(app, "GET", "/api/items")
    assert app.db.opened == ["reader"]


def test_get_item():
    conn = FakeConn([item(5, "five")])
    r = call(make_app(conn), "GET", "/api/items/5")
    assert r.code == 200
    assert r.headers["X-DB-Node"] == "db-read"
    assert r.json()["name"] == "five"
    assert conn.executed == [("SELECT id, name, description, served_by, created_at FROM items WHERE id = %s", (5,))]


def test_get_missing_item_is_404_json():
    r = call(make_app(FakeConn([])), "GET", "/api/items/5")
    assert r.code == 404
    assert r.status == "404 Not Found"
    assert r.json() == {"error": "no item 5"}


def test_post_bad_json_is_400_and_runs_no_sql():
    conn = FakeConn([])
    app = make_app(conn)
    r = call(app, "POST", "/api/items", body=b"{oops")
    assert r.code == 400
    assert r.json()["error"].startswith("invalid JSON")
    assert conn.executed == []
    assert app.db.opened == []


def test_post_invalid_item_runs_no_sql():
    conn = FakeConn([])
    app = make_app(conn)
    r = call(app, "POST", "/api/items", body=json.dumps({"name": ""}).encode())
    assert r.code == 400 and "'name'" in r.json()["error"]
    assert conn.executed == [] and app.db.opened == []


def test_post_valid_item_is_201_with_location():
    conn = FakeConn([item(42, "new <thing>", "d", served_by="web-01")], next_id=42)
    app = make_app(conn)
    r = call(app, "POST", "/api/items", body=json.dumps({"name": " new <thing> ", "description": "d"}).encode())
    assert r.code == 201 and r.status == "201 Created"
    assert r.headers["Location"] == "/api/items/42"
    assert r.headers["X-DB-Node"] == "db-primary"
    assert r.json()["id"] == 42
    assert app.db.opened == ["writer"]
    insert, select = conn.executed
    assert insert == (
        "INSERT INTO items (name, description, served_by) VALUES (%s, %s, %s)",
        ("new <thing>", "d", "web-01"),
    )
    assert select[1] == (42,)


def test_unknown_route_is_404():
    r = call(make_app(), "GET", "/admin")
    assert r.code == 404
    assert "no route for GET /admin" == r.json()["error"]


@pytest.mark.parametrize("path", ["/api/items/", "/api/items/abc", "/api/items/-1", "/api/items/1/x"])
def test_malformed_item_paths_are_404(path):
    assert call(make_app(), "GET", path).code == 404


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_other_methods_on_the_collection_are_405(method):
    r = call(make_app(), method, "/api/items")
    assert r.code == 405 and r.status == "405 Method Not Allowed"
    assert method in r.json()["error"]


def test_health_ok():
    conn = FakeConn([])
    app = make_app(conn)
    r = call(app, "GET", "/health")
    assert r.code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert body["checks"] == {"app": "ok", "db_primary": "ok (db-primary)", "db_read": "ok (db-read)"}
    assert body["served_by"] == "web-01" and body["release"] == "1.0.0-abc"
    assert app.db.opened == ["writer", "reader"]
    assert all(args is None for _, args in conn.executed)


def test_health_503_when_the_database_is_down():
    app = make_app(connect_error=pymysql.err.OperationalError(2003, "Can't connect to MySQL server on db"))
    r = call(app, "GET", "/health")
    assert r.code == 503 and r.status == "503 Service Unavailable"
    body = r.json()
    assert body["status"] == "failing"
    assert body["checks"]["app"] == "ok"
    assert body["checks"]["db_primary"] == "failed: Can't connect to MySQL server on db"
    assert body["checks"]["db_read"].startswith("failed")


def test_health_503_when_a_query_fails():
    conn = FakeConn([], fail=pymysql.err.OperationalError(1146, "Table 'foobar.items' doesn't exist"))
    r = call(make_app(conn), "GET", "/health")
    assert r.code == 503
    assert "doesn't exist" in r.json()["checks"]["db_read"]


def test_home_page_escapes_item_names_and_links_static_files():
    conn = FakeConn([item(3, "<script>alert(1)</script>", served_by="web-<02>"), item(2, "Tom & Jerry")])
    r = call(make_app(conn), "GET", "/")
    assert r.code == 200
    assert r.headers["Content-Type"] == "text/html; charset=utf-8"
    assert r.headers["X-DB-Node"] == "db-read"
    page = r.body.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert" not in page
    assert "web-&lt;02&gt;" in page
    assert "Tom &amp; Jerry" in page
    assert 'href="/static/app.css"' in page
    assert '<script src="/static/app.js"></script>' in page
    assert "1.0.0-abc" in page and 'data-served-by="web-01"' in page
    sql, args = conn.executed[-1]
    assert args == (10,)


def test_home_page_with_no_items():
    r = call(make_app(FakeConn([])), "GET", "/")
    assert r.code == 200 and "No items yet." in r.body.decode()


def test_non_ascii_body_length_counts_bytes():
    r = call(make_app(FakeConn([item(1, "çà ☃")])), "GET", "/api/items")
    assert r.headers["Content-Length"] == str(len(r.body))
    assert r.json()["items"][0]["name"] == "çà ☃"


def test_sql_uses_parameters_never_formatted_values():
    nasty = "Robert'); DROP TABLE items;--"
    conn = FakeConn([item(7, nasty, nasty)], next_id=7)
    app = make_app(conn)
    call(app, "POST", "/api/items", body=json.dumps({"name": nasty, "description": nasty}).encode())
    call(app, "GET", "/api/items/7")
    call(app, "GET", "/api/items")
    call(app, "GET", "/")
    call(app, "GET", "/health")
    assert len(conn.executed) >= 7
    for sql, args in conn.executed:
        assert nasty not in sql and "Robert" not in sql
        assert "7" not in sql and "50" not in sql
        if args is not None:
            assert sql.count("%s") == len(args)
        else:
            assert "%s" not in sql
