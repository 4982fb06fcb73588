"""The WSGI application: the home page, health, and the items API."""

from __future__ import annotations

import html
import json
import re
from datetime import datetime

import pymysql

from .config import Config
from .db import Router

MAX_BODY = 64 * 1024
_ITEM = re.compile(r"^/api/items/(\d+)$")


class HTTPError(Exception):
    """An error answered as JSON: {"error": message}."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _reason(err: Exception) -> str:
    """Return the message of a database error (its last argument, or its type)."""
    return str(err.args[-1]) if err.args else type(err).__name__


def _json_default(value):
    return value.isoformat() if isinstance(value, datetime) else str(value)


class App:
    """foobar.com.

    config: settings (default: from the environment).
    """

    def __init__(self, config: Config | None = None) -> None:
        self.config = config or Config.from_env()
        self.db = Router(self.config)

    def __call__(self, environ, start_response):
        headers = [("X-Served-By", self.config.served_by), ("X-Release", self.config.release)]
        try:
            status, body, ctype, extra = self.route(environ)
        except HTTPError as err:
            status, body, ctype, extra = err.status, {"error": err.message}, "application/json", []
        except pymysql.MySQLError as err:
            status, body, ctype, extra = (
                "503 Service Unavailable",
                {"error": f"database: {_reason(err)}"},
                "application/json",
                [],
            )
        if ctype == "application/json":
            body = json.dumps(body, default=_json_default)
        data = body.encode()
        headers += extra + [
            ("Content-Type", f"{ctype}; charset=utf-8"),
            ("Content-Length", str(len(data))),
            ("Cache-Control", "no-store"),
        ]
        start_response(status, headers)
        return [data]

    def route(self, environ):
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/")
        if path == "/" and method in ("GET", "HEAD"):
            return self.home()
        if path == "/health" and method in ("GET", "HEAD"):
            return self.health()
        if path == "/api/items":
            if method == "GET":
                return self.list_items()
            if method == "POST":
                return self.create_item(environ)
            raise HTTPError("405 Method Not Allowed", f"{method} is not allowed on {path}")
        match = _ITEM.match(path)
        if match and method in ("GET", "HEAD"):
            return self.get_item(int(match.group(1)))
        if match:
            raise HTTPError("405 Method Not Allowed", f"{method} is not allowed on {path}")
        raise HTTPError("404 Not Found", f"no route for {method} {path}")

    def health(self):
        checks = {"app": "ok"}
        for name, ctx in (("db_primary", self.db.writer), ("db_read", self.db.reader)):
            try:
                with ctx() as (conn, node):
                    with conn.cursor() as cur:
                        cur.execute("SELECT COUNT(*) AS n FROM items WHERE id < 0")
                checks[name] = f"ok ({node})"
            except pymysql.MySQLError as err:
                checks[name] = f"failed: {_reason(err)}"
        healthy = all(v.startswith("ok") for v in checks.values())
        body = {
            "status": "ok" if healthy else "failing",
            "checks": checks,
            "served_by": self.config.served_by,
            "release": self.config.release,
        }
        return ("200 OK" if healthy else "503 Service Unavailable"), body, "application/json", []

    def _latest(self, limit: int = 20):
        with self.db.reader() as (conn, node):
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT id, name, description, served_by, created_at FROM items ORDER BY id DESC LIMIT %s", (limit,)
                )
                return cur.fetchall(), node

    def list_items(self):
        rows, node = self._latest(50)
        return "200 OK", {"items": rows}, "application/json", [("X-DB-Node", node)]

    def get_item(self, item_id: int):
        with self.db.reader() as (conn, node):
            with conn.cursor() as cur:
                cur.execute("SELECT id, name, description, served_by, created_at FROM items WHERE id = %s", (item_id,))
                row = cur.fetchone()
        if not row:
            raise HTTPError("404 Not Found", f"no item {item_id}")
        return "200 OK", row, "application/json", [("X-DB-Node", node)]

    def create_item(self, environ):
        item = parse_item(environ)
        with self.db.writer() as (conn, node):
            with conn.cursor() as cur:
                cur.execute(
                    "INSERT INTO items (name, description, served_by) VALUES (%s, %s, %s)",
                    (item["name"], item.get("description"), self.config.served_by),
                )
                item_id = cur.lastrowid
                cur.execute("SELECT id, name, description, served_by, created_at FROM items WHERE id = %s", (item_id,))
                row = cur.fetchone()
        return "201 Created", row, "application/json", [("X-DB-Node", node), ("Location", f"/api/items/{item_id}")]

    def home(self):
        rows, node = self._latest(10)
        items = (
            "".join(
                f"<li><b>{html.escape(r['name'])}</b> <small>#{r['id']} via {html.escape(r['served_by'])}</small></li>"
                for r in rows
            )
            or "<li>No items yet.</li>"
        )
        page = PAGE.format(
            served_by=html.escape(self.config.served_by),
            node=html.escape(node),
            release=html.escape(self.config.release),
            items=items,
        )
        return "200 OK", page, "text/html", [("X-DB-Node", node)]


def parse_item(environ) -> dict:
    """Return a validated item from a JSON request body, or raise a 400 HTTPError saying why.

    environ: the WSGI environ.
    """
    if not environ.get("CONTENT_TYPE", "").startswith("application/json"):
        raise HTTPError("400 Bad Request", "send JSON with Content-Type: application/json")
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise HTTPError("400 Bad Request", "bad Content-Length") from None
    if length < 0 or length > MAX_BODY:
        raise HTTPError("400 Bad Request", f"body larger than {MAX_BODY} bytes (or a negative Content-Length)")
    try:
        data = json.loads(environ["wsgi.input"].read(length) or b"")
    except (ValueError, UnicodeDecodeError) as err:
        raise HTTPError("400 Bad Request", f"invalid JSON: {err}") from None
    if not isinstance(data, dict):
        raise HTTPError("400 Bad Request", "the body must be a JSON object")
    unknown = sorted(set(data) - {"name", "description"})
    if unknown:
        raise HTTPError("400 Bad Request", f"unknown field(s): {', '.join(unknown)}")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise HTTPError("400 Bad Request", "field 'name' must be a non-empty string of at most 200 characters")
    desc = data.get("description")
    if desc is not None and (not isinstance(desc, str) or len(desc) > 2000):
        raise HTTPError("400 Bad Request", "field 'description' must be a string of at most 2000 characters")
    return {"name": name.strip(), "description": desc}


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>foobar.com</title>
<link rel="stylesheet" href="/static/app.css"></head>
<body data-served-by="{served_by}">
<header><h1>foobar.com</h1>
<p class="who">Served by <b id="served-by">{served_by}</b> &middot; database <b>{node}</b>
&middot; release <code>{release}</code></p></header>
<main><h2>Latest items</h2><ul id="items">{items}</ul>
<p id="js-status">Static script not loaded.</p></main>
<script src="/static/app.js"></script>
</body></html>
"""

_app = None


def application(environ, start_response):
    """WSGI entry point: one App per worker, built on first request."""
    global _app
    if _app is None:
        _app = App()
    return _app(environ, start_response)
