"""The database pair under interruption, crashes and partitions, on the lab: a switchover
interrupted (SIGINT) or killed (SIGKILL) in its catch-up wait leaves exactly one writable node,
the inventory's primary (by itself, by the guard on the old primary's host, or by the next `db
status`); apply refuses to make a fenced primary writable while its peer cannot be asked; after a
failover, an old primary come back writable takes no app write and is fenced by the next `db
status`. Every test leaves web-01 the primary and web-02 its replica, healthy.

Role changes run on a copy of the lab inventory (a switchover rewrites the file it is given)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from foobar_ops.stack.mariadb import MARKER
from tests.conftest import FOOBAR_OPS, LAB_INVENTORY, PROJECT, run_cli
from tests.lab.helpers import apply, post


def sql(lab, host: str, query: str) -> list[list[str]]:
    done = lab.run(host, ["mysql", "-NB", "foobar", "-e", query])
    assert done.returncode == 0, done.stderr
    return [line.split("\t") for line in done.stdout.splitlines()]


def read_only(lab) -> dict[str, str]:
    return {host: sql(lab, host, "SELECT @@read_only")[0][0] for host in ("web-01", "web-02")}


def status(inv) -> tuple[int, dict]:
    done = run_cli("db", "status", "-i", inv, "--json", timeout=120)
    return done.code, done.json()


def wait_ok(inv, seconds: float = 40) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        code, doc = status(inv)
        if doc["ok"] or time.monotonic() > deadline:
            assert code == (0 if doc["ok"] else 1)
            return doc
        time.sleep(0.5)


def leftovers(lab, host: str) -> str:
    """The role-change marker and guard timer left on a host (empty: none)."""
    done = lab.run(
        host, ["sh", "-c", f"cat {MARKER} 2>/dev/null; systemctl list-units --all --no-legend 'foobar-rolechange*'"]
    )
    return done.stdout.strip()


def mend(lab, inv) -> None:
    """Put the pair back as the lab inventory says (web-01 primary, web-02 replica), healthy."""
    lab.up()
    lab.run("web-02", ["systemctl", "start", "mariadb"])
    run_cli("db", "status", "-i", inv, timeout=120)  # settles what a test left part-way
    code, doc = status(inv)
    roles = {n["host"]: n["role"] for n in doc["nodes"]}
    if roles.get("web-02") == "primary" or "mysql_role: primary" in inv.read_text().split("web-02:")[1]:
        run_cli("apply", "-i", inv, "mysql", timeout=600)
        run_cli("db", "switchover", "-i", inv, "--to", "web-01", timeout=300)
    shutil.copy(LAB_INVENTORY, inv)
    run_cli("apply", "-i", LAB_INVENTORY, "mysql", timeout=600)
    assert wait_ok(LAB_INVENTORY)["ok"]


@pytest.fixture
def pair(lab, tmp_path):
    """A healthy pair and a copy of the lab inventory; mended afterwards whatever happened."""
    inv = tmp_path / "lab.yml"
    shutil.copy(LAB_INVENTORY, inv)
    doc = wait_ok(inv)
    assert doc["ok"], doc
    yield {"inv": inv, "lab": lab}
    mend(lab, inv)


class HeldReplica:
    """A session on web-02 holding FLUSH TABLES WITH READ LOCK: its SQL thread cannot apply, so a
    switchover's catch-up wait blocks once the primary has written something."""

    def __init__(self, lab) -> None:
        self.proc = subprocess.Popen(
            lab.ssh_argv("web-02", ["mysql", "-e", "FLUSH TABLES WITH READ LOCK; SELECT SLEEP(120)"]),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not self._held(lab) and time.monotonic() < deadline:
            sql(lab, "web-01", f"INSERT INTO items (name, served_by) VALUES ('held-{uuid.uuid4().hex[:6]}', 'test')")
            time.sleep(0.3)
        assert self._held(lab), "the replica's SQL thread is not held back"

    @staticmethod
    def _held(lab) -> bool:
        """The replica's SQL thread waits for the lock (MariaDB: a backup lock, or the global read lock)."""
        query = "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE STATE LIKE 'Waiting for%lock%'"
        done = lab.run("web-02", ["mysql", "-NB", "-e", query])
        return done.stdout.strip() not in ("", "0")

    def release(self, lab) -> None:
        self.proc.kill()
        self.proc.wait()
        find = "SELECT ID FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT SLEEP(120)%'"
        lab.run("web-02", ["sh", "-c", f'mysql -NB -e "{find}" | xargs -r -n1 mysqladmin kill'])


@contextmanager
def in_catch_up_wait(lab, inv) -> Iterator[tuple[subprocess.Popen, float]]:
    """A `db switchover` stuck in its catch-up wait (web-02 held back, web-01 fenced): yields the
    run's process and when web-01 was fenced; web-02 is released (and a run still going killed)
    on the way out."""
    held = HeldReplica(lab)
    proc = subprocess.Popen(
        [str(FOOBAR_OPS), "db", "switchover", "-i", str(inv), "--json"],
        cwd=PROJECT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while read_only(lab)["web-01"] != "1":
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the switchover never fenced web-01"
            time.sleep(0.1)
        yield proc, time.monotonic()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        held.release(lab)


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_switchover_interrupted_in_its_catch_up_wait_leaves_the_old_primary_the_one_writer(pair, signum, code):
    lab, inv = pair["lab"], pair["inv"]
    before = inv.read_text()
    with in_catch_up_wait(lab, inv) as (proc, _):
        time.sleep(1)
        interrupted = time.monotonic()
        proc.send_signal(signum)  # Ctrl-C, or a cancelled CI job
        out, err = proc.communicate(timeout=60)
        took = time.monotonic() - interrupted
        print(f"interrupted switchover: ended {took:.1f} s after {signum.name} (exit {proc.returncode})")
        assert proc.returncode == code, err
        assert read_only(lab) == {"web-01": "0", "web-02": "1"}  # exactly one writer: the old primary
    assert inv.read_text() == before  # the inventory still names web-01
    assert leftovers(lab, "web-01") == "" and leftovers(lab, "web-02") == ""
    doc = wait_ok(inv)
    assert doc["ok"] and {n["host"]: n["role"] for n in doc["nodes"]} == {"web-01": "primary", "web-02": "replica"}
    recent = run_cli("records", "list", "--json", "--limit", "3").json()["rows"]
    run = next(r for r in recent if r["command"].startswith("foobar-ops db switchover"))
    steps = run_cli("records", "show", run["run_id"], "--json").json()["results"]
    restored = [r for r in steps if r["state_id"] == "mysql.role:restore"]
    assert restored and restored[0]["status"] == "changed", steps


def test_a_switchover_killed_in_its_catch_up_wait_is_settled_by_the_next_db_status(pair):
    lab, inv = pair["lab"], pair["inv"]
    before = inv.read_text()
    with in_catch_up_wait(lab, inv) as (proc, _):
        time.sleep(1)
        proc.kill()  # SIGKILL: no handler runs; only what is on the hosts remains
        proc.communicate(timeout=30)
        assert read_only(lab) == {"web-01": "1", "web-02": "1"}  # both read-only: settled next
        assert '"phase": "fenced"' in leftovers(lab, "web-01")
    started = time.monotonic()
    code, doc = status(inv)  # finds the marker, settles it under the run locks, then judges
    print(f"killed switchover: settled by db status in {time.monotonic() - started:.1f} s")
    assert code == 0 and doc["ok"], doc
    assert read_only(lab) == {"web-01": "0", "web-02": "1"} and inv.read_text() == before
    assert leftovers(lab, "web-01") == "" and leftovers(lab, "web-02") == ""
    recent = run_cli("records", "list", "--json", "--limit", "3").json()["rows"]
    settle = next(r for r in recent if "(settle)" in r["command"])
    steps = run_cli("records", "show", settle["run_id"], "--json").json()["results"]
    assert any(r["state_id"] == "mysql.role:restore" and r["status"] == "changed" for r in steps), steps


def test_apply_after_a_killed_switchover_refuses_naming_the_command_that_settles_it(pair):
    lab, inv = pair["lab"], pair["inv"]
    with in_catch_up_wait(lab, inv) as (proc, _):
        proc.kill()
        proc.communicate(timeout=30)
    done, doc = apply(inv, "mysql")
    assert done.code != 0
    refused = next(r for r in doc["results"] if r["host"] == "web-01" and r["id"] == "mysql:settled")
    assert refused["result"] is False and "a switchover (run " in refused["comment"]
    assert "from web-01 to web-02 (phase fenced) ended part-way" in refused["comment"]
    assert f"run `foobar-ops db status -i {inv}`, which finishes or undoes it" in refused["comment"]
    assert not [r for r in doc["results"] if r["changed"]]  # nothing changed by apply
    code, status_doc = status(inv)  # the command it names
    assert code == 0 and status_doc["ok"] and read_only(lab) == {"web-01": "0", "web-02": "1"}
    done, doc = apply(inv, "mysql")
    assert done.code == 0 and not [r for r in doc["results"] if r["changed"]]


def test_a_switchover_killed_with_its_machine_is_undone_by_the_guard_on_the_old_primary(pair):
    lab, inv = pair["lab"], pair["inv"]
    with in_catch_up_wait(lab, inv) as (proc, fenced):
        proc.kill()
        proc.communicate(timeout=30)
        # nobody runs anything: the guard (catch-up wait 10 s + 20 s) makes web-01 writable again
        while read_only(lab)["web-01"] != "0":
            assert time.monotonic() - fenced < 45, "the guard did not make web-01 writable again"
            time.sleep(0.5)
        print(f"killed switchover: the guard restored web-01 {time.monotonic() - fenced:.1f} s after it was fenced")
        assert read_only(lab)["web-02"] == "1"
        assert leftovers(lab, "web-01") == ""
    assert wait_ok(inv)["ok"]


def test_apply_refuses_to_make_a_fenced_primary_writable_while_its_peer_cannot_be_asked(pair):
    lab, inv = pair["lab"], pair["inv"]
    sql(lab, "web-01", "SET GLOBAL read_only = 1")  # fenced (as after a reboot)
    assert lab.run("web-02", ["systemctl", "stop", "mariadb"]).returncode == 0
    try:
        done, doc = apply(inv, "mysql")
        assert done.code != 0
        refused = next(r for r in doc["results"] if r["id"] == "mysql:primary")
        assert refused["result"] is False
        assert "cannot ask web-02" in refused["comment"] and "fail closed" in refused["comment"]
        assert f"foobar-ops db unfence -i {inv} --peer-gone web-02" in refused["comment"]
        assert not [r for r in doc["results"] if r["changed"]]  # nothing changed
        assert sql(lab, "web-01", "SELECT @@read_only") == [["1"]]
        assert lab.run("web-02", ["systemctl", "is-active", "mariadb"]).stdout.strip() != "active"
        # web-02 answers SSH: it is not gone, so the explicit command refuses too
        unfence = run_cli("db", "unfence", "-i", inv, "--peer-gone", "web-02", "--json", timeout=120)
        assert unfence.code != 0 and "it answers: it is not gone" in unfence.json()["error"]
        assert sql(lab, "web-01", "SELECT @@read_only") == [["1"]]
    finally:
        lab.run("web-02", ["systemctl", "start", "mariadb"])
    done, doc = apply(inv, "mysql")  # the peer answers again: web-01 is made writable
    assert done.code == 0, [r for r in doc["results"] if r["result"] is False]
    assert wait_ok(inv)["ok"]


def test_after_a_failover_an_old_primary_back_writable_takes_no_app_write_and_is_fenced(pair):
    lab, inv = pair["lab"], pair["inv"]
    lab.down(["web-01"])
    try:
        done = run_cli("db", "failover", "-i", inv, "--json", timeout=300)
        assert done.code == 0 and done.json()["new_primary"] == "web-02", done
    finally:
        lab.up(["web-01"])
    assert sql(lab, "web-01", "SELECT @@read_only") == [["1"]]  # it came back fenced
    count = sql(lab, "web-01", "SELECT COUNT(*) FROM items")[0][0]
    sql(lab, "web-01", "SET GLOBAL read_only = 0")  # a partition that heals: it is writable again
    healed = time.monotonic()
    writes = [post(json.dumps({"name": f"healed-{i}"}).encode()) for i in range(20)]
    print(f"old primary writable again: {len(writes)} writes in {time.monotonic() - healed:.1f} s, none to it")
    assert [w["status"] for w in writes] == [201] * 20 and {w["db_node"] for w in writes} == {"web-02"}
    assert sql(lab, "web-01", "SELECT COUNT(*) FROM items")[0][0] == count  # no app write landed there
    code, doc = status(inv)  # the next db status fences it before anything else
    assert sql(lab, "web-01", "SELECT @@read_only") == [["1"]]
    recent = run_cli("records", "list", "--json", "--limit", "3").json()["rows"]
    settle = next(r for r in recent if "(settle)" in r["command"])
    steps = run_cli("records", "show", settle["run_id"], "--json").json()["results"]
    assert any(
        r["host"] == "web-01" and r["state_id"] == "mysql.role:fence" and r["status"] == "changed" for r in steps
    )
    done, doc = apply(inv, "mysql")  # it rejoins as a replica of web-02 (it took no write)
    assert done.code == 0, [r for r in doc["results"] if r["result"] is False]
    assert wait_ok(inv)["ok"]


def test_secret_uploads_leave_nothing_behind_and_a_cut_one_goes_with_the_next_run(pair):
    lab, inv = pair["lab"], pair["inv"]
    from foobar_ops.core.ssh import Remote, stage
    from foobar_ops.stack import load_inventory

    password = open("/var/lib/foobar-ops/lab/secrets/mysql_repl_password").read().strip()
    for to in ("web-02", "web-01"):  # the demotions carry the replication password
        done = run_cli("db", "switchover", "-i", inv, "--to", to, "--json", timeout=300)
        assert done.code == 0 and done.json()["ok"], done
    for host in ("web-01", "web-02"):
        found = lab.run(host, ["sh", "-c", "ls -a /tmp | grep '^[.]foobar'; grep -rlsF -- \"$0\" /tmp", password])
        assert found.stdout.strip() == "", found.stdout  # no staged file, nothing holding the password
    # an upload whose command never ran (the connection was cut): private, and gone with the next run
    loaded = load_inventory(inv)
    with Remote(loaded.host("web-01"), loaded) as remote:
        folder = stage(remote, {"sql": b"SELECT 1"})
    mode = lab.run("web-01", ["stat", "-c", "%a %U", folder, f"{folder}/sql"]).stdout.split("\n")
    assert mode[0] == "700 ops" and mode[1] == "600 ops", mode
    done, doc = apply(inv, "mysql")  # takes web-01's run lock: what a dead run left goes
    assert done.code == 0
    assert lab.run("web-01", ["test", "-e", folder]).returncode != 0
