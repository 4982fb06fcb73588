"""The firewall on the lab: every host's rules proved from the hosts themselves (firewall check),
a ruleset that would lock us out put back (at once by the run, or by the host's own timer when the
run is killed after the load), a syntax error refused with the live rules unchanged, a second apply
that changes and reloads nothing, and the rules back after a reboot. Every other lab test runs with
the firewall on (the lab's inventory has stack.firewall): replication, switchover, the VIP failover,
the load tests, the scheduled load run and the rolling deploy under load are each shown under it."""

from __future__ import annotations

import hashlib
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import LAB_INVENTORY, PROJECT, run_cli
from tests.lab.helpers import apply, get

FOOBAR_OPS = Path(sys.executable).parent / "foobar-ops"
HOSTS = ["lb-01", "lb-02", "web-01", "web-02", "loadgen-01", "loadgen-02", "mon-01"]
TIMEOUT = 8  # the confirm_timeout of the lockout tests: short, so the host's own timer is seen to act


@pytest.fixture(scope="module")
def deployed(lab):
    done, doc = apply()
    assert done.code == 0, [r for r in doc["results"] if r["result"] is False][:3]
    return lab


def ruleset_hash(lab, host: str) -> str:
    done = lab.run(host, ["nft", "list", "ruleset"])
    assert done.returncode == 0, done.stderr
    return hashlib.sha256(done.stdout.encode()).hexdigest()


LOADGEN = "10.77.0.20"


def answers_ssh(address: str) -> bool:
    """Port 22 answers at once (the firewall lets this machine in); a dropped SYN times out."""
    try:
        with socket.create_connection((address, 22), timeout=0.3):
            return True
    except OSError:
        return False


def ssh_works(lab, host: str) -> bool:
    return lab.run(host, ["true"]).returncode == 0


def inventory(tmp_path: Path, **firewall) -> Path:
    data = yaml.safe_load(LAB_INVENTORY.read_text())
    data["stack"]["firewall"].update(firewall)
    path = tmp_path / "firewall.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_every_path_between_the_hosts_is_as_the_rules_intend(deployed):
    started = time.perf_counter()
    done = run_cli("firewall", "check", "-i", LAB_INVENTORY, "--json", timeout=120)
    seconds = time.perf_counter() - started
    doc = done.json()
    checks = {(c["from"], c["to"], c["port"]): c for c in doc["checks"]}
    wrong = [c for c in doc["checks"] if not c["ok"]]
    print(f"\nfirewall check: {len(checks)} paths, {len(checks) - len(wrong)} as intended, {seconds:.1f} s")
    assert done.code == 0 and doc["ok"] and wrong == [], wrong[:5]
    for path, expected in {
        ("loadgen-01", "web-01", 80): "closed",  # the load generator goes through the site, not around it
        ("loadgen-01", "web-02", 3306): "closed",
        ("lb-01", "web-01", 3306): "closed",  # a load balancer has no business with MariaDB
        ("lb-02", "web-02", 80): "open",
        ("web-02", "web-01", 3306): "open",  # replication and the app's writes
        ("control", "loadgen-01", 22): "open",
        ("web-01", "web-02", 22): "closed",  # only the control address reaches SSH
        ("lb-01", "loadgen-01", 22): "closed",
    }.items():
        assert checks[path]["expected"] == checks[path]["measured"] == expected, checks[path]
    # SSH only from this machine, and from mon-01, the scheduler (it runs the scheduled runbooks)
    assert {c["measured"] for c in doc["checks"] if c["port"] == 22 and c["from"] not in ("control", "mon-01")} == {
        "closed"
    }
    assert {c["measured"] for c in doc["checks"] if c["port"] == 22 and c["from"] == "mon-01"} == {"open"}
    # 7 hosts and this machine as sources, each of the 7 hosts but itself as a target, 9 ports (4, and
    # monitoring's 5): 49 x 9
    assert len(checks) == 441


def test_a_second_apply_changes_nothing_and_reloads_nothing(deployed):
    done, doc = apply(LAB_INVENTORY, "firewall")
    assert done.code == 0
    changed = [r["id"] for r in doc["results"] if r["changed"]]
    assert changed == [] and not [r for r in doc["results"] if r["id"] == "firewall:confirm"]
    assert {h["round_trips"] for h in doc["hosts"]} == {1}


def test_rules_that_would_lock_us_out_are_put_back_and_the_run_says_so(deployed, tmp_path):
    lab = deployed
    before = ruleset_hash(lab, "loadgen-01")
    wrong = inventory(tmp_path, admin_sources=["10.77.0.99"], confirm_timeout=TIMEOUT)
    started = time.monotonic()
    done = run_cli("apply", "-i", wrong, "firewall", "--hosts", "loadgen-01", "--json", timeout=300)
    doc = done.json()
    confirm = [r for r in doc["results"] if r["id"] == "firewall:confirm"]
    assert done.code != 0 and confirm and confirm[0]["status"] == "failed", confirm
    assert "would have locked foobar-ops out" in confirm[0]["comment"], confirm[0]["comment"]
    while not ssh_works(lab, "loadgen-01") and time.monotonic() - started < TIMEOUT + 5:
        time.sleep(0.5)
    back = time.monotonic() - started
    print(f"\nlockout: run reported it, SSH works {back:.1f} s after the apply began")
    assert ssh_works(lab, "loadgen-01") and back <= TIMEOUT + 5
    assert ruleset_hash(lab, "loadgen-01") == before
    again, doc = apply(LAB_INVENTORY, "firewall")  # the old rules are the wanted ones: nothing to do
    assert again.code == 0 and [r["id"] for r in doc["results"] if r["changed"]] == []


