"""Monitoring on the lab: Prometheus on mon-01 scraping every host, alerts that fire when a part
breaks and resolve when it is mended, delivered by Alertmanager to foobar_ops's webhook (which
journals them) and to a chat stand-in, both listening on the control address; the VRRP state as
metrics; the monitoring ports reachable only where the firewall allows. Times are printed (run with
-s to see them)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from foobar_ops import ops
from foobar_ops.core.inventory import load_inventory
from foobar_ops.lab import tls as lab_tls
from foobar_ops.stack import health
from foobar_ops.stack import monitoring as mon
from foobar_ops.stack.topology import db_replicas
from tests.conftest import LAB_INVENTORY, run_cli
from tests.lab.helpers import LAB_CA, SITE, apply

LAB_TLS = LAB_CA.parent
INTERVAL = 5.0  # the lab's scrape and evaluation interval
CHAT = ("10.77.0.1", 9096)  # the lab inventory's chat receiver (critical alerts only)


def show(what: str, figures: dict) -> None:
    print(f"\n{what}: {json.dumps(figures)}")


class Chat:
    """The chat webhook's stand-in on the control address: keeps what Alertmanager posts."""

    def __init__(self) -> None:
        self.posts: list[dict] = []
        chat = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                chat.posts.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(CHAT, Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def names(self) -> set[tuple[str, str]]:
        return {(a["labels"]["alertname"], a["status"]) for p in self.posts for a in p["alerts"]}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def watched(lab):
    """The stack applied (monitoring with it), foobar_ops's webhook and the chat stand-in listening."""
    done, doc = apply()
    assert done.code == 0, json.dumps([r for r in doc["results"] if r["result"] is False], indent=1)
    inv = load_inventory(LAB_INVENTORY)
    receiver = ops.alert_receiver(inv).start()  # the tests' journal (FOOBAR_OPS_HOME)
    chat = Chat()
    # a clean start: every target up, nothing firing (a disk nearly full on this machine aside), and
    # what Alertmanager still held from earlier tests delivered before any test counts rows
    health.wait_until(
        inv, lambda h: not h.down and not [a for a in h.alerts if a["name"] != "DiskNearlyFull"], timeout=120
    )
    time.sleep(2 * INTERVAL)
    yield {"lab": lab, "inv": inv, "receiver": receiver, "chat": chat}
    receiver.stop()
    chat.close()


def alert_rows(name: str, since: str) -> list[dict]:
    done = run_cli("records", "alerts", "--name", name, "--since", since, "--json")
    assert done.code == 0, done
    return done.json()["rows"]


def wait_for_row(name: str, state: str, since: str, timeout: float, where: dict | None = None) -> tuple[float, dict]:
    """Ask `records alerts` until a row of this alert and state after `since` shows; return the
    seconds it took and the row."""
    started = time.monotonic()
    while True:
        for row in alert_rows(name, since):
            if row["state"] == state and all(row.get(k) == v for k, v in (where or {}).items()):
                return time.monotonic() - started, row
        assert time.monotonic() - started < timeout, f"no {state} {name} {where or ''} after {timeout:g} s"
        time.sleep(0.5)


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def for_of(inv, name: str) -> float:
    text = mon.settings(inv).alert_for[name]
    return float(text.rstrip("ms")) * (60 if text.endswith("m") and not text.endswith("ms") else 1)


def test_every_target_is_up_within_two_scrape_intervals_and_health_says_so(watched):
    inv = watched["inv"]
    started = time.monotonic()
    found = health.wait_until(inv, lambda h: h.targets and not h.down, timeout=2 * INTERVAL + 5)
    took = time.monotonic() - started
    show("all targets up", {"seconds_after_apply": round(took, 1), "targets": len(found.targets)})
    jobs = {(t["job"], t["instance"]) for t in found.targets}
    assert {("node", name) for name in inv.hosts} <= jobs
    assert {("mysqld", "web-01"), ("mysqld", "web-02"), ("haproxy", "lb-01"), ("haproxy", "lb-02")} <= jobs
    assert {("site", SITE), ("prometheus", "mon-01"), ("alertmanager", "mon-01")} <= jobs
    done = run_cli("health", "-i", LAB_INVENTORY, "--json")
    assert done.code == 0, done
    doc = done.json()
    assert doc["ok"] is True and all(t["up"] for t in doc["targets"])
    assert all({"job", "instance", "up"} <= set(t) for t in doc["targets"])
    # the site's probe through the floating address over https, its certificate verified
    probe = ops.metrics(inv, 'probe_success{job="site"}')
    assert list(probe["value"]) == [1.0]
    days = ops.metrics(inv, '(probe_ssl_earliest_cert_expiry{job="site"} - time()) / 86400')
    assert 20 < days["value"][0] <= 90
    # a second apply changes nothing, and the monitoring host's configs are what the inventory says
    again, doc2 = apply()
    assert again.code == 0 and doc2["summary"]["changed"] == 0, doc2["summary"]


def test_the_replica_sql_thread_stopped_fires_the_alert_and_started_resolves_it(watched):
    lab, inv = watched["lab"], watched["inv"]
    replica = db_replicas(load_inventory(LAB_INVENTORY))[0].name
    since = now_iso()
    name = "ReplicationSQLThreadStopped"
    wait = for_of(inv, name)
    try:
        stopped = lab.run(replica, ["mariadb", "-e", "STOP SLAVE SQL_THREAD"])
        assert stopped.returncode == 0, stopped.stderr
        began = time.monotonic()
        # when Prometheus fires it (its own state), then when the webhook has journaled it
        while not any(a["name"] == name for a in health.alerts(inv)):
            assert time.monotonic() - began < wait + 4 * INTERVAL, "Prometheus never fired it"
            time.sleep(0.25)
        firing = time.monotonic() - began
        fired, row = wait_for_row(name, "firing", since, timeout=20)
        fired += firing
        assert row["severity"] == "critical" and row["instance"] == replica
        critical = run_cli("health", "-i", LAB_INVENTORY, "--json")
        assert critical.code == 1 and critical.json()["ok"] is False, critical
        assert any(a["name"] == name and a["state"] == "firing" for a in critical.json()["alerts"])
    finally:
        started = lab.run(replica, ["mariadb", "-e", "START SLAVE SQL_THREAD"])
    assert started.returncode == 0, started.stderr
    resolved, _ = wait_for_row(name, "resolved", since, timeout=4 * INTERVAL + 10)
    show(
        name,
        {
            "for_s": wait,
            "interval_s": INTERVAL,
            "firing_in_prometheus_after_s": round(firing, 1),
            "journaled_after_s": round(fired, 1),
            "resolved_journaled_after_s": round(resolved, 1),
        },
    )
    # a sample waits at most one interval to be scraped and one to be evaluated, then `for`
    assert firing <= wait + 2 * INTERVAL + 1.5, "fired later than its for plus two intervals"
    # the chat receiver got the critical alert, and its resolution
    deadline = time.monotonic() + 10
    while {(name, "firing"), (name, "resolved")} - watched["chat"].names() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert {(name, "firing"), (name, "resolved")} <= watched["chat"].names()
    assert run_cli("health", "-i", LAB_INVENTORY).code == 0


def test_nginx_stopped_on_web01_fires_backend_down_and_started_resolves_it(watched):
    lab = watched["lab"]
    since = now_iso()
    name = "BackendServerDown"
    try:
        assert lab.run("web-01", ["systemctl", "stop", "nginx"]).returncode == 0
        fired, row = wait_for_row(name, "firing", since, timeout=40)
        labels = json.loads(alert_rows(name, since)[0].get("labels") or "{}")
        assert labels.get("server") == "web-01" and row["instance"] in ("lb-01", "lb-02")
    finally:
        assert lab.run("web-01", ["systemctl", "start", "nginx"]).returncode == 0
    resolved, _ = wait_for_row(name, "resolved", since, timeout=40)
    show(name, {"fired_after_s": round(fired, 1), "resolved_after_s": round(resolved, 1)})


def test_a_certificate_near_its_end_fires_the_certificate_alert(watched, tmp_path):
    inv = tmp_path / "lab.yml"
    shutil.copy(LAB_INVENTORY, inv)
    since = now_iso()
    name = "SiteCertificateExpiring"
    folder = tmp_path / "short"
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=88)
    lab_tls.issue(LAB_TLS, [SITE, f"www.{SITE}"], folder, days=90, valid_from=start)  # 2 days left
    try:
        done = run_cli(
            "tls", "rotate", "-i", inv, "--cert", f"file:{folder}/site.crt", "--key", f"file:{folder}/site.key"
        )
        assert done.code == 0, done
        fired, row = wait_for_row(name, "firing", since, timeout=30, where={"severity": "critical"})
        assert row["instance"] == SITE
        # Prometheus fires the warning too; Alertmanager holds it back while the critical fires
        firing = {(a["name"], a["severity"]) for a in health.health(watched["inv"]).alerts}
        assert {(name, "warning"), (name, "critical")} <= firing
    finally:
        assert run_cli("tls", "rotate", "-i", LAB_INVENTORY).code == 0
    resolved, _ = wait_for_row(name, "resolved", since, timeout=30, where={"severity": "critical"})
    show(name, {"fired_after_s": round(fired, 1), "resolved_after_s": round(resolved, 1)})


