"""The database pair on the lab: web-01 primary, web-02 replica, seeded by apply; reads spread by
weight, writes on the primary; a replica outage, a switchover under write load, a failover with
the primary powered off; refusals that change nothing. Tests in this module run in order; the
module puts web-01 back as the primary when it ends.

Role changes run on a copy of the lab inventory (a switchover rewrites the file it is given)."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections import Counter

import pytest
import yaml

from foobar_ops.core.runlock import holding
from foobar_ops.lab import PASSWORD_PATH
from foobar_ops.stack import load_inventory
from foobar_ops.stack.verify import request
from tests.conftest import LAB_INVENTORY, run_cli
from tests.lab.helpers import HTTPS, LB, SITE, Traffic, apply, get, post, site_tls

APP_PASSWORD = "/var/lib/foobar-ops/lab/secrets/mysql_app_password"
REPL_PASSWORD = "/var/lib/foobar-ops/lab/secrets/mysql_repl_password"
# on a web host, the app's own password, from its settings file (it never leaves the host)
READ_APP_PASSWORD = r"""MYSQL_PWD=$(sed -n 's/^FOOBAR_DB_PASSWORD="\(.*\)"$/\1/p' /etc/foobar/app.env); """


def sql(lab, host: str, query: str) -> list[list[str]]:
    """Run SQL as the admin on a lab host; return rows of tab-separated fields."""
    done = lab.run(host, ["mysql", "-NB", "foobar", "-e", query])
    assert done.returncode == 0, done.stderr
    return [line.split("\t") for line in done.stdout.splitlines()]


def status(inv) -> dict:
    done = run_cli("db", "status", "-i", inv, "--json")
    doc = done.json()
    assert (done.code == 0) == doc["ok"], done
    return doc


def wait_ok(inv, seconds: float = 30) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        doc = status(inv)
        if doc["ok"] or time.monotonic() > deadline:
            return doc
        time.sleep(0.5)


def roles(doc: dict) -> dict[str, str]:
    return {n["host"]: n["role"] for n in doc["nodes"]}


def same_data(lab) -> None:
    """Both nodes hold the same rows: counts and the table checksum match."""
    deadline = time.monotonic() + 15
    while True:
        a = sql(lab, "web-01", "SELECT COUNT(*) FROM items; CHECKSUM TABLE items")
        b = sql(lab, "web-02", "SELECT COUNT(*) FROM items; CHECKSUM TABLE items")
        if a == b or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert a == b and int(a[0][0]) > 0, (a, b)


@pytest.fixture(scope="module")
def pair(lab, tmp_path_factory):
    """The stack deployed, with web-02 rebuilt from nothing so that this apply seeds it; a copy of
    the lab inventory for role changes."""
    assert run_cli("lab", "destroy", "web-02").code == 0
    assert run_cli("lab", "up").code == 0
    done, doc = apply()
    assert done.code == 0, json.dumps([r for r in doc["results"] if r["result"] is False], indent=1)
    seeded = next(r for r in doc["results"] if r["host"] == "web-02" and r["id"] == "mysql:replica")
    assert seeded["changed"] and "seeded from a consistent copy of web-01" in seeded["comment"]
    copy = tmp_path_factory.mktemp("replication") / "lab.yml"
    shutil.copy(LAB_INVENTORY, copy)
    yield {"inv": copy, "lab": lab}
    # leave the lab as the inventory says: web-01 the primary
    lab.up()
    if roles(status(copy)).get("web-01") != "primary" or "primary" not in copy.read_text().split("web-02")[0]:
        run_cli("apply", "-i", copy, "mysql", timeout=600)
        run_cli("db", "switchover", "-i", copy, "--to", "web-01", timeout=300)
    apply()


def test_status_json_contract_and_a_second_apply_changes_nothing(pair):
    doc = wait_ok(LAB_INVENTORY)
    assert doc["ok"] is True and roles(doc) == {"web-01": "primary", "web-02": "replica"}
    for node in doc["nodes"]:
        assert set(node) >= {"host", "role", "read_only", "io_running", "sql_running", "lag_s", "gtid", "error"}
    replica = next(n for n in doc["nodes"] if n["host"] == "web-02")
    assert replica["io_running"] is True and replica["sql_running"] is True and replica["lag_s"] is not None
    assert replica["read_only"] is True and replica["error"] is None
    done, doc = apply()
    assert done.code == 0 and [r["id"] for r in doc["results"] if r["changed"]] == []
    journal = run_cli("records", "show", doc["run_id"], "--json").json()
    assert not any(
        "CHANGE MASTER" in (r["comment"] or "") for r in journal["results"]
    )  # a healthy replica is left alone


def test_a_posted_row_is_on_the_replica_within_a_second_and_the_app_cannot_write_there(pair):
    lab = pair["lab"]
    created = post(json.dumps({"name": "replicated-row"}).encode())
    assert created["status"] == 201 and created["db_node"] == "web-01"
    item = json.loads(created["body"])["id"]
    posted_at = time.monotonic()
    while not sql(lab, "web-02", f"SELECT id FROM items WHERE id = {item}"):
        assert time.monotonic() - posted_at < 1.0, "the row did not reach the replica within 1 s"
        time.sleep(0.02)
    refused = lab.run(
        "web-02",
        [
            "sh",
            "-c",
            READ_APP_PASSWORD + "export MYSQL_PWD; "
            'mysql -h 10.77.0.12 -u foobar foobar -e "INSERT INTO items (name, served_by) '
            "VALUES ('sneaky', 'test')\"",
        ],
    )
    assert refused.returncode != 0 and "1290" in refused.stderr and "read-only" in refused.stderr
    health = json.loads(get("/health")["body"])
    assert get("/health")["status"] == 200 and health["checks"]["db_write"] == "ok (web-01)"


def test_reads_follow_the_weights_and_every_write_lands_on_the_primary(pair, tmp_path):
    lab = pair["lab"]
    answers = [get("/api/items") for _ in range(200)]
    assert [a["status"] for a in answers] == [200] * 200
    served = Counter(a["db_node"] for a in answers)
    # weights 1:1: each node's share within 0.5 +- 0.1 (every gunicorn worker keeps its own
    # smooth weighted round robin; the load balancer spreads requests over the workers)
    assert abs(served["web-01"] / 200 - 0.5) <= 0.1 and abs(served["web-02"] / 200 - 0.5) <= 0.1, served
    data = yaml.safe_load(LAB_INVENTORY.read_text())
    data["hosts"]["web-01"]["vars"]["mysql_read_weight"] = 1
    data["hosts"]["web-02"]["vars"]["mysql_read_weight"] = 3
    weighted = tmp_path / "weighted.yml"
    weighted.write_text(yaml.safe_dump(data, sort_keys=False))
    done, _ = apply(weighted, "app")
    assert done.code == 0, done
    answers = [get("/api/items") for _ in range(200)]
    served = Counter(a["db_node"] for a in answers if a["status"] == 200)
    assert abs(served["web-02"] / 200 - 0.75) <= 0.1, served  # weights 1:3, tolerance 0.1
    writes = [post(json.dumps({"name": f"weighted-{i}"}).encode()) for i in range(20)]
    assert {w["status"] for w in writes} == {201} and {w["db_node"] for w in writes} == {"web-01"}
    same_data(lab)
    done, _ = apply(LAB_INVENTORY, "app")  # back to 1:1
    assert done.code == 0


def test_replica_down_under_reads_then_back_and_caught_up(pair):
    lab = pair["lab"]
    tag = f"outage{uuid.uuid4().hex[:6]}"  # this run's rows only
    with Traffic(path="/api/items", writes=tag, every=5, max_seconds=60) as traffic:
        time.sleep(1)
        assert lab.run("web-02", ["systemctl", "stop", "mariadb"]).returncode == 0
        time.sleep(4)
        during = len(traffic.results)
        assert lab.run("web-02", ["systemctl", "start", "mariadb"]).returncode == 0
        time.sleep(3)
    assert len(traffic.results) > during > 20
    assert traffic.failures == [], traffic.failures[:3]  # reads and writes kept succeeding
    assert {r["db_node"] for r in traffic.results[during:]} >= {"web-01"}
    doc = wait_ok(LAB_INVENTORY)
    assert doc["ok"], doc
    same_data(lab)
    names = [row[0] for row in sql(lab, "web-02", f"SELECT name FROM items WHERE name LIKE '{tag}-%'")]
    assert sorted(names) == sorted(traffic.acknowledged)  # every acknowledged write, once, on the replica


def test_a_switchover_refused_by_a_failed_check_changes_nothing(pair):
    lab, inv = pair["lab"], pair["inv"]
    assert sql(lab, "web-02", "STOP SLAVE; SELECT 1") == [["1"]]
    try:
        before = inv.read_text()
        done = run_cli("db", "switchover", "-i", inv, "--json", timeout=120)
        assert done.code != 0
        doc = done.json()
        assert doc["ok"] is False and "replication threads stopped" in doc["error"]
        assert not [r for r in doc["results"] if r["status"] == "changed"]
        assert inv.read_text() == before
        assert roles(status(inv)) == {"web-01": "primary", "web-02": "replica"}
        assert sql(lab, "web-01", "SELECT @@read_only") == [["0"]]
    finally:
        sql(lab, "web-02", "START SLAVE; SELECT 1")
    assert wait_ok(inv)["ok"]


def test_a_switchover_while_another_run_holds_a_database_host_is_refused_naming_it(pair):
    lab, inv = pair["lab"], pair["inv"]
    before = inv.read_text()
    loaded = load_inventory(inv)
    holder = "20261126-000000-a1b2c3"
    with holding([loaded.host("web-02")], loaded, holder, "foobar-ops apply (another run)"):
        done = run_cli("db", "switchover", "-i", inv, "--json", timeout=120)
        checked = run_cli("db", "switchover", "-i", inv, "--test", "--json", timeout=120)
    assert done.code == 2, done
    assert f"web-02 is locked by run {holder} (foobar-ops apply (another run))" in done.err
    assert "this run changed nothing" in done.err
    assert checked.code == 0 and checked.json()["ok"]  # a check takes no lock: it changes nothing
    assert inv.read_text() == before and roles(status(inv)) == {"web-01": "primary", "web-02": "replica"}
    assert sql(lab, "web-01", "SELECT @@read_only") == [["0"]]
    recent = run_cli("records", "list", "--json", "--limit", "5").json()["rows"]  # newest first
    refused = next(r for r in recent if r["status"] == "error")
    assert refused["command"].startswith("foobar-ops db switchover") and holder in refused["error"]


def test_switchover_under_writes_loses_and_doubles_nothing_and_switches_back(pair):
    lab, inv = pair["lab"], pair["inv"]
    tag = f"swo{uuid.uuid4().hex[:6]}"  # this run's rows only
    with Traffic(path="/api/items", writes=tag, every=2, max_seconds=90) as traffic:
        time.sleep(1.5)
        done = run_cli("db", "switchover", "-i", inv, "--json", timeout=300)
        time.sleep(1.5)
        back = run_cli("db", "switchover", "-i", inv, "--to", "web-01", "--json", timeout=300)
        time.sleep(1.5)
    assert done.code == 0 and done.json()["ok"] and done.json()["new_primary"] == "web-02", done
    assert back.code == 0 and back.json()["ok"] and back.json()["new_primary"] == "web-01", back
    steps = [r["id"].split(":")[-1] for r in done.json()["results"] if r["status"] == "changed"]
    # the inventory names the new primary right after the promotion, before the old one is demoted
    assert steps[:6] == ["read-only", "catch-up", "promote", "inventory", "inventory", "demote"]
    failures = traffic.failures
    print(
        f"switchover there and back under load: {len(traffic.results)} requests, {traffic.posted} writes "
        f"acknowledged, {len(failures)} failed"
    )
    assert len(failures) <= 2, failures  # only a request in flight at the very moment may fail
    assert traffic.posted > 30
    wrote_on = {r["db_node"] for r in traffic.results if r.get("posted")}
    assert wrote_on == {"web-01", "web-02"}  # writes went to the new primary, then back
    rows = sql(lab, "web-01", f"SELECT name, COUNT(*) FROM items WHERE name LIKE '{tag}-%' GROUP BY name")
    stored = {name: int(count) for name, count in rows}
    assert all(count == 1 for count in stored.values()), "a write was doubled"
    assert set(traffic.acknowledged) <= set(stored), "an acknowledged write was lost"
    doc = wait_ok(inv)
    assert doc["ok"] and roles(doc) == {"web-01": "primary", "web-02": "replica"}
    same_data(lab)
    assert inv.read_text() == LAB_INVENTORY.read_text()  # back where it started, comments and all
    done, doc = apply(inv)
    assert done.code == 0 and [r["id"] for r in doc["results"] if r["changed"]] == []


def test_failover_with_the_primary_powered_off_then_it_rejoins_fenced(pair):
    lab, inv = pair["lab"], pair["inv"]
    before = int(sql(lab, "web-02", "SELECT COUNT(*) FROM items")[0][0])
    lab.down(["web-01"])
    try:
        refused = request(
            LB,
            HTTPS,
            SITE,
            "/api/items",
            method="POST",
            body=b'{"name": "no-primary"}',
            headers={"Content-Type": "application/json"},
            timeout=20,
            tls=site_tls(),
        )
        assert refused["status"] == 503  # no primary: the write is refused, not lost
        done = run_cli("db", "failover", "-i", inv, "--json", timeout=300)
        assert done.code == 0, done
        doc = done.json()
        assert doc["ok"] and doc["new_primary"] == "web-02" and doc["old_primary"] == "web-01"
        assert "mysql_role: primary" in inv.read_text().split("web-02:")[1].split("groups:")[0]
        writes = [post(json.dumps({"name": f"after-failover-{i}"}).encode()) for i in range(5)]
        assert [w["status"] for w in writes] == [201] * 5 and {w["db_node"] for w in writes} == {"web-02"}
    finally:
        lab.up(["web-01"])
    assert sql(lab, "web-01", "SELECT @@read_only") == [["1"]]  # it came back fenced
    assert int(sql(lab, "web-01", "SELECT COUNT(*) FROM items")[0][0]) == before  # and took no write
    done, doc = apply(inv)
    assert done.code == 0, done
    rejoin = next(r for r in doc["results"] if r["host"] == "web-01" and r["id"] == "mysql:replica")
    assert rejoin["changed"] and "rejoin as a replica of web-02" in rejoin["comment"]
    status_doc = wait_ok(inv)
    assert status_doc["ok"] and roles(status_doc) == {"web-01": "replica", "web-02": "primary"}
    same_data(lab)
    back = run_cli("db", "switchover", "-i", inv, "--to", "web-01", "--json", timeout=300)
    assert back.code == 0 and back.json()["ok"]
    assert inv.read_text() == LAB_INVENTORY.read_text()


def test_secrets_stay_out_of_the_journal_and_output(pair):
    values = [open(path).read().strip() for path in (APP_PASSWORD, REPL_PASSWORD)] + [PASSWORD_PATH.read_text().strip()]
    done = run_cli("records", "list", "--json", "--limit", "200")
    rows = done.json()["rows"]
    texts = [done.out] + [run_cli("records", "show", r["run_id"], "--json").out for r in rows[:30]]
    for value in values:
        assert all(value not in text for text in texts)
