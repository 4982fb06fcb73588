#!/usr/bin/env python3
"""Benchmark: how soon `foobar-ops apply` reaches its first host, and `foobar-ops --version`.

Starts `foobar-ops apply -i INVENTORY --json` (a no-op on a deployed lab) N times, each in a fresh
process that records, through Python's audit hooks, when it first calls connect() to an address of
the inventory; the time counts from just before the process was spawned (interpreter start-up
included). Prints, as medians and minimums: the first connection, the end of the command, and the
wall time of `foobar-ops --version`. The applies must change nothing (a run that changed something
or failed stops the benchmark).
Usage: .venv/bin/python scripts/bench_startup.py [--runs N] [--inventory inventories/lab.yml]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).parent / "foobar-ops")

#: run in the child: the command line itself, with a hook noting the first connect() to a host
CHILD = """
import json, os, sys, time
spawned = float(os.environ["FOOBAR_BENCH_SPAWNED"])
addresses = set(json.loads(os.environ["FOOBAR_BENCH_ADDRESSES"]))
first = []
def hook(event, args):
    if event == "socket.connect" and not first and isinstance(args[1], tuple) and args[1][0] in addresses:
        first.append(time.time() - spawned)
sys.addaudithook(hook)
from foobar_ops.cli.main import main
code = main(sys.argv[1:])
sys.stderr.write("BENCH " + json.dumps({"first": first[0] if first else None, "end": time.time() - spawned}) + "\\n")
sys.exit(code)
"""


def one(inventory: Path, addresses: list[str]) -> dict:
    env = dict(os.environ, FOOBAR_BENCH_ADDRESSES=json.dumps(addresses), FOOBAR_BENCH_SPAWNED=repr(time.time()))
    done = subprocess.run(
        [sys.executable, "-c", CHILD, "apply", "-i", str(inventory), "--json"],
        capture_output=True,
        text=True,
        cwd=PROJECT,
        env=env,
    )
    said = [ln for ln in done.stderr.splitlines() if ln.startswith("BENCH ")]
    if done.returncode or not said:
        sys.exit(f"apply failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    report = json.loads(done.stdout)
    if report["summary"]["changed"]:
        sys.exit(f"the apply changed {report['summary']['changed']} states: deploy the stack first")
    figures: dict = json.loads(said[-1][6:])
    if figures["first"] is None:
        sys.exit("the apply connected to no host of the inventory")
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9, help="applies to time (medians are shown)")
    parser.add_argument("--inventory", default="inventories/lab.yml", help="a deployed inventory")
    args = parser.parse_args()
    inventory = (PROJECT / args.inventory).resolve()
    addresses = sorted({str(h["address"]) for h in yaml.safe_load(inventory.read_text())["hosts"].values()})
    # the project's modules compiled once, as an installed package has them (not on every start)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(PROJECT / "foobar_ops")], check=True)
    one(inventory, addresses)  # warm: the page cache, the hosts' sshd
    runs = [one(inventory, addresses) for _ in range(args.runs)]
    versions = []
    for _ in range(args.runs):
        started = time.perf_counter()
        subprocess.run([CLI, "--version"], check=True, capture_output=True)
        versions.append(time.perf_counter() - started)
    first = [r["first"] for r in runs]
    end = [r["end"] for r in runs]
    print(f"foobar-ops apply -i {args.inventory} (a no-op), {args.runs} runs, from the process's spawn:")
    print(f"  first connection to a host  median {statistics.median(first):.3f} s  min {min(first):.3f} s")
    print(f"  command done                median {statistics.median(end):.3f} s  min {min(end):.3f} s")
    print(f"foobar-ops --version          median {statistics.median(versions):.3f} s  min {min(versions):.3f} s")
    print(f"load average (1 min) after: {os.getloadavg()[0]:.2f}; CPUs: {os.cpu_count()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