def test_haproxy_killed_on_the_vip_holder_the_metrics_show_the_new_holder(watched):
    from tests.lab.test_lb_pair import holder_back_on_lb01

    lab, inv = watched["lab"], watched["inv"]

    def holders() -> dict[str, float]:
        frame = ops.metrics(inv, "foobar_vip_held")
        return dict(zip(frame["instance"], frame["value"], strict=True))

    def masters() -> set[str]:
        frame = ops.metrics(inv, "foobar_vrrp_state == 1")
        return {i for i, s in zip(frame["instance"], frame["state"], strict=True) if s == "master"}

    holder_back_on_lb01(lab)
    deadline = time.monotonic() + 3 * INTERVAL
    while (holders() != {"lb-01": 1.0, "lb-02": 0.0} or masters() != {"lb-01"}) and time.monotonic() < deadline:
        time.sleep(1)
    assert holders() == {"lb-01": 1.0, "lb-02": 0.0} and masters() == {"lb-01"}
    try:
        started = time.monotonic()
        assert lab.run("lb-01", ["pkill", "-KILL", "-x", "haproxy"]).returncode == 0
        while time.monotonic() - started < 4 * INTERVAL + 10:
            if holders() == {"lb-01": 0.0, "lb-02": 1.0} and masters() == {"lb-02"}:
                break
            time.sleep(0.5)
        seen = time.monotonic() - started
        assert holders() == {"lb-01": 0.0, "lb-02": 1.0} and masters() == {"lb-02"}
        states = ops.metrics(inv, 'foobar_vrrp_state{instance="lb-01"} == 1')
        assert list(states["state"]) in (["fault"], ["backup"])  # backup again once systemd restarted HAProxy
        show("vip moved, seen in the metrics", {"seconds": round(seen, 1)})
    finally:
        holder_back_on_lb01(lab)


