"""The load balancer pair on the lab: lb-01 and lb-02 with keepalived, the site reached through the
floating address. In every fault below a client asks the site through the address every 50 ms, each
request on a new connection, and both load balancers' `ip addr` is sampled every 100 ms (pairwatch).
The figures are printed (run with -s to see them) and asserted against the goals. Every test leaves
lb-01 holding the address and both load balancers serving."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from foobar_ops.core.inventory import load_inventory
from foobar_ops.stack.lb import HAProxy
from tests.conftest import LAB_INVENTORY, PROJECT, run_cli
from tests.lab.helpers import apply, inventory_with
from tests.lab.pairwatch import LBS, VIP, Watch

FOOBAR_OPS = Path(sys.executable).parent / "foobar-ops"
WEB = ["web-01", "web-02"]


def status() -> dict:
    done = run_cli("lb", "status", "-i", LAB_INVENTORY, "--json", timeout=60)
    doc = done.json()
    assert (done.code == 0) == doc["ok"], done
    return doc


def wait_status(done, timeout: float = 30) -> dict:
    """Ask `lb status` until done(doc); return the doc (the last one on timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        doc = status()
        if done(doc) or time.monotonic() > deadline:
            return doc
        time.sleep(0.5)


def holder_back_on_lb01(lab) -> None:
    """Mend what a test left: links up, HAProxy and keepalived running, lb-01 holding the address."""
    for name in LBS:
        subprocess.run(["ip", "link", "set", lab.machines[name].veth, "up"], check=False)
        lab.run(name, ["systemctl", "start", "haproxy", "keepalived"])
    doc = wait_status(lambda d: d["ok"], 30)
    if doc["holder"] != "lb-01":
        moved = run_cli("lb", "handover", "-i", LAB_INVENTORY, "--to", "lb-01", "--json", timeout=120)
        assert moved.code == 0, moved
    doc = wait_status(lambda d: d["ok"] and d["holder"] == "lb-01", 30)
    assert doc["ok"] and doc["holder"] == "lb-01", doc


@pytest.fixture(scope="module")
def pair(lab):
    done, doc = apply()
    assert done.code == 0, json.dumps([r for r in doc["results"] if r["result"] is False], indent=1)
    for name in WEB:
        assert run_cli("lb", "ready", name, "-i", LAB_INVENTORY).code == 0
    holder_back_on_lb01(lab)
    yield lab
    holder_back_on_lb01(lab)


@pytest.fixture
def mended(pair):
    yield pair
    holder_back_on_lb01(pair)


def show(what: str, figures: dict) -> None:
    print(f"\n{what}: {json.dumps(figures)}")


def test_the_pair_serves_and_a_second_apply_changes_nothing(pair):
    doc = status()
    assert set(doc) >= {"ok", "vip", "holder", "lbs"} and doc["ok"] and doc["vip"] == VIP
    assert [lb["host"] for lb in doc["lbs"]] == list(LBS)
    for lb in doc["lbs"]:
        assert set(lb) >= {"host", "vrrp_state", "haproxy", "priority"}
        assert lb["vrrp_state"] in ("MASTER", "BACKUP", "FAULT") and lb["haproxy"] == "active"
    assert sorted(lb["vrrp_state"] for lb in doc["lbs"]) == ["BACKUP", "MASTER"]
    assert {lb["host"]: lb["priority"] for lb in doc["lbs"]} == {"lb-01": 150, "lb-02": 100}
    done, again = apply(LAB_INVENTORY, "--hosts", "lb-01,lb-02")
    assert done.code == 0 and again["summary"]["changed"] == 0, again["summary"]
    assert all(again["round_trips"][name] == 1 for name in LBS)
    # both load balancers carry the same HAProxy configuration, made by the same role
    configs = {name: pair.run(name, ["sha256sum", "/etc/haproxy/haproxy.cfg"]).stdout.split()[0] for name in LBS}
    assert len(set(configs.values())) == 1
    # keepalived tracks HAProxy without a check process: no vrrp_script, and the file systemd writes
    conf = pair.run("lb-01", ["cat", "/etc/keepalived/keepalived.conf"]).stdout
    assert "vrrp_script" not in conf and "track_file haproxy_down" in conf and "vrrp_strict\n" not in conf


def test_lb_stat_shows_every_load_balancer(pair):
    rows = run_cli("lb", "stat", "-i", LAB_INVENTORY, "--json").json()["rows"]
    assert {r["lb"] for r in rows} == set(LBS)
    for name in LBS:
        assert {r["svname"] for r in rows if r["lb"] == name and r["pxname"] == "bk_web"} >= set(WEB)


def test_drain_and_ready_act_on_both_load_balancers(pair, tmp_path):
    journal = str(tmp_path / "journal.sqlite")
    done = run_cli("lb", "drain", "web-01", "-i", LAB_INVENTORY, "--journal", journal, "--timeout", "30")
    assert done.code == 0, done
    try:
        for name in LBS:
            with HAProxy(load_inventory(LAB_INVENTORY), name, record=False) as lb:
                assert lb.servers()["web-01"]["status"] == "DRAIN", name
    finally:
        assert run_cli("lb", "ready", "web-01", "-i", LAB_INVENTORY, "--journal", journal).code == 0
    for name in LBS:
        with HAProxy(load_inventory(LAB_INVENTORY), name, record=False) as lb:
            assert lb.wait_up("web-01", timeout=30) >= 0
    from foobar_ops.core.journal import Journal

    runs = Journal(journal).runs()
    assert list(runs["results"]) == [2, 2]  # one run per action, a result per load balancer
    # the last server UP is refused on each, and nothing is left drained anywhere
    assert run_cli("lb", "maint", "web-02", "-i", LAB_INVENTORY).code == 0
    try:
        refused = run_cli("lb", "drain", "web-01", "-i", LAB_INVENTORY, "--timeout", "5")
        assert refused.code != 0 and "last server" in refused.err
        for name in LBS:
            with HAProxy(load_inventory(LAB_INVENTORY), name, record=False) as lb:
                assert lb.servers()["web-01"]["status"].startswith("UP"), name
    finally:
        assert run_cli("lb", "ready", "web-02", "-i", LAB_INVENTORY).code == 0


def test_haproxy_killed_on_the_holder_moves_the_address_once(mended):
    with Watch(mended) as watch:
        time.sleep(2)
        mended.run("lb-01", ["pkill", "-KILL", "-x", "haproxy"])
        doc = wait_status(lambda d: d["holder"] == "lb-02" and d["ok"], 20)  # lb-01's HAProxy restarts too
        time.sleep(4)  # lb-01 is back as the standby: the address must not move back
    figures = watch.figures()
    show("HAProxy killed on the holder", figures)
    assert doc["holder"] == "lb-02" and doc["ok"], doc
    assert figures["largest_gap_s"] <= 2.0 and figures["moves"] == 1 and figures["holder"] == "lb-02"
    assert figures["samples_with_two"] == 0


def test_the_holder_powered_off_then_back_moves_the_address_at_most_once(mended):
    veth = mended.machines["lb-01"].veth
    with Watch(mended) as watch:
        time.sleep(2)
        subprocess.run(["ip", "link", "set", veth, "down"], check=True)  # the holder's link gone
        deadline = time.monotonic() + 15
        while watch.holder() != "lb-02" and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2)
        off = watch.figures()
        subprocess.run(["ip", "link", "set", veth, "up"], check=True)  # lb-01 back
        back = wait_status(lambda d: d["ok"], 30)
        time.sleep(5)
    figures = watch.figures()
    show("holder powered off", off)
    show("lb-01 back", figures)
    assert off["largest_gap_s"] <= 5.0 and off["moves"] == 1 and off["holder"] == "lb-02"
    assert back["ok"] and back["holder"] == "lb-02"  # nopreempt: lb-01 came back as the standby
    assert figures["moves"] == 1 and figures["samples_with_two"] == 0  # at most once, never two holders


