"""Monitoring from the inventory (no hosts): what is scraped, who may reach the exporters, what
each host runs, refusals of bad settings; the alert webhook and the journal's alerts over real HTTP
on loopback; health read from Prometheus's API answers."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request

import pytest
import yaml

from foobar_ops.core.errors import AlertPayloadError, TopologyError
from foobar_ops.core.journal import Journal
from foobar_ops.stack import alerts, health, load_inventory
from foobar_ops.stack import monitoring as mon
from foobar_ops.stack.firewall import openings
from foobar_ops.stack.roles import host_roles, states_for
from tests.conftest import run_cli
from tests.unit.inventories import lab_doc, write_doc


@pytest.fixture(autouse=True)
def secrets(monkeypatch):
    monkeypatch.setenv("TEST_DB_PW", "app-pw-1234567890")
    monkeypatch.setenv("TEST_REPL_PW", "repl-pw-1234567890")
    monkeypatch.setenv("TEST_EXPORTER_PW", "exporter-pw-123456789")
    monkeypatch.setenv("TEST_SUDO", "sudo-pw")


def inventory(tmp_path, change=None):
    doc = lab_doc(monitoring=True)
    if change:
        change(doc)
    return load_inventory(write_doc(tmp_path, doc))


def test_every_host_is_scraped_and_a_new_host_is_after_the_next_apply(tmp_path):
    inv = inventory(tmp_path)
    jobs = mon.scrape_jobs(inv)
    assert {name for name, _ in jobs["node"]} == set(inv.hosts)
    assert jobs["mysqld"] == [("web-01", "10.77.0.11:9104"), ("web-02", "10.77.0.12:9104")]
    assert jobs["haproxy"] == [("lb-01", "10.77.0.10:8405"), ("lb-02", "10.77.0.13:8405")]

    def add(doc):
        doc["hosts"]["web-03"] = {"address": "10.77.0.14", "roles": ["nginx", "app"]}

    config = yaml.safe_load(mon.prometheus_config(inventory(tmp_path, add)))
    node = next(j for j in config["scrape_configs"] if j["job_name"] == "node")
    assert {"targets": ["10.77.0.14:9100"], "labels": {"instance": "web-03"}} in node["static_configs"]
    site = next(j for j in config["scrape_configs"] if j["job_name"] == "site")
    assert site["static_configs"][0]["targets"] == ["http://10.77.0.50:80/health"]  # no stack.tls here
    assert config["global"]["scrape_interval"] == "5s"


def test_the_exporters_open_to_the_monitoring_host_and_prometheus_to_the_admins(tmp_path):
    inv = inventory(tmp_path)
    by_port = {h: {o.port: o.sources for o in openings(inv.host(h), inv)} for h in inv.hosts}
    for name in inv.hosts:
        assert by_port[name][9100] == ("10.77.0.30",)
    assert by_port["web-01"][9104] == ("10.77.0.30",) and 9104 not in by_port["lb-01"]
    assert by_port["lb-01"][8405] == ("10.77.0.30",) and 8405 not in by_port["web-01"]
    assert by_port["mon-01"][9090] == ("10.77.0.1",) and by_port["mon-01"][9093] == ("10.77.0.1",)
    assert 9090 not in by_port["web-01"]


def test_every_host_gets_the_exporters_and_only_the_monitoring_host_prometheus(tmp_path):
    inv = inventory(tmp_path)
    assert host_roles(inv.host("web-01"), inv)[-1] == "exporters"
    ids = {st.id for st in states_for(inv.host("web-01"), inv, ["exporters"])}
    assert {"exporters:node-service", "exporters:mysqld-service", "exporters:mysqld-cnf"} <= ids
    lb = {st.id for st in states_for(inv.host("lb-01"), inv, ["exporters", "keepalived"])}
    assert "exporters:mysqld-service" not in lb and "keepalived:metrics-timer-active" in lb
    mon_ids = {st.id for st in states_for(inv.host("mon-01"), inv)}
    assert {"monitoring:prometheus-service", "monitoring:alertmanager-service", "monitoring:rules"} <= mon_ids
    plain = load_inventory(write_doc(tmp_path, lab_doc(), "plain.yml"))
    assert "exporters" not in host_roles(plain.host("web-01"), plain)
    assert not any(st.id.startswith("keepalived:metrics") for st in states_for(plain.host("lb-01"), plain))


def test_the_exporter_password_is_a_secret_kept_out_of_diffs(tmp_path):
    inv = inventory(tmp_path)
    cnf = next(st for st in states_for(inv.host("web-01"), inv, ["exporters"]) if st.id == "exporters:mysqld-cnf")
    assert b"exporter-pw-123456789" in cnf.content and cnf.sensitive
    primary = {st.id: st for st in states_for(inv.host("web-01"), inv, ["mysql"])}["mysql:exporter-user"]
    assert primary.grants == {"*.*": ["BINLOG MONITOR", "PROCESS", "SLAVE MONITOR"]}

    def drop(doc):
        del doc["secrets"]["mysql_exporter_password"]

    with pytest.raises(TopologyError, match="secrets.mysql_exporter_password"):
        states_for(inventory(tmp_path, drop).host("web-01"), inventory(tmp_path, drop), ["exporters"])


@pytest.mark.parametrize(
    "change, named",
    [
        (lambda d: d["stack"]["monitoring"].update(alert_for={"TargetDwn": "1m"}), "alert_for.TargetDwn"),
        (lambda d: d["stack"]["monitoring"].update(alert_for={"TargetDown": "1 minute"}), "alert_for.TargetDown"),
        (lambda d: d["stack"]["monitoring"].update(scrape_interval="5"), "scrape_interval"),
        (lambda d: d["stack"]["monitoring"].update(webhook={"address": "10.77.0.1; rm -rf /"}), "webhook"),
        (lambda d: d["stack"].pop("monitoring"), "has the monitoring role"),
        (lambda d: d["hosts"]["loadgen-01"].update(roles=["monitoring"]), "give it to one"),
        (
            lambda d: d["stack"]["monitoring"]["receivers"].append(dict(d["stack"]["monitoring"]["receivers"][0])),
            "used twice",
        ),
        (lambda d: d["stack"]["monitoring"].update(receivers=[{"name": "x"}]), "names no way to send"),
    ],
)
def test_bad_monitoring_settings_are_refused_by_name(tmp_path, change, named):
    with pytest.raises(Exception) as info:
        mon.settings(inventory(tmp_path, change))
    assert named in str(info.value)


# --- the webhook and the journal ------------------------------------------------------------------

FIRING = {
    "version": "4",
    "status": "firing",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "ReplicationSQLThreadStopped", "severity": "critical", "instance": "web-02"},
            "annotations": {"summary": "the replica web-02 does not apply what it receives"},
            "startsAt": "2026-12-06T05:00:00.123Z",
            "endsAt": "0001-01-01T00:00:00Z",
            "fingerprint": "abc123",
        }
    ],
}


def resolved(payload):
    out = json.loads(json.dumps(payload))
    out["alerts"][0].update(status="resolved", endsAt="2026-12-06T05:01:00Z")
    return out


def post(receiver, payload, path="/alerts"):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{receiver.port}{path}", data=body, method="POST")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_the_webhook_records_each_firing_and_resolution_once(tmp_path):
    journal = Journal(tmp_path / "journal.sqlite")
    with alerts.Receiver(journal, "127.0.0.1", 0, ("127.0.0.1",)) as receiver:
        assert post(receiver, FIRING) == (200, "recorded 1 of 1\n")
        assert post(receiver, FIRING) == (200, "recorded 0 of 1\n")  # Alertmanager repeats itself
        assert post(receiver, resolved(FIRING))[0] == 200
    frame = journal.alerts()
    assert list(frame["state"]) == ["firing", "resolved"]
    row = frame.iloc[0]
    assert (row["name"], row["severity"], row["instance"]) == ("ReplicationSQLThreadStopped", "critical", "web-02")
    assert row["since"].startswith("2026-12-06T05:00:00.123") and frame.iloc[1]["ended"].startswith("2026-12-06T05:01")
    assert len(journal.alerts(name="Other")) == 0


def test_two_alerts_of_one_fingerprint_or_without_one_are_both_recorded(tmp_path):
    journal = Journal(tmp_path / "journal.sqlite")
    other = json.loads(json.dumps(FIRING))
    other["alerts"][0]["labels"]["alertname"] = "SiteDown"  # the same fingerprint, another alert
    assert journal.add_alerts(alerts.rows(FIRING)) == 1 and journal.add_alerts(alerts.rows(other)) == 1
    disks = []
    for host in ("web-01", "web-02"):
        alert = {
            "status": "firing",
            "labels": {"alertname": "DiskNearlyFull", "device": "/dev/sda1", "instance": host, "mountpoint": "/"},
            "startsAt": "2026-12-06T05:00:00Z",
        }
        disks += alerts.rows({"alerts": [alert]})
    assert disks[0]["fingerprint"] != disks[1]["fingerprint"]
    assert journal.add_alerts(disks) == 2 and journal.add_alerts(disks) == 0
    assert len(journal.alerts()) == 4


@pytest.mark.parametrize(
    "payload, said",
    [
        (b"not json", "refused"),
        ({"alerts": "none"}, "no list of alerts"),
        ({"alerts": [{"labels": {"alertname": "X"}, "status": "maybe"}]}, "neither firing nor resolved"),
        ({"alerts": [{"labels": {}, "status": "firing"}]}, "no alertname"),
        ({"alerts": [{"labels": {"alertname": "X"}, "status": "firing", "startsAt": "yesterday"}]}, "not a time"),
        (
            {"alerts": [{"labels": {"alertname": "X"}, "status": "firing", "startsAt": "9999-12-31T23:59:59-23:00"}]},
            "not a time",
        ),
        ({"alerts": [{"labels": {"alertname": "X", "instance": {"a": 1}}, "status": "firing"}]}, "not text"),
        (b"[" * 200000, "refused"),
    ],
)
def test_a_post_that_is_not_alertmanagers_is_refused_and_records_nothing(tmp_path, payload, said):
    journal = Journal(tmp_path / "journal.sqlite")
    with alerts.Receiver(journal, "127.0.0.1", 0, ("127.0.0.1",)) as receiver:
        code, text = post(receiver, payload)
    assert code == 400 and said in text
    assert len(journal.alerts()) == 0


def test_the_webhook_takes_posts_from_the_monitoring_host_only(tmp_path):
    journal = Journal(tmp_path / "journal.sqlite")
    with alerts.Receiver(journal, "127.0.0.1", 0, ("10.77.0.30",)) as receiver:
        for path in ("/alerts", "/other"):
            with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
                post(receiver, FIRING, path)  # closed before a byte of it is read
    assert len(journal.alerts()) == 0
    with pytest.raises(AlertPayloadError):
        alerts.rows([])


def test_records_alerts_json_rows(tmp_path):
    path = tmp_path / "journal.sqlite"
    Journal(path).add_alerts(alerts.rows(FIRING) + alerts.rows(resolved(FIRING)))
    done = run_cli("records", "alerts", "--journal", path, "--since", "3650d", "--json")
    assert done.code == 0, done
    rows = done.json()["rows"]
    assert [r["state"] for r in rows] == ["firing", "resolved"]
    for row in rows:
        assert {"name", "severity", "instance", "state", "at"} <= set(row)
    assert run_cli("records", "alerts", "--journal", path, "--since", "yesterday-ish").code != 0


# --- health, from Prometheus's answers ----------------------------------------------------------


def test_health_is_not_ok_while_a_critical_alert_fires(tmp_path, monkeypatch):
    inv = inventory(tmp_path)
    answers = {
        "/api/v1/targets": {
            "activeTargets": [
                {"labels": {"job": "node", "instance": "web-01"}, "health": "up", "lastError": ""},
                {"labels": {"job": "mysqld", "instance": "web-02"}, "health": "down", "lastError": "refused"},
            ]
        },
        "/api/v1/alerts": {
            "alerts": [
                {"labels": {"alertname": "TargetDown", "severity": "warning", "instance": "web-02"}, "state": "firing"},
                {"labels": {"alertname": "SiteDown", "severity": "critical"}, "state": "pending"},
            ]
        },
    }
    monkeypatch.setattr(health, "api", lambda inv, path, params=None, timeout=10.0: answers[path])
    found = health.health(inv)
    assert found.ok and [t["instance"] for t in found.down] == ["web-02"]
    assert [a["name"] for a in found.alerts] == ["TargetDown"]  # pending is not firing
    doc = found.as_json()
    assert {"job", "instance", "up"} <= set(doc["targets"][0]) and doc["ok"] is True
    assert {"name", "severity", "instance", "state", "since"} <= set(doc["alerts"][0])
    answers["/api/v1/alerts"]["alerts"][1]["state"] = "firing"
    assert not health.health(inv).ok
    assert list(health.health(inv).alerts_frame()["name"]) == ["SiteDown", "TargetDown"]


def test_health_names_prometheus_when_it_cannot_be_asked(tmp_path):
    def moved(doc):
        doc["hosts"]["mon-01"]["address"] = "127.0.0.1"  # nothing listens on 127.0.0.1:9090 here

    inv = inventory(tmp_path, moved)
    with pytest.raises(Exception) as info:
        health.health(inv)
    assert "prometheus at http://127.0.0.1:9090" in str(info.value)


def test_a_host_listing_the_exporters_without_monitoring_is_refused(tmp_path):
    doc = lab_doc()
    doc["hosts"]["web-01"]["roles"].append("exporters")
    inv = load_inventory(write_doc(tmp_path, doc))
    with pytest.raises(Exception, match="exporters role, but the inventory has no stack.monitoring"):
        host_roles(inv.host("web-01"), inv)


def test_the_alerts_receive_command_journals_what_it_is_posted_until_interrupted(tmp_path):
    import signal
    import socket
    import subprocess
    import time

    from tests.conftest import FOOBAR_OPS, PROJECT

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    doc = lab_doc(monitoring=True)
    doc["stack"]["monitoring"]["webhook"] = {"address": "127.0.0.1", "port": port}
    doc["hosts"]["mon-01"]["address"] = "127.0.0.1"  # posts come from here
    path = write_doc(tmp_path, doc)
    journal = tmp_path / "journal.sqlite"
    proc = subprocess.Popen(
        [str(FOOBAR_OPS), "alerts", "receive", "-i", str(path), "--journal", str(journal)],
        cwd=PROJECT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert f"listening on http://127.0.0.1:{port}/alerts" in line, line
        receiver = type("R", (), {"port": port})
        deadline = time.monotonic() + 10
        while True:
            try:
                assert post(receiver, FIRING) == (200, "recorded 1 of 1\n")
                break
            except urllib.error.URLError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=10)
    assert code == 0
    assert list(Journal(journal).alerts()["name"]) == ["ReplicationSQLThreadStopped"]


def test_health_json_says_unknown_when_prometheus_cannot_be_asked(tmp_path):
    def moved(doc):
        doc["hosts"]["mon-01"]["address"] = "127.0.0.1"

    inv = write_doc(tmp_path, (lambda d: (moved(d), d)[1])(lab_doc(monitoring=True)))
    done = run_cli("health", "-i", inv, "--json")
    assert done.code == 2, done
    doc = done.json()
    assert doc["ok"] is False and "prometheus at http://127.0.0.1:9090" in doc["error"] and doc["targets"] == []


def test_a_receivers_secret_goes_into_the_file_only_and_the_file_is_never_shown(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_SMTP_PW", "smtp-secret-value-42")

    def mail(doc):
        doc["stack"]["monitoring"]["receivers"] = [
            {
                "name": "mail",
                "email_configs": [
                    {"to": "oncall@example.com", "smarthost": "mx:25", "auth_password": "env:TEST_SMTP_PW"}
                ],
            }
        ]

    inv = inventory(tmp_path, mail)
    assert "smtp-secret-value-42" in mon.alertmanager_config(inv)
    config = {st.id: st for st in states_for(inv.host("mon-01"), inv)}["monitoring:alertmanager-config"]
    assert config.sensitive and config.mode == "0640"
    plain = {
        st.id: st
        for st in states_for(
            inventory(tmp_path, lambda d: d["stack"]["monitoring"].pop("receivers")).host("mon-01"),
            inventory(tmp_path, lambda d: d["stack"]["monitoring"].pop("receivers")),
        )
    }
    assert not plain["monitoring:alertmanager-config"].sensitive


def test_the_vip_rules_only_with_a_floating_address(tmp_path):
    names = {r["alert"] for r in mon.rules(inventory(tmp_path))}
    assert {"VIPHeldByNone", "VIPHeldByTwo"} <= names

    def single(doc):
        doc["stack"].pop("vip")
        del doc["hosts"]["lb-02"]
        doc["hosts"]["lb-01"]["roles"] = ["haproxy"]
        doc["groups"]["lb"]["hosts"] = ["lb-01"]

    names = {r["alert"] for r in mon.rules(inventory(tmp_path, single))}
    assert not {"VIPHeldByNone", "VIPHeldByTwo"} & names and "SiteDown" in names


def test_a_receiver_may_not_take_a_name_foobar_ops_uses(tmp_path):
    def named(doc):
        doc["stack"]["monitoring"]["receivers"][0]["name"] = "none"

    with pytest.raises(TopologyError, match="one of foobar_ops's own"):
        mon.settings(inventory(tmp_path, named))
