"""The WSGI application: the home page, health, and the items API."""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import logging
import re
import time
from datetime import datetime
from http.cookies import SimpleCookie
from typing import Any

import pymysql

from .config import Config
from .db import NoNode, Router

MAX_BODY = 64 * 1024
GTID_COOKIE = "foobar_gtid"  # the client's last write: its next reads see it (read your writes)
#: How long a client's write makes its reads wait for a replica (the cookie's life, in seconds).
GTID_COOKIE_AGE = 300
_ITEM = re.compile(r"^/api/items/(\d+)$")
_GTID = re.compile(r"(\d{1,10})-(\d{1,10})-(\d{1,20})")
#: GTID . issued (unix seconds) . signature: only a cookie this app issued counts.
_SIGNED = re.compile(r"(\d{1,10}-\d{1,10}-\d{1,20})\.(\d{1,12})\.([0-9a-f]{32})")
_COLUMNS = "id, name, description, served_by, created_at"
log = logging.getLogger("foobar_app")


class HTTPError(Exception):
    """An error answered as JSON: {"error": message}."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def _json_default(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def cookie_key(config: Config) -> bytes:
    """Return the key that signs the GTID cookie: derived from the app's database password, a
    secret every app server of the site already shares (so a cookie one issued counts on the
    other) and no client knows.

    config: the app's settings.
    """
    return hmac.new(config.db_password.encode(), b"foobar_app: the gtid cookie, v1", hashlib.sha256).digest()


def _gtid_in_range(gtid: str) -> bool:
    """Tell whether gtid is DOMAIN-SERVER-SEQUENCE with each part within what MariaDB takes."""
    match = _GTID.fullmatch(gtid)
    return bool(match) and int(match[1]) < 2**32 and 0 < int(match[2]) < 2**32 and int(match[3]) < 2**64


def _signature(key: bytes, gtid: str, issued: int) -> str:
    return hmac.new(key, f"{gtid}.{issued}".encode(), hashlib.sha256).hexdigest()[:32]


def sign_gtid(key: bytes, gtid: str, now: float | None = None) -> str | None:
    """Return the cookie value for a client's write (GTID.ISSUED.SIGNATURE), or None when the
    GTID is not one MariaDB gives.

    key: cookie_key().
    gtid: @@last_gtid of the write.
    now: the time it is issued (default: now).
    """
    if not _gtid_in_range(gtid):
        return None
    issued = int(time.time() if now is None else now)
    return f"{gtid}.{issued}.{_signature(key, gtid, issued)}"


def _last_write(environ: dict[str, Any], key: bytes) -> str | None:
    """Return the GTID of the client's last write from its cookie, only when this site issued it
    (signed with key) less than GTID_COOKIE_AGE seconds ago; anything else (unsigned, forged, out
    of range, expired, malformed) is no cookie at all: it costs the read nothing.

    environ: the WSGI environ.
    key: cookie_key().
    """
    cookie = SimpleCookie()
    try:
        cookie.load(environ.get("HTTP_COOKIE", ""))
    except Exception:  # noqa: BLE001 - a malformed cookie is no cookie
        return None
    morsel = cookie.get(GTID_COOKIE)
    match = _SIGNED.fullmatch(morsel.value) if morsel is not None else None
    if match is None:
        return None
    gtid, issued, signature = match[1], int(match[2]), match[3]
    if not hmac.compare_digest(signature, _signature(key, gtid, issued)):
        return None
    if not -30 <= time.time() - issued <= GTID_COOKIE_AGE or not _gtid_in_range(gtid):
        return None  # expired (or from a clock far ahead)
    return gtid


class App:
    """foobar.com.

    config: settings (default: from the environment).
    router: the database router (default: one over the config's nodes, started at once).
    """

    def __init__(self, config: Config | None = None, router: Router | None = None) -> None:
        self.config = config or Config.from_env()
        if router is None:
            router = Router(self.config)
            router.start()
        self.db = router
        self.cookie_key = cookie_key(self.config)

    def __call__(self, environ, start_response):
        headers = [("X-Served-By", self.config.served_by), ("X-Release", self.config.release)]
        try:
            status, body, ctype, extra = self.route(environ)
        except HTTPError as err:
            status, body, ctype, extra = err.status, {"error": err.message}, "application/json", []
        except NoNode as err:
            status, body, ctype, extra = "503 Service Unavailable", {"error": str(err)}, "application/json", []
        except pymysql.MySQLError as err:  # details go to the log, never to the client
            log.error("database error on %s %s: %s", environ.get("REQUEST_METHOD"), environ.get("PATH_INFO"), err)
            status, body, ctype = "503 Service Unavailable", {"error": "database unavailable"}, "application/json"
            extra = []
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
            return self.home(environ)
        if path == "/health" and method in ("GET", "HEAD"):
            return self.health()
        if path == "/api/items":
            if method == "GET":
                return self.list_items(environ)
            if method == "POST":
                return self.create_item(environ)
            raise HTTPError("405 Method Not Allowed", f"{method} is not allowed on {path}")
        match = _ITEM.match(path)
        if match and method in ("GET", "HEAD"):
            return self.get_item(int(match.group(1)), environ)
        if match:
            raise HTTPError("405 Method Not Allowed", f"{method} is not allowed on {path}")
        raise HTTPError("404 Not Found", f"no route for {method} {path}")

    def health(self):
        """200 when the app can serve reads; the body says which node served them and whether a
        primary takes writes (its absence alone does not fail the check: both servers share it)."""
        checks = {"app": "ok"}
        try:
            _, node = self.db.read(_ping)
            checks["db_read"] = f"ok ({node})"
        except (NoNode, pymysql.MySQLError) as err:
            log.error("health: reads fail: %s", err)
            checks["db_read"] = "failed"
        writer = self.db.monitor.writer()
        checks["db_write"] = f"ok ({writer.name})" if writer else "unavailable: no writable primary"
        healthy = checks["db_read"].startswith("ok")
        body = {
            "status": "ok" if healthy else "failing",
            "checks": checks,
            "served_by": self.config.served_by,
            "release": self.config.release,
        }
        return ("200 OK" if healthy else "503 Service Unavailable"), body, "application/json", []

    def _latest(self, environ, limit: int = 20):
        def query(conn):
            with conn.cursor() as cur:
                cur.execute(f"SELECT {_COLUMNS} FROM items ORDER BY id DESC LIMIT %s", (limit,))
                return cur.fetchall()

        return self.db.read(query, after=_last_write(environ, self.cookie_key))

    def list_items(self, environ):
        rows, node = self._latest(environ, 50)
        return "200 OK", {"items": rows}, "application/json", [("X-DB-Node", node)]

    def get_item(self, item_id: int, environ):
        def query(conn):
            with conn.cursor() as cur:
                cur.execute(f"SELECT {_COLUMNS} FROM items WHERE id = %s", (item_id,))
                return cur.fetchone()

        row, node = self.db.read(query, after=_last_write(environ, self.cookie_key))
        if not row and node != getattr(self.db.monitor.writer(), "name", node):
            row, node = self.db.write(query)  # not on this replica yet: the primary has the last word
        if not row:
            raise HTTPError("404 Not Found", f"no item {item_id}")
        return "200 OK", row, "application/json", [("X-DB-Node", node)]

    def create_item(self, environ):
        item = parse_item(environ)

        def insert(conn):
            with conn.cursor() as cur:
                cur.execute(
                    "INSERT INTO items (name, description, served_by) VALUES (%s, %s, %s)",
                    (item["name"], item.get("description"), self.config.served_by),
                )
                item_id = cur.lastrowid
                cur.execute("SELECT @@last_gtid AS gtid")
                gtid = cur.fetchone()["gtid"]
                cur.execute(f"SELECT {_COLUMNS} FROM items WHERE id = %s", (item_id,))
                return cur.fetchone(), gtid

        (row, gtid), node = self.db.write(insert)
        extra = [("X-DB-Node", node), ("Location", f"/api/items/{row['id']}")]
        signed = sign_gtid(self.cookie_key, gtid) if isinstance(gtid, str) else None
        if signed:
            # Secure when the client came over https (the load balancers say so; a web server
            # takes requests from them alone)
            secure = "; Secure" if environ.get("HTTP_X_FORWARDED_PROTO") == "https" else ""
            extra.append(
                (
                    "Set-Cookie",
                    f"{GTID_COOKIE}={signed}; Path=/; Max-Age={GTID_COOKIE_AGE}; HttpOnly; SameSite=Lax{secure}",
                )
            )
        return "201 Created", row, "application/json", extra

    def home(self, environ):
        rows, node = self._latest(environ, 10)
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


def _ping(conn) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) AS n FROM items WHERE id < 0")
        return int(cur.fetchone()["n"])


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