def test_twenty_reloads_on_the_holder_move_nothing_and_fail_nothing(pair):
    with Watch(pair) as watch:
        time.sleep(1)
        done = pair.run(
            "lb-01", ["sh", "-c", "for i in $(seq 20); do systemctl reload haproxy || exit 1; sleep 0.3; done"]
        )
        time.sleep(1)
    figures = watch.figures()
    show("20 reloads on the holder", figures)
    assert done.returncode == 0, done.stderr
    assert figures["moves"] == 0 and figures["failed"] == 0 and figures["holder"] == "lb-01"
    assert figures["samples_with_two"] == 0 and figures["longest_none_s"] == 0


def test_a_handover_under_load_fails_no_new_connection(mended, tmp_path):
    tested = run_cli("lb", "handover", "-i", LAB_INVENTORY, "--to", "lb-02", "--test", "--json")
    assert tested.code == 0 and tested.json()["test"] and not tested.json()["changed"], tested
    assert status()["holder"] == "lb-01"  # --test changed nothing
    unknown = run_cli("lb", "handover", "-i", LAB_INVENTORY, "--to", "web-01")
    assert unknown.code == 2 and "no load balancer named 'web-01'" in unknown.err and "lb-01, lb-02" in unknown.err
    # a client that gives a connection 5 s (a browser waits far longer): a SYN the holder held back
    # is sent again after 1 s, and again after 3 s when the first one also came during the move
    with Watch(mended, timeout=5.0) as watch:
        time.sleep(1)
        started = time.monotonic()
        journal = str(tmp_path / "journal.sqlite")
        moved = run_cli(
            "lb", "handover", "-i", LAB_INVENTORY, "--to", "lb-02", "--json", "--journal", journal, timeout=120
        )
        took = time.monotonic() - started
        time.sleep(2)
    figures = watch.figures()
    doc = moved.json()
    show("handover under load", {**figures, "command_s": round(took, 2), "move_s": doc["seconds"]})
    assert moved.code == 0 and doc["ok"] and doc["changed"] and doc["from"] == "lb-01" and doc["to"] == "lb-02"
    assert figures["failed"] == 0 and figures["moves"] == 1 and figures["holder"] == "lb-02"
    assert figures["samples_with_two"] == 0
    assert status()["ok"]
    from foobar_ops.core.journal import Journal

    runs = Journal(journal).runs()  # the move is on record, as one run with its result
    assert list(runs["status"]) == ["ok"] and list(runs["results"]) == [1]
    results = Journal(journal).results(runs["run_id"][0])
    assert list(results["state_id"]) == ["vrrp:handover"] and list(results["changed"]) == [1]