def test_monitoring_is_reached_only_where_the_firewall_allows(watched):
    done = run_cli("firewall", "check", "-i", LAB_INVENTORY, "--json", timeout=300)
    doc = done.json()
    assert done.code == 0 and doc["ok"], [c for c in doc["checks"] if not c["ok"]]
    seen = {(c["from"], c["to"], c["port"]): c["measured"] for c in doc["checks"]}
    ports = mon.PORTS
    assert seen[("mon-01", "web-01", ports["node"])] == "open"
    assert seen[("mon-01", "web-01", ports["mysqld"])] == "open"
    assert seen[("mon-01", "lb-01", ports["haproxy"])] == "open"
    assert seen[("web-02", "web-01", ports["node"])] == "closed"
    assert seen[("lb-01", "web-01", ports["mysqld"])] == "closed"
    assert seen[("web-01", "lb-02", ports["haproxy"])] == "closed"
    assert seen[("control", "mon-01", ports["prometheus"])] == "open"
    assert seen[("control", "mon-01", ports["alertmanager"])] == "open"
    assert seen[("web-01", "mon-01", ports["prometheus"])] == "closed"
    assert seen[("control", "web-01", ports["node"])] == "closed"


def schedules() -> dict[str, dict]:
    done = run_cli("runbook", "schedules", "-i", LAB_INVENTORY, "--json")
    assert done.code == 0, done
    return {s["runbook"]: s for s in done.json()}


