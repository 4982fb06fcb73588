"""The GTID cookie is a client's input: only a cookie the site issued (signed with a key derived
from the database password both app servers share, and not expired) makes a read wait for a
replica. A forged one costs nothing: a 200 at normal latency, no wait, nothing in the log."""

from __future__ import annotations

import logging
import time

import pytest

from .test_app_unit import call, db, item, make_app, post, pymysql, wsgi


@pytest.fixture(autouse=True)
def _no_real_database(monkeypatch):
    monkeypatch.setattr(pymysql, "connect", lambda **kw: pytest.fail("unit tests must not connect to a database"))
    monkeypatch.setattr(db, "WRITER_WAIT", 0.1)


def slow_gtid_wait(server, seconds=0.5):
    """Make MASTER_GTID_WAIT on a fake server take as long as a real replica behind would."""

    def hook(conn, sql):
        if "MASTER_GTID_WAIT" in sql:
            time.sleep(seconds)

    server.hook = hook


def cookie_of(response) -> str:
    return response.headers["Set-Cookie"].split(";")[0]


def forged_cookies() -> list[str]:
    now = int(time.time())
    key = wsgi.cookie_key(make_app()[0].config)
    other = wsgi.cookie_key(type("C", (), {"db_password": "not-the-password"})())
    return [
        "foobar_gtid=0-11-99999999999",  # a GTID no server wrote: every read would wait 0.5 s
        "foobar_gtid=4294967296-11-1",  # out of range: MariaDB errors, 503s and log noise
        "foobar_gtid=0-1-101",  # well formed, unsigned
        f"foobar_gtid=0-1-101.{now}.{'0' * 32}",  # a signature that is not the site's
        f"foobar_gtid=0-1-101.{now}.{wsgi._signature(other, '0-1-101', now)}",  # another key
        f"foobar_gtid=0-1-101.{now - 301}.{wsgi._signature(key, '0-1-101', now - 301)}",  # expired
        f"foobar_gtid=4294967296-11-1.{now}.{wsgi._signature(key, '4294967296-11-1', now)}",  # signed, out of range
        f"foobar_gtid=0-0-1.{now}.{wsgi._signature(key, '0-0-1', now)}",  # server id 0: none has it
        f"foobar_gtid=0-1-101.{now}.{wsgi._signature(key, '0-1-102', now)}",  # signed for another GTID
        "foobar_gtid=" + "9" * 4000,
    ]


@pytest.mark.parametrize("cookie", forged_cookies())
def test_a_cookie_the_site_did_not_issue_costs_nothing(cookie, caplog):
    app, cluster = make_app([item(1, "a")])
    slow_gtid_wait(cluster["db-02"])
    caplog.set_level(logging.DEBUG, logger="foobar_app")
    for path in ("/api/items", "/", "/api/items/1"):
        started = time.perf_counter()
        r = call(app, "GET", path, cookie=cookie)
        took = time.perf_counter() - started
        assert r.code == 200 and r.headers["X-DB-Node"] == "db-02"
        assert took < 0.2, f"{path} took {took:.3f} s"
    assert cluster.sql("MASTER_GTID_WAIT") == []
    assert [rec for rec in caplog.records if rec.levelno >= logging.WARNING] == []


def test_the_sites_own_cookie_makes_a_read_wait_on_either_app_server():
    app, cluster = make_app([item(1, "old")])
    w = post(app, {"name": "mine"})
    cookie = cookie_of(w)
    gtid, issued, signature = cookie.split("=", 1)[1].split(".")
    assert gtid == "0-1-101" and abs(int(issued) - time.time()) < 5 and len(signature) == 32
    cluster["db-02"].caught_up = False
    r = call(app, "GET", "/api/items", cookie=cookie)
    assert r.headers["X-DB-Node"] == "db-01"  # not applied on the replica yet: the primary answers
    assert cluster["db-02"].sql("MASTER_GTID_WAIT") == [("SELECT MASTER_GTID_WAIT(%s, %s) AS w", ("0-1-101", 0.5))]

    other, cluster2 = make_app([item(1, "old")])  # the other app server: same database password
    cluster2["db-02"].caught_up = True
    assert call(other, "GET", "/api/items", cookie=cookie).headers["X-DB-Node"] == "db-02"
    assert len(cluster2["db-02"].sql("MASTER_GTID_WAIT")) == 1


def test_a_cookie_signed_with_another_database_password_is_ignored():
    app, _ = make_app()
    cookie = cookie_of(post(app, {"name": "w"}))
    elsewhere, cluster = make_app()
    elsewhere.cookie_key = wsgi.cookie_key(type("C", (), {"db_password": "another-site"})())
    assert call(elsewhere, "GET", "/api/items", cookie=cookie).code == 200
    assert cluster.sql("MASTER_GTID_WAIT") == []


def test_the_read_wait_stays_capped():
    assert db.GTID_WAIT <= 0.5


@pytest.mark.parametrize("gtid", ["4294967296-1-1", "0-4294967296-1", "0-1-18446744073709551616", "0-0-1", "a-1-1"])
def test_no_cookie_is_issued_for_a_gtid_out_of_range(gtid):
    assert wsgi.sign_gtid(b"k" * 32, gtid) is None


def test_a_post_whose_gtid_is_out_of_range_sets_no_cookie():
    app, cluster = make_app()
    cluster["db-01"].seq = 2**64  # the next write's GTID sequence is beyond MariaDB's
    r = post(app, {"name": "w"})
    assert r.code == 201 and "Set-Cookie" not in r.headers


def test_the_cookie_is_secure_when_the_client_came_over_https():
    app, _ = make_app()
    plain = post(app, {"name": "over-http"}).headers["Set-Cookie"]
    request = wsgi_environ_over_https(app)
    assert "Secure" not in plain.split("; ")
    assert "Secure" in request.headers["Set-Cookie"].split("; ") and "HttpOnly" in request.headers["Set-Cookie"]


def wsgi_environ_over_https(app):
    """A POST as the load balancers pass on one that came over https (X-Forwarded-Proto: https)."""
    import json

    from .test_app_unit import Response, environ

    env = environ("POST", "/api/items", body=json.dumps({"name": "over-https"}).encode())
    env["HTTP_X_FORWARDED_PROTO"] = "https"
    return Response(app, env)
