"""Hostile input on real hosts: commands refused for an empty host pattern, a load balancer name
that is a path, or a load test parameter that would add a line to a unit file run nothing on any
host (read-only: the hosts are only looked at)."""

from __future__ import annotations

import uuid

from foobar_ops.core.inventory import load_inventory
from foobar_ops.stack.lb import HAProxy
from tests.conftest import LAB_INVENTORY, run_cli
from tests.lab.helpers import apply

HOSTS = ("lb-01", "lb-02", "web-01", "web-02", "loadgen-01")


def on_host(host: str, script: str) -> str:
    done = run_cli("lab", "ssh", host, "--", "sh", "-c", script, timeout=60)
    return done.out


def test_refused_commands_reach_no_host(lab):
    done, _ = apply()  # the stack as the inventory says (an earlier test may have left bare hosts)
    assert done.code == 0, done
    with HAProxy(load_inventory(LAB_INVENTORY), record=False) as lb:
        assert lb.wait_all_up(timeout=60) == {"web-01": "UP", "web-02": "UP"}
    mark = f"/tmp/foobar-hostile-{uuid.uuid4().hex[:8]}"
    inv = ["-i", str(LAB_INVENTORY)]
    refused = [
        ["run", *inv, "--hosts", "", "--", "touch", mark],
        ["run", *inv, "--hosts", "lb-01,", "--", "touch", mark],
        ["lb", "ready", "web-01", *inv, "--backend", "../../.."],
        ["lb", "maint", f"../../..{mark}", *inv],
        ["loadtest", "schedule", "hostile", *inv, "--run-time", f"20s\nExecStartPre=/bin/touch {mark}"],
        ["loadtest", "schedule", "hostile", *inv, "--spawn-rate", "nan"],
    ]
    for argv in refused:
        done = run_cli(*argv, timeout=60)
        lines = done.err.strip().splitlines()
        assert done.code == 2 and len(lines) == 1 and "Traceback" not in done.err, (argv, done)
    for host in HOSTS:
        found = on_host(host, f"ls -d {mark} /etc/systemd/system/foobar-loadtest-hostile.* 2>/dev/null; true")
        assert found.strip() == "", (host, found)
    status = run_cli("lb", "stat", "-i", LAB_INVENTORY, "--json", timeout=60).json()["rows"]
    assert {r["svname"]: r["status"] for r in status if r["svname"] in ("web-01", "web-02")} == {
        "web-01": "UP",
        "web-02": "UP",
    }