def wait_for_outcome(lab, outcome: str, after: str | None, timeout: float = 180) -> dict:
    started = time.monotonic()
    while True:
        found = schedules().get("health_report") or {}
        if found.get("last_outcome") == outcome and found.get("last_started") != after:
            return found
        assert time.monotonic() - started < timeout, f"no {outcome} run of health_report: {found}"
        time.sleep(2)


def test_a_scheduled_runbook_runs_on_its_timer_is_journaled_and_a_failed_run_alerts(watched):
    lab = watched["lab"]
    unit = "foobar-runbook-health_report.service"
    done = run_cli("runbook", "schedule", "health_report", "-i", LAB_INVENTORY, "--every", "1h", "-p", "minutes", "5")
    assert done.code == 0, done
    try:
        ran = wait_for_outcome(lab, "ok", None)  # the timer's first run, a few seconds after
        assert ran["host"] == "mon-01" and ran["parameters"] == {"minutes": 5} and ran["next"]
        assert lab.run("mon-01", ["test", "-s", ran["last_notebook"]]).returncode == 0
        rows = json.loads(run_cli("records", "list", "--limit", "50", "--json").out)["rows"]
        mine = [r for r in rows if r["run_id"] == ran["last_run_id"]]  # brought here by `runbook schedules`
        assert mine and mine[0]["user"] == "schedule-health_report" and mine[0]["status"] == "ok", mine
        again = run_cli(
            "runbook", "schedule", "health_report", "-i", LAB_INVENTORY, "--every", "1h", "-p", "minutes", "5", "--json"
        )
        assert again.code == 0 and again.json()["summary"]["changed"] == 0, again.json()["summary"]
        refused = run_cli("runbook", "schedule", "health_report", "-i", LAB_INVENTORY, "-p", "minuets", "5")
        assert refused.code == 2 and "unknown parameter 'minuets' (did you mean 'minutes'?)" in refused.err

        since = now_iso()
        short = run_cli("runbook", "schedule", "health_report", "-i", LAB_INVENTORY, "--timeout", "2s")
        assert short.code == 0, short
        assert lab.run("mon-01", ["systemctl", "start", "--no-block", unit]).returncode == 0
        failed = wait_for_outcome(lab, "timeout", ran["last_started"])
        assert failed["systemd_result"] == "timeout"
        _, row = wait_for_row("ScheduledRunbookFailed", "firing", since, 90, {"instance": "mon-01"})
        assert "health_report" in row["summary"] and "timeout" in row["summary"]

        back = run_cli("runbook", "schedule", "health_report", "-i", LAB_INVENTORY, "-p", "minutes", "5")
        assert back.code == 0, back
        assert lab.run("mon-01", ["systemctl", "start", "--no-block", unit]).returncode == 0
        wait_for_outcome(lab, "ok", failed["last_started"])
        wait_for_row("ScheduledRunbookFailed", "resolved", since, 90, {"instance": "mon-01"})
    finally:
        gone = run_cli("runbook", "unschedule", "health_report", "-i", LAB_INVENTORY)
        assert gone.code == 0, gone
    assert "health_report" not in schedules()
    timers = lab.run("mon-01", ["systemctl", "list-timers", "--all", "--no-pager"]).stdout
    assert "foobar-runbook-health_report" not in timers
    rows = json.loads(run_cli("records", "list", "--limit", "30", "--json").out)["rows"]
    assert any(r["command"].startswith("foobar-ops runbook schedule health_report") for r in rows)
