"""The web tier on fresh lab hosts: one apply deploys a working site; round robin is exact;
failover, reload and rollback lose no request; bad input writes nothing; the page renders.
Tests in this module run in order on one deployment."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from foobar_ops.core.inventory import load_inventory
from foobar_ops.stack.lb import HAProxy, LBError
from tests.conftest import LAB_INVENTORY, PROJECT, run_cli, stored_bytes
from tests.lab.helpers import HTTPS, LAB_CA, LB, SITE, Traffic, apply, get, inventory_with, post, request_from, site_tls

ARTIFACTS = PROJECT / "artifacts"


@pytest.fixture(scope="module")
def stack(lab):
    """Fresh hosts, then one apply of the lab inventory."""
    assert run_cli("lab", "destroy").code == 0
    assert run_cli("lab", "up").code == 0
    done, doc = apply()
    assert done.code == 0, json.dumps([r for r in doc["results"] if r["result"] is False], indent=1)
    inv = load_inventory(LAB_INVENTORY)
    lb = HAProxy(inv)
    deadline = time.monotonic() + 30  # both servers pass their first health checks
    while {s["status"] for s in lb.servers().values()} != {"UP"} and time.monotonic() < deadline:
        time.sleep(0.5)
    yield {"first": doc, "lb": lb, "inv": inv}
    lb.close()


def test_one_apply_deploys_and_a_second_changes_nothing(stack):
    assert stack["first"]["summary"]["changed"] > 40
    done, doc = apply()
    assert done.code == 0
    assert [r["id"] for r in doc["results"] if r["changed"]] == []
    # one command per host, the run lock's included: it also gathers every phase's facts
    assert doc["round_trips"] == dict.fromkeys(doc["round_trips"], 1), doc["round_trips"]


def test_100_requests_split_exactly_and_lbtot_agrees(stack):
    before = {name: row["lbtot"] for name, row in stack["lb"].servers().items()}
    answers = [get("/") for _ in range(100)]
    assert [a["status"] for a in answers] == [200] * 100
    served = Counter(a["served_by"] for a in answers)
    assert served == {"web-01": 50, "web-02": 50}
    after = {name: row["lbtot"] for name, row in stack["lb"].servers().items()}
    assert {n: after[n] - before[n] for n in after} == {"web-01": 50, "web-02": 50}
    assert {a["db_node"] for a in answers} == {"web-01", "web-02"}  # reads are spread over the pair


def test_posts_write_to_the_primary_and_bad_input_writes_nothing(stack):
    created = post(json.dumps({"name": "widget", "description": "a real row"}).encode())
    assert created["status"] == 201 and created["db_node"] == "web-01"
    item = json.loads(created["body"])
    fetched = get(f"/api/items/{item['id']}")
    assert fetched["status"] == 200 and json.loads(fetched["body"])["name"] == "widget"
    count = len(json.loads(get("/api/items")["body"])["items"])
    for body, ctype, words in (
        (b'{"name": ', "application/json", "invalid JSON"),
        (b'{"description": "no name"}', "application/json", "name"),
        (b'["a list"]', "application/json", "JSON object"),
        (b'{"name": "x", "extra": 1}', "application/json", "unknown field"),
        (b"name=x", "application/x-www-form-urlencoded", "JSON"),
    ):
        answer = post(body, ctype)
        assert answer["status"] == 400, (body, answer)
        assert words in json.loads(answer["body"])["error"]
    assert len(json.loads(get("/api/items")["body"])["items"]) == count


def test_app_down_is_marked_down_and_traffic_moves_then_it_rejoins(stack, lab):
    lb = stack["lb"]
    assert lab.run("web-01", ["systemctl", "stop", "foobar-app"]).returncode == 0
    try:
        started = time.monotonic()
        while lb.servers()["web-01"]["status"] != "DOWN":
            assert time.monotonic() - started < 10, "web-01 not marked DOWN within the check window"
            time.sleep(0.2)
        answers = [get("/") for _ in range(50)]
        assert [a["status"] for a in answers] == [200] * 50
        assert {a["served_by"] for a in answers} == {"web-02"}
    finally:
        assert lab.run("web-01", ["systemctl", "start", "foobar-app"]).returncode == 0
    started = time.monotonic()
    while lb.servers()["web-01"]["status"] != "UP":
        assert time.monotonic() - started < 15, "web-01 did not rejoin"
        time.sleep(0.2)
    assert Counter(get("/")["served_by"] for _ in range(10)) == {"web-01": 5, "web-02": 5}


def test_haproxy_config_change_is_a_reload_that_drops_nothing(stack, lab, tmp_path):
    pid = lab.run("lb-01", ["systemctl", "show", "-p", "MainPID", "--value", "haproxy"]).stdout.strip()
    changed = inventory_with(tmp_path, "lb-01", haproxy_timeout_client="31s")
    with Traffic() as traffic:
        done, doc = apply(changed, "--hosts", "lb-01", "haproxy")
    assert done.code == 0
    svc = next(r for r in doc["results"] if r["id"] == "haproxy:service")
    assert svc["changed"] and "reloaded" in svc["comment"]
    assert lab.run("lb-01", ["systemctl", "show", "-p", "MainPID", "--value", "haproxy"]).stdout.strip() == pid
    assert len(traffic.results) > 10 and traffic.failures == []
    assert "timeout client 31s" in lab.run("lb-01", ["cat", "/etc/haproxy/haproxy.cfg"]).stdout


def test_invalid_database_config_is_refused_and_the_site_keeps_answering(stack, lab, tmp_path):
    cnf = "/etc/mysql/mariadb.conf.d/60-foobar.cnf"
    before = lab.run("web-01", ["sha256sum", cnf]).stdout
    pid = lab.run("web-01", ["systemctl", "show", "-p", "MainPID", "--value", "mariadb"]).stdout
    bad = inventory_with(tmp_path, "web-01", mysql_max_connections="lots")
    done = run_cli("apply", "-i", bad, "--json", "mysql", timeout=300)
    assert done.code == 2 and "mysql_max_connections" in done.err and "Traceback" not in done.err, done
    assert lab.run("web-01", ["sha256sum", cnf]).stdout == before
    assert lab.run("web-01", ["systemctl", "show", "-p", "MainPID", "--value", "mariadb"]).stdout == pid
    assert get("/health")["status"] == 200


def test_home_page_renders_in_headless_chromium_with_static_assets_from_nginx(stack, tmp_path):
    chromium = shutil.which("chromium")
    assert chromium, "chromium is installed by `make setup`"
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "foobar-home.png"
    shot.unlink(missing_ok=True)
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--host-resolver-rules=MAP {SITE} {LB}",
        "--window-size=1000,700",
    ]
    # Chromium trusts the lab CA through an NSS database of its own (in the HOME it is given), with
    # certificate checks on: a page it cannot verify is an error page, not the site
    trusting, stranger = tmp_path / "home", tmp_path / "stranger"
    for home in (trusting, stranger):
        (home / ".pki" / "nssdb").mkdir(parents=True)
        db = f"sql:{home / '.pki' / 'nssdb'}"
        assert subprocess.run(["certutil", "-N", "-d", db, "--empty-password"], capture_output=True).returncode == 0
    added = subprocess.run(
        [
            "certutil",
            "-A",
            "-d",
            f"sql:{trusting / '.pki' / 'nssdb'}",
            "-n",
            "foobar-ops lab CA",
            "-t",
            "C,,",
            "-i",
            str(LAB_CA),
        ],
        capture_output=True,
        text=True,
    )
    assert added.returncode == 0, added.stderr

    def browse(home, *extra):
        env = dict(os.environ, HOME=str(home))
        argv = [chromium, *flags, *extra, f"https://{SITE}/"]
        return subprocess.run(argv, capture_output=True, text=True, timeout=90, env=env).stdout

    browse(trusting, f"--screenshot={shot}")
    assert shot.exists() and shot.stat().st_size > 5000
    dom = browse(trusting, "--virtual-time-budget=3000", "--dump-dom")
    assert 'data-js="loaded"' in dom and "Static script loaded from Nginx." in dom
    assert "<h1>foobar.com</h1>" in dom and 'id="served-by"' in dom
    untrusted = browse(stranger, "--virtual-time-budget=3000", "--dump-dom")
    assert "<h1>foobar.com</h1>" not in untrusted  # without the lab CA: not the site
    for asset, _ctype in (("/static/app.js", "javascript"), ("/static/app.css", "text/css")):
        answer = get(asset)
        assert answer["status"] == 200 and answer["release"] is None  # not the app: Nginx served it
        assert answer["served_by"] in ("web-01", "web-02")
    head = get("/static/app.css")
    assert head["status"] == 200


def test_rollback_returns_the_previous_release_and_the_site_keeps_answering(stack, lab, tmp_path):
    first = get("/health")["release"]
    newer = inventory_with(tmp_path, ["web-01", "web-02"], app_build="2")
    with Traffic(writes="deploy") as deploy_traffic:  # a rolling deploy of a new release drops nothing
        done, _ = apply(newer)
    assert done.code == 0
    assert len(deploy_traffic.results) > 10 and deploy_traffic.failures == [], deploy_traffic.failures[:3]
    rows = lab.run(
        "web-01",
        ["mysql", "-NB", "foobar", "-e", "SELECT COUNT(*), COUNT(DISTINCT name) FROM items WHERE name LIKE 'deploy-%'"],
    )
    assert rows.stdout.split() == [str(deploy_traffic.posted)] * 2  # every write kept once: none lost, none doubled
    assert {get("/health")["release"] for _ in range(4)} == {first + "-b2"}
    with Traffic(writes="rollback") as traffic:
        rolled = run_cli("rollback", "-i", LAB_INVENTORY, "--json")
    assert rolled.code == 0, rolled
    server_rows = [r for r in rolled.json()["results"] if r["state"] == "haproxy.server"]
    steps = [r["id"].rsplit(":", 1)[-1] for r in server_rows]
    for balancer in ("lb-01", "lb-02"):  # each host left the pool of every load balancer while it switched
        on_it = [(r["name"], r["id"].rsplit(":", 1)[-1]) for r in server_rows if r["host"] == balancer]
        assert [step for _, step in on_it] == ["drain", "ready", "drain", "ready"], on_it
        assert on_it[0][0] == on_it[1][0] != on_it[2][0] == on_it[3][0], on_it  # one server at a time
    from foobar_ops.core.journal import Journal

    journaled = Journal().results(rolled.json()["run_id"])
    on_lbs = journaled.loc[journaled["state"] == "haproxy.server"]
    for balancer in ("lb-01", "lb-02"):  # the load balancers' changes are in the run's records too, in order
        mine = [r["id"] for r in server_rows if r["host"] == balancer]
        assert list(on_lbs.loc[on_lbs["host"] == balancer, "state_id"]) == mine
    assert len(on_lbs) == len(steps)
    assert {get("/health")["release"] for _ in range(4)} == {first}
    assert len(traffic.results) > 10 and traffic.failures == [], traffic.failures[:3]
    done, doc = apply()  # the inventory's release is the rolled-back one: nothing to change
    assert done.code == 0 and [r["id"] for r in doc["results"] if r["changed"]] == []


def test_idle_connections_to_the_app_are_let_go_by_nginx_before_the_app_closes_them(stack, lab):
    """The app closing an idle keep-alive connection just as Nginx sent a POST on it gave that POST
    a 502 (seen once in a rolling deploy). Nginx now lets go of an idle connection first: the
    connections it opened under load stay open well past the app's old 2 s, and the app logs no
    error of its own at start."""

    def to_app() -> int:
        listed = lab.run("web-01", ["ss", "-Htn", "state", "established", "( dport = :8000 )"]).stdout
        return len([line for line in listed.splitlines() if line.strip()])

    # several at once (several connections to the app), from a load balancer: web-01's port 80
    # takes the load balancers only
    answers = request_from(lab, "lb-01", "10.77.0.11", "/api/items", n=80, at_once=8)
    assert {a["status"] for a in answers} == {200}
    opened = to_app()
    time.sleep(4)  # only the health checks meanwhile (one connection)
    kept = to_app()
    assert opened >= 4 and kept >= opened - 1, (opened, kept)
    started = lab.run("web-01", ["systemctl", "show", "-P", "InvocationID", "foobar-app"]).stdout.strip()
    log = lab.run("web-01", ["journalctl", f"_SYSTEMD_INVOCATION_ID={started}", "--no-pager"]).stdout  # this start
    assert "Listening at" in log and "[ERROR]" not in log, log[-800:]


def hold_session_on(lb, server: str, tries: int = 6) -> socket.socket:
    """Open a request that stays in flight (its body never finishes) and lands on `server`."""
    held = []
    try:
        for _ in range(tries):
            before = lb.servers()[server]["scur"] or 0
            sock = site_tls().wrap_socket(socket.create_connection((LB, HTTPS), timeout=5), server_hostname=SITE)
            sock.sendall(
                b"POST /api/items HTTP/1.1\r\nHost: foobar.com\r\nContent-Type: application/json"
                b"\r\nContent-Length: 100\r\n\r\n{"
            )
            time.sleep(0.3)
            if (lb.servers()[server]["scur"] or 0) > before:
                return sock
            held.append(sock)
        raise AssertionError(f"no held session landed on {server}")
    finally:
        for other in held:
            other.close()


def test_drain_waits_until_the_last_session_ends_and_times_out_when_it_does_not(stack):
    lb = stack["lb"]
    outcome: dict = {}

    def drain():  # its own connection: the main thread keeps using `lb`
        with HAProxy(stack["inv"]) as other:
            try:
                outcome["waited"] = other.drain("web-01", timeout=20, poll=0.2)
                outcome["returned_at"] = time.monotonic()
            except Exception as err:  # noqa: BLE001 - checked below
                outcome["error"] = err

    sock = hold_session_on(lb, "web-01")
    runner = threading.Thread(target=drain)
    runner.start()
    try:
        time.sleep(2)
        assert runner.is_alive(), f"drain returned while a session was still open: {outcome}"
        assert lb.servers()["web-01"]["status"] == "DRAIN"
    finally:
        closed_at = time.monotonic()
        sock.close()
        runner.join(20)
    assert "error" not in outcome and outcome["returned_at"] >= closed_at, outcome  # only once it ended
    lb.ready("web-01")
    sock = hold_session_on(lb, "web-01")
    try:
        with pytest.raises(LBError, match="still has 1 sessions after 1 s"):
            lb.drain("web-01", timeout=1, poll=0.2)
    finally:
        sock.close()
        lb.ready("web-01")
    assert {r["status"] for r in lb.servers().values()} == {"UP"}


def test_a_drained_server_gets_no_new_requests_and_maint_refuses_the_last_server_up(stack):
    lb = stack["lb"]
    with Traffic(path="/") as traffic:
        lb.drain("web-01", timeout=30)
        assert lb.servers()["web-01"]["status"] == "DRAIN" and lb.servers()["web-01"]["scur"] == 0
        after = [get("/")["served_by"] for _ in range(10)]
        assert set(after) == {"web-02"}
        with pytest.raises(LBError, match="last server that is UP"):
            lb.maint("web-02")
        lb.ready("web-01")
    assert lb.servers()["web-01"]["status"] == "UP" and lb.servers()["web-02"]["status"] == "UP"
    assert traffic.failures == []
    assert Counter(get("/")["served_by"] for _ in range(10)) == {"web-01": 5, "web-02": 5}


def test_the_deploy_runbook_fixes_drift_and_its_output_notebook_holds_no_secret(stack, lab, tmp_path):
    """papermill run of runbooks/deploy_stack.ipynb: the plan shows the drift, the apply fixes it,
    the output notebook is linked from the journal, and no secret value is anywhere in it."""
    from foobar_ops.core.journal import Journal
    from foobar_ops.lab import PASSWORD_PATH

    old = "an-old-db-password-5150"  # drift that no mask knows about
    env = "/etc/foobar/app.env"
    assert lab.run("web-02", ["sed", "-i", f"s/^FOOBAR_DB_PASSWORD=.*/FOOBAR_DB_PASSWORD={old}/", env]).returncode == 0
    out = tmp_path / "deploy_stack-out.ipynb"
    journal = tmp_path / "journal.sqlite"
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "papermill"),
            "--no-progress-bar",
            str(PROJECT / "runbooks" / "deploy_stack.ipynb"),
            str(out),
            "-p",
            "output_notebook",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=PROJECT,
        env={**os.environ, "FOOBAR_OPS_JOURNAL": str(journal)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text()
    assert "app.env" in text and "not shown: the file holds secrets" in text  # the plan saw the drift
    # both servers answer; the split is near even, not exact: the monitoring host's probe of the site
    # (every few seconds, through the same load balancer) may take a turn between two of the 20
    served = re.search(r"20/20 answered 200; served by web-01 (\d+), web-02 (\d+)", text)
    assert served and abs(int(served[1]) - int(served[2])) <= 4, served
    secrets = [
        old,
        PASSWORD_PATH.read_text().strip(),
        Path("/var/lib/foobar-ops/lab/secrets/mysql_app_password").read_text().strip(),
    ]
    for value in secrets:
        assert value not in text and value.encode() not in stored_bytes(journal)
    assert old not in lab.run("web-02", ["cat", env]).stdout  # the apply put the real value back
    runs = Journal(journal).runs()
    assert set(runs["output_notebook"]) == {str(out)} and set(runs["status"]) == {"ok"}