def test_a_run_killed_after_the_load_is_undone_by_the_hosts_own_timer(deployed, tmp_path):
    lab = deployed
    before = ruleset_hash(lab, "loadgen-01")
    wrong = inventory(tmp_path, admin_sources=["10.77.0.99"], confirm_timeout=TIMEOUT)
    proc = subprocess.Popen(
        [str(FOOBAR_OPS), "apply", "-i", str(wrong), "firewall", "--hosts", "loadgen-01"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=PROJECT,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and answers_ssh(LOADGEN):  # until the load is in
            time.sleep(0.1)
        loaded = time.monotonic()
        proc.send_signal(signal.SIGKILL)  # killed while it waits for its new connection to get in
    finally:
        proc.wait(timeout=30)
    time.sleep(1)
    assert not answers_ssh(LOADGEN)  # the run is gone, and the new rules still hold the door shut
    while not answers_ssh(LOADGEN) and time.monotonic() - loaded < TIMEOUT + 5:
        time.sleep(0.1)
    back = time.monotonic() - loaded
    print(f"\nkilled run: the host put its old rules back by itself {back:.1f} s after the load")
    assert TIMEOUT - 2 <= back <= TIMEOUT + 5  # the host's timer, armed just before the load
    assert ssh_works(lab, "loadgen-01")
    assert ruleset_hash(lab, "loadgen-01") == before
    again, doc = apply(LAB_INVENTORY, "firewall")
    assert again.code == 0 and [r["id"] for r in doc["results"] if r["changed"]] == []


def test_a_table_with_a_syntax_error_is_refused_and_the_live_rules_stay(deployed, tmp_path):
    lab = deployed
    before = ruleset_hash(lab, "web-02")
    states = tmp_path / "broken.py"
    states.write_text(
        "from foobar_ops import states as s\n\n"
        "def states(host, inventory):\n"
        "    body = 'table inet foobar {\\n\\tchain input {\\n\\t\\ttcp dport 22 acept\\n\\t}\\n}\\n'\n"
        "    return [s.nft.table('inet foobar', body, persist='/etc/foobar-ops/firewall.nft',\n"
        "                        boot_unit='foobar-firewall.service', timer='foobar-firewall-rollback')]\n"
    )
    done = run_cli("apply", "-i", LAB_INVENTORY, "--states", states, "--hosts", "web-02", "--json")
    result = done.json()["results"][0]
    assert done.code != 0 and result["status"] == "failed" and "nft refused the rules" in result["comment"], result
    assert "acept" in result["comment"]  # nft's own words name the mistake
    assert ruleset_hash(lab, "web-02") == before
    armed = lab.run("web-02", ["systemctl", "is-active", "foobar-firewall-rollback.timer"]).stdout.strip()
    assert armed != "active"  # nothing was armed for a candidate that never loaded


def test_the_rules_come_back_after_a_reboot(deployed):
    lab = deployed
    before = ruleset_hash(lab, "loadgen-01")
    assert run_cli("lab", "down", "-i", LAB_INVENTORY, "loadgen-01", timeout=120).code == 0
    assert run_cli("lab", "up", "-i", LAB_INVENTORY, "loadgen-01", timeout=300).code == 0
    assert ruleset_hash(lab, "loadgen-01") == before
    listed = lab.run("loadgen-01", ["nft", "list", "table", "inet", "foobar"]).stdout
    assert "policy drop" in listed and "10.77.0.1" in listed
    done, doc = apply(LAB_INVENTORY, "firewall")
    assert done.code == 0 and [r["id"] for r in doc["results"] if r["changed"]] == []


def test_the_site_answers_through_the_floating_address_with_every_host_firewalled(deployed):
    for host in HOSTS:
        assert "policy drop" in deployed.run(host, ["nft", "list", "table", "inet", "foobar"]).stdout
    answers = [get("/health") for _ in range(10)]
    assert {a["status"] for a in answers} == {200}
    assert {a["served_by"] for a in answers} == {"web-01", "web-02"}
    assert json.loads(answers[0]["body"])["checks"]["db_read"].startswith("ok")


def test_the_firewall_runbook_plans_applies_and_proves_the_rules(deployed, tmp_path):
    """The runbook on an inventory whose allow list opens web-01's MariaDB to this machine: the plan
    shows web-01's table changing, the apply keeps it (confirmed), the check agrees with the new
    rules; then the lab's own rules again."""
    opened = inventory(tmp_path, allow=[{"port": 3306, "from": ["10.77.0.1"], "to": ["web-01"]}])
    try:
        done = run_cli("runbook", "firewall", "-i", opened, "--json", timeout=600)
        doc = json.loads(done.out)
        assert done.code == 0 and doc["outcome"] == "ok", doc
        notebook = Path(doc["output_notebook"]).read_text()
        assert "a new SSH connection got in: kept for boot" in notebook and "as intended (100%)" in notebook
        check = run_cli("firewall", "check", "-i", opened, "--json", timeout=120).json()
        mariadb = [c for c in check["checks"] if (c["from"], c["to"], c["port"]) == ("control", "web-01", 3306)]
        assert check["ok"] and mariadb[0]["measured"] == "open", mariadb
    finally:
        assert run_cli("apply", "-i", LAB_INVENTORY, "firewall", "--hosts", "web-01").code == 0
    back = run_cli("firewall", "check", "-i", LAB_INVENTORY, "--json", timeout=120).json()
    assert back["ok"]
