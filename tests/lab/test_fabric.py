"""The Fabric tasks on the lab: `fab lb.drain web-01` drains it on both load balancers while the
site keeps answering, `fab lb.ready web-01` puts it back, and both are journaled as fab runs."""

from __future__ import annotations

import json
import subprocess

from foobar_ops import lb_stat, load_inventory
from foobar_ops.stack.lb import HAProxy
from tests.conftest import FOOBAR_OPS, LAB_INVENTORY, PROJECT, run_cli
from tests.lab.helpers import apply, get

FAB = FOOBAR_OPS.parent / "fab"


def fab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(FAB), *args], cwd=PROJECT, capture_output=True, text=True, timeout=300)


def statuses() -> dict[str, set[str]]:
    inv = load_inventory(LAB_INVENTORY)
    found: dict[str, set[str]] = {}
    for row in lb_stat(inv).to_dict("records"):
        if row["pxname"] == "bk_web" and row["svname"] not in ("FRONTEND", "BACKEND"):
            found.setdefault(row["svname"], set()).add(str(row["status"]))
    return found


def test_fab_drains_and_readies_a_server_on_the_lab(lab):
    done, _ = apply()
    assert done.code == 0, done
    try:
        drained = fab("lb.drain", "web-01", "-i", str(LAB_INVENTORY))
        assert drained.returncode == 0, drained.stderr
        assert "web-01 drained in" in drained.stdout
        assert statuses()["web-01"] == {"DRAIN"} and statuses()["web-02"] == {"UP"}
        assert {get("/health")["served_by"] for _ in range(6)} == {"web-02"}  # the site answers from web-02
        shown = fab("lb.status")
        assert shown.returncode == 0 and "bk_web/web-01: DRAIN" in shown.stdout
        readied = fab("lb.ready", "web-01")
        assert readied.returncode == 0, readied.stderr
        assert statuses()["web-01"] == {"UP"}
    finally:
        with HAProxy(load_inventory(LAB_INVENTORY), record=False) as lb:
            if lb.servers()["web-01"]["status"] != "UP":
                run_cli("lb", "ready", "web-01", "-i", LAB_INVENTORY)
    rows = json.loads(run_cli("records", "list", "--limit", "10", "--json").out)["rows"]
    commands = [r["command"] for r in rows]
    assert any(c.startswith("fab lb.drain web-01") for c in commands), commands
    assert any(c.startswith("fab lb.ready web-01") for c in commands), commands
