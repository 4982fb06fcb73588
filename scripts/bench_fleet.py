#!/usr/bin/env python3
"""Benchmark: a no-op apply of the demo states across a fleet of 3, 10, 20 and 40 lab hosts.

For each fleet size N it writes a bench inventory of N hosts `fleet-01..fleet-NN` (10.77.0.101 and
up, on the lab's bridge, apart from the main lab's hosts, which it never touches), boots them with
the lab machinery (`foobar-ops lab up -i BENCH_INVENTORY`; hosts of a smaller size stay up), applies
tests/lab/statefiles/demo.py once (the first apply, not timed), then times `foobar-ops apply
--states demo.py --json` end to end (tool start-up included) as a no-op, median of --runs. It
prints per size: the wall time, the engine's own time, the round trips per host (`hosts[].round_trips`
of the JSON), and the controller's CPU (user + system of the apply process and its children,
from getrusage(RUSAGE_CHILDREN)) in all and per host. At the end the fleet hosts are destroyed
(only fleet-*), unless --keep.
Usage: .venv/bin/python scripts/bench_fleet.py [--hosts 3,10,20,40] [--runs 3] [--parallel N] [--keep] [--reuse]
  [--login sudo|root|both]
(--login: time the lab's user, who becomes root through sudo, or root logged in directly, or both: the
default; sudo checks its password on every host in every run, a cost of its own)
(--parallel: write defaults.ssh.parallel into the bench inventory, else the inventory default;
--reuse: keep fleet hosts already running instead of rebuilding their disks). When the fleet would
exhaust the machine's inotify instances (fs.inotify.max_user_instances, 128 on Debian), the limit is
raised while the fleet runs and put back at the end.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from foobar_ops.core.inventory import load_inventory

PROJECT = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).parent / "foobar-ops")
STATES = PROJECT / "tests" / "lab" / "statefiles" / "demo.py"
LAB_INVENTORY = PROJECT / "inventories" / "lab.yml"
FIRST_ADDRESS = 101  # fleet-01 is 10.77.0.101; the main lab's hosts sit below .100
PREFIX = "fleet-"
INOTIFY_LIMIT = Path("/proc/sys/fs/inotify/max_user_instances")
#: inotify instances one booted lab host holds (systemd, journald, networkd, logind, udev...), with room
INOTIFY_PER_HOST = 10


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def foobar(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([CLI, *args], capture_output=True, text=True, cwd=PROJECT, stdin=subprocess.DEVNULL)
    if check and done.returncode:
        sys.exit(f"`foobar-ops {' '.join(args)}` failed (exit {done.returncode}):\n{done.stderr}{done.stdout}")
    return done


def inotify_in_use() -> int:
    """Inotify instances open on this machine now (the lab's containers all count as root's)."""
    count = 0
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            count += sum(1 for fd in fd_dir.iterdir() if os.readlink(fd) == "anon_inode:inotify")
        except OSError:
            continue
    return count


def make_inotify_room(hosts: int) -> int | None:
    """Raise fs.inotify.max_user_instances (for now, not across reboots) when booting hosts more
    lab hosts would exhaust it: every container's systemd holds several, all of them root's, and
    past the limit a host fails to boot ("Too many open files"), the main lab's hosts included.
    Return the old limit when it was raised, else None.

    hosts: how many more hosts are about to boot.
    """
    limit = int(INOTIFY_LIMIT.read_text())
    wanted = inotify_in_use() + INOTIFY_PER_HOST * hosts + 64
    if wanted <= limit:
        return None
    INOTIFY_LIMIT.write_text(f"{wanted}\n")
    say(f"fs.inotify.max_user_instances raised from {limit} to {wanted} for the fleet (restored at the end)")
    return limit


def fleet_names(count: int) -> list[str]:
    return [f"{PREFIX}{i:02d}" for i in range(1, count + 1)]


def fleet_inventory(count: int, parallel: int | None, login: str | None = None) -> dict:
    """The bench inventory of count fleet hosts: the main lab's lab section, defaults and secrets,
    the demo token, and hosts at addresses no main lab host has; login: log in as this user
    (default: the lab's, which becomes root with sudo)."""
    lab = yaml.safe_load(LAB_INVENTORY.read_text())
    network = ipaddress.ip_network(lab["lab"]["network"], strict=False)
    taken = {str(h["address"]) for h in lab["hosts"].values()} | {str(next(network.hosts()))}
    hosts = {}
    for i, name in enumerate(fleet_names(count)):
        address = network.network_address + FIRST_ADDRESS + i
        if address not in network or address == network.broadcast_address or str(address) in taken:
            sys.exit(f"{name}: no free address for it in {network} (at {address}; taken: {', '.join(sorted(taken))})")
        hosts[name] = {"address": str(address)}
    defaults = lab["defaults"]
    if login is not None:
        defaults["user"] = login
    if parallel is not None:
        defaults.setdefault("ssh", {})["parallel"] = parallel
    return {
        "lab": lab["lab"],
        "defaults": defaults,
        "secrets": {**lab.get("secrets", {}), "demo_token": "env:FOOBAR_DEMO_TOKEN"},
        "hosts": hosts,
        "groups": {"fleet": list(hosts)},
    }


def apply(inventory: Path, journal: Path) -> tuple[float, float, dict]:
    """Run one `apply --states demo.py --json`; return wall seconds, controller CPU seconds (the
    apply process and its children, user + system), and its JSON."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = foobar(
        "apply", "-i", str(inventory), "--states", str(STATES), "--journal", str(journal), "--json", check=False
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    try:
        doc = json.loads(done.stdout)
    except ValueError:
        sys.exit(f"apply printed no JSON (exit {done.returncode}):\n{done.stderr}")
    bad = [h["host"] for h in doc["hosts"] if h["outcome"] != "ok"]
    if done.returncode or bad or doc["summary"].get("failed"):
        sys.exit(f"apply failed (exit {done.returncode}; hosts not ok: {', '.join(bad) or 'none'}):\n{done.stderr}")
    return wall, cpu, doc


def span(values: list[int]) -> str:
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}-{high}"


def measure(count: int, work: Path, runs: int, parallel: int | None, logins: list[str]) -> list[dict]:
    """Boot a fleet of count hosts, apply once, then for each login time runs no-op applies;
    return the figures, one row per login."""
    inventory = work / f"fleet-{count}.yml"
    inventory.write_text(yaml.safe_dump(fleet_inventory(count, parallel), sort_keys=False))
    started = time.perf_counter()
    foobar("lab", "up", "-i", str(inventory))
    say(f"{count} hosts: up in {time.perf_counter() - started:.1f} s")
    journal = work / "journal.sqlite"
    wall, _, doc = apply(inventory, journal)
    say(f"{count} hosts: first apply {wall:.2f} s, {doc['summary']['changed']} changed")
    rows = []
    for login in logins:
        logged = work / f"fleet-{count}-{login}.yml"
        logged.write_text(yaml.safe_dump(fleet_inventory(count, parallel, None if login == "sudo" else login)))
        rows.append(timed(count, logged, journal, runs, login))
    return rows


def timed(count: int, inventory: Path, journal: Path, runs: int, login: str) -> dict:
    """Time runs no-op applies of a fleet that is up and applied; return the figures."""
    walls, cpus, engine, trips = [], [], [], []
    for _ in range(runs):
        wall, cpu, doc = apply(inventory, journal)
        if doc["summary"]["changed"]:
            sys.exit(f"{count} hosts: a no-op re-apply changed {doc['summary']['changed']} states: not idempotent")
        if len(doc["hosts"]) != count:
            sys.exit(f"{count} hosts: the apply reported {len(doc['hosts'])} hosts")
        walls.append(wall)
        cpus.append(cpu)
        engine.append(doc["summary"]["seconds"])
        trips += [h["round_trips"] for h in doc["hosts"]]
    cpu = statistics.median(cpus)
    row = {
        "load": os.getloadavg()[0],
        "login": login,
        "hosts": count,
        "wall_s": statistics.median(walls),
        "wall_min_s": min(walls),
        "engine_s": statistics.median(engine),
        "round_trips": span(trips),
        "cpu_ms_per_host": 1000 * cpu / count,
        "cpu_s": cpu,
    }
    shown = ", ".join(f"{w:.2f} s ({c:.2f} s CPU)" for w, c in zip(walls, cpus, strict=True))
    say(f"{count} hosts ({login}): no-op applies {shown}")
    return row


def table(rows: list[dict], runs: int, parallel: int) -> str:
    """The figures, one row per fleet size; `added` is the CPU each host above the previous size
    cost (the tool's start-up, paid once per run, left out)."""
    head = (
        f"{'hosts':>5}  {'login':>5}  {'wall median (s)':>15}  {'wall min (s)':>12}  {'engine (s)':>10}  "
        f"{'round trips/host':>16}  {'CPU ms/host':>11}  {'CPU total (s)':>13}  {'added ms/host':>13}  {'load':>5}"
    )
    lines = [
        f"no-op apply of tests/lab/statefiles/demo.py (10 states), median of {runs}; fan-out cap {parallel}; "
        "wall: the command end to end, start-up included",
        head,
    ]
    previous: dict[str, dict] = {}
    for r in rows:
        before = previous.get(r["login"])
        added = (
            "-" if before is None else f"{1000 * (r['cpu_s'] - before['cpu_s']) / (r['hosts'] - before['hosts']):.0f}"
        )
        lines.append(
            f"{r['hosts']:>5}  {r['login']:>5}  {r['wall_s']:>15.2f}  {r['wall_min_s']:>12.2f}  "
            f"{r['engine_s']:>10.2f}  {r['round_trips']:>16}  {r['cpu_ms_per_host']:>11.0f}  "
            f"{r['cpu_s']:>13.2f}  {added:>13}  "
            f"{r['load']:>5.2f}"
        )
        previous[r["login"]] = r
    lines.append(
        "CPU: user + system of the apply process and its children; CPU ms/host: all of it over the hosts (the "
        "start-up included); added ms/host: over the hosts added since the previous size; load: 1-minute load "
        "average after the size's runs; login sudo: the lab's user, root through sudo (its password checked on "
        "every host, every run), root: logged in as root"
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", default="3,10,20,40", help="fleet sizes, comma-separated (default 3,10,20,40)")
    parser.add_argument("--runs", type=int, default=3, help="no-op applies to time per size (the median is shown)")
    parser.add_argument("--parallel", type=int, help="defaults.ssh.parallel of the bench inventory")
    parser.add_argument("--keep", action="store_true", help="leave the fleet hosts up at the end")
    parser.add_argument("--reuse", action="store_true", help="keep fleet hosts that are already running")
    parser.add_argument(
        "--login",
        choices=("sudo", "root", "both"),
        default="both",
        help="time the lab's user with sudo, root, or both (default both)",
    )
    args = parser.parse_args()
    try:
        sizes = sorted({int(n) for n in args.hosts.split(",")})
    except ValueError:
        parser.error(f"--hosts {args.hosts!r}: give whole numbers such as 3,10,20,40")
    if not sizes or sizes[0] < 1 or args.runs < 1:
        parser.error("--hosts needs sizes of at least 1 and --runs at least 1")
    logins = ["sudo", "root"] if args.login == "both" else [args.login]
    os.environ.setdefault("FOOBAR_DEMO_TOKEN", "bench-token")
    work = Path(tempfile.mkdtemp(prefix="foobar-bench-fleet-"))
    largest = work / "fleet-all.yml"
    largest.write_text(yaml.safe_dump(fleet_inventory(sizes[-1], args.parallel), sort_keys=False))
    names = fleet_names(sizes[-1])
    cap = load_inventory(largest).parallel
    if not args.reuse:  # fresh disks: the first apply is a first apply
        foobar("lab", "destroy", "-i", str(largest), *names)
    rows = []
    old_limit = make_inotify_room(sizes[-1])
    try:
        for count in sizes:
            rows += measure(count, work, args.runs, args.parallel, logins)
    finally:
        if args.keep:
            say(f"fleet hosts kept up: {names[0]}..{names[-1]} (inventory {largest})")
            if old_limit is not None:
                say(f"fs.inotify.max_user_instances stays raised while they run (it was {old_limit})")
        else:
            foobar("lab", "destroy", "-i", str(largest), *names, check=False)
            say(f"fleet hosts destroyed: {names[0]}..{names[-1]}")
            if old_limit is not None and int(INOTIFY_LIMIT.read_text()) > old_limit:
                INOTIFY_LIMIT.write_text(f"{old_limit}\n")
                say(f"fs.inotify.max_user_instances restored to {old_limit}")
    print(table(rows, args.runs, cap))
    return 0


if __name__ == "__main__":
    sys.exit(main())