def test_a_pair_change_waits_while_the_peer_is_down(mended, tmp_path):
    mended.run("lb-02", ["systemctl", "stop", "haproxy"])
    down = run_cli("lb", "status", "-i", LAB_INVENTORY, "--json")
    assert down.code == 1 and not down.json()["ok"]  # exit non-zero unless both serve
    before = mended.run("lb-01", ["sha256sum", "/etc/haproxy/haproxy.cfg"]).stdout
    done, doc = apply(inventory_with(tmp_path, "lb-01", haproxy_timeout_server="33s"), "--hosts", "lb-01,lb-02")
    assert done.code != 0
    refused = [r for r in doc["results"] if r["id"] == "lb-pair:peer"]
    assert refused and refused[0]["result"] is False and "lb-02 does not serve" in refused[0]["comment"]
    assert mended.run("lb-01", ["sha256sum", "/etc/haproxy/haproxy.cfg"]).stdout == before  # not changed
    mended.run("lb-02", ["systemctl", "start", "haproxy"])
    assert wait_status(lambda d: d["ok"], 30)["ok"]
    assert apply(LAB_INVENTORY, "--hosts", "lb-01,lb-02")[0].code == 0


def _start_deploy(inv: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [str(FOOBAR_OPS), "apply", "-i", str(inv), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=PROJECT,
    )


def _drained_on(name: str, timeout: float = 120) -> str | None:
    """Wait until a web server is DRAIN on load balancer `name`; return it."""
    deadline = time.monotonic() + timeout
    with HAProxy(load_inventory(LAB_INVENTORY), name, record=False) as lb:
        while time.monotonic() < deadline:
            found = [s for s, row in lb.servers().items() if row["status"] == "DRAIN"]
            if found:
                return found[0]
            time.sleep(0.1)
    return None


def test_a_rolling_deploy_through_the_address_fails_nothing_even_when_the_address_moves(mended, tmp_path):
    with Watch(mended, path="/health") as watch:
        proc = _start_deploy(inventory_with(tmp_path, WEB, app_build="pair1"))
        out, err = proc.communicate(timeout=600)
        time.sleep(1)
    figures = watch.figures()
    show("rolling deploy through the address", figures)
    assert proc.returncode == 0, err[-800:]
    assert figures["failed"] == 0 and figures["moves"] == 0

    with Watch(mended, path="/health") as watch:
        proc = _start_deploy(inventory_with(tmp_path, WEB, app_build="pair2"))
        drained = _drained_on("lb-01")
        assert drained is not None
        moved = run_cli("lb", "handover", "-i", LAB_INVENTORY, "--to", "lb-02", "--json", timeout=120)
        with HAProxy(load_inventory(LAB_INVENTORY), "lb-02", record=False) as lb:
            on_new_holder = lb.servers()[drained]["status"]
        out, err = proc.communicate(timeout=600)
        time.sleep(1)
    figures = watch.figures()
    show("rolling deploy with the address moved halfway", {**figures, "drained": drained})
    assert moved.code == 0, moved
    assert proc.returncode == 0, err[-800:]
    assert on_new_holder == "DRAIN"  # the server drained for the deploy is drained on the new holder too
    assert figures["moves"] == 1 and figures["holder"] == "lb-02" and figures["samples_with_two"] == 0
    assert figures["failed"] <= 2, watch.failed()[:5]  # at most those in flight at the move
    assert apply()[0].code == 0  # back to the inventory's release


def test_the_handover_runbook_says_then_moves(mended):
    said = run_cli("runbook", "lb_handover", "-i", LAB_INVENTORY, "-p", "to", "lb-02", "-p", "test", "true", "--json")
    assert said.code == 0 and json.loads(said.out)["outcome"] == "ok", said
    assert status()["holder"] == "lb-01"  # a test run moved nothing
    done = run_cli("runbook", "lb_handover", "-i", LAB_INVENTORY, "-p", "to", "lb-02", "--json", timeout=300)
    doc = json.loads(done.out)
    assert done.code == 0 and doc["outcome"] == "ok", doc
    assert Path(doc["output_notebook"]).exists()
    assert status()["holder"] == "lb-02"
    refused = run_cli("runbook", "lb_handover", "-i", LAB_INVENTORY, "-p", "to", "lb-03", "--json")
    assert refused.code == 1 and "no load balancer named 'lb-03'" in refused.out + refused.err
