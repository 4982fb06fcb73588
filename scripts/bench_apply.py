#!/usr/bin/env python3
"""Benchmark: a first apply and a no-op re-apply of the demo stack on all lab hosts.

Rebuilds the lab hosts' disks first (not timed), then times `foobar-ops apply` end to end (tool
start-up included) and prints states, changes, round trips per host and seconds, and the bytes one
no-op apply moves per host, counted two ways: the SSH stream itself (the run's sockets, as the
kernel counts them: `ssh_bytes` in `apply --json`), and every byte on each host's veth on this
machine (both directions, TCP/IP headers and other traffic included), less the bytes the same host
moved in an idle interval of the same length just before (health checks, replication).
Usage: .venv/bin/python scripts/bench_apply.py [--runs N] [--stack] [--reuse]
(--stack: the inventory's roles, i.e. the whole foobar.com stack, instead of the demo state file;
--reuse: keep the running lab hosts instead of rebuilding them)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).parent / "foobar-ops")
STATES = PROJECT / "tests" / "lab" / "statefiles" / "demo.py"


def foobar(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, *args], capture_output=True, text=True, cwd=PROJECT)


def timed_apply(inventory: Path, journal: Path, stack: bool) -> tuple[float, dict]:
    started = time.perf_counter()
    what = [] if stack else ["--states", str(STATES)]
    done = foobar("apply", "-i", str(inventory), *what, "--journal", str(journal), "--json")
    seconds = time.perf_counter() - started
    if not done.stdout:
        sys.exit(f"apply failed: {done.stderr}")
    return seconds, json.loads(done.stdout)


def veth_bytes(hosts: list[str]) -> dict[str, int]:
    """Return bytes received plus sent so far on each lab host's veth (its only link)."""
    out = {}
    for host in hosts:
        stats = Path("/sys/class/net") / f"vb-{host}"[:15] / "statistics"
        out[host] = int((stats / "rx_bytes").read_text()) + int((stats / "tx_bytes").read_text())
    return out


def noop_bytes(inventory: Path, journal: Path, stack: bool, hosts: list[str]) -> dict[str, int]:
    """Return the bytes one no-op apply moved per host, less the idle traffic of as long a time."""
    idle_start = veth_bytes(hosts)
    started = time.perf_counter()
    _, doc = timed_apply(inventory, journal, stack)  # warm-up, and the interval to match
    took = time.perf_counter() - started
    idle_start, idle_end = veth_bytes(hosts), (time.sleep(took), veth_bytes(hosts))[1]
    before = veth_bytes(hosts)
    timed_apply(inventory, journal, stack)
    after = veth_bytes(hosts)
    return {h: (after[h] - before[h]) - (idle_end[h] - idle_start[h]) for h in hosts}


def line(label: str, seconds: float, doc: dict) -> str:
    s = doc["summary"]
    per_host = s["total"] // max(1, len(doc["round_trips"]))
    trips = ", ".join(f"{h} {n}" for h, n in doc["round_trips"].items())
    return (
        f"{label:<16} {seconds:6.2f} s wall (start-up included)  engine {s['seconds']:.2f} s  states/host {per_host}  "
        f"changed {s['changed']}  failed {s['failed']}  round trips: {trips}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="no-op re-applies to time")
    parser.add_argument("--stack", action="store_true", help="apply the roles (the whole stack)")
    parser.add_argument("--reuse", action="store_true", help="keep the running lab hosts")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="foobar-bench-"))
    data = yaml.safe_load((PROJECT / "inventories" / "lab.yml").read_text())
    data.setdefault("secrets", {})["demo_token"] = "env:FOOBAR_DEMO_TOKEN"
    inventory = work / "lab.yml"
    inventory.write_text(yaml.safe_dump(data, sort_keys=False))
    os.environ.setdefault("FOOBAR_DEMO_TOKEN", "bench-token")
    for step in (["lab", "up"],) if args.reuse else (["lab", "destroy"], ["lab", "up"]):
        if foobar(*step).returncode:
            sys.exit(f"`foobar-ops {' '.join(step)}` failed")
    seconds, doc = timed_apply(inventory, work / "journal.sqlite", args.stack)
    print(line("first apply", seconds, doc))
    noop = []
    ssh: dict[str, list[int]] = {}
    for _ in range(args.runs):
        seconds, doc = timed_apply(inventory, work / "journal.sqlite", args.stack)
        noop.append(seconds)
        if doc["summary"]["changed"]:
            sys.exit("a no-op re-apply changed something: not idempotent")
        for host in doc["hosts"]:
            if host.get("ssh_bytes") is not None:
                ssh.setdefault(host["host"], []).append(host["ssh_bytes"])
    print(line(f"no-op x{args.runs}", statistics.median(noop), doc) + f"  (median; min {min(noop):.2f} s)")
    print(
        "no-op SSH bytes per host (the SSH stream both ways, as the run's own sockets counted it; median): "
        + ", ".join(f"{h} {statistics.median(n) / 1024:.1f} KB" for h, n in ssh.items())
    )
    moved = noop_bytes(inventory, work / "journal.sqlite", args.stack, list(doc["round_trips"]))
    print(
        "no-op bytes on each host's link (TCP/IP headers and other traffic included, idle traffic "
        "subtracted): " + ", ".join(f"{h} {n / 1024:.1f} KB" for h, n in moved.items())
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
