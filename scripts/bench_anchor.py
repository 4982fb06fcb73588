#!/usr/bin/env python3
"""Benchmark: a no-op apply of foobar_ops against pyinfra 3.10 (the anchor), same ops, same hosts.

The ops are 13 per host (scripts/bench_states.py for foobar_ops, scripts/bench_anchor_deploy.py for
pyinfra) on lb-01, web-01 and web-02, acting only on things of their own (a user and a group
`fobench`, /srv/fobench) and on things the lab image has already (curl, procps, sshd), so they run
next to the stack and the tests that use it. Both tools are first applied once each (not timed;
the second must find nothing to change: the two agree on every byte, owner and mode), then N rounds
time one no-op apply of each, end to end (the tool's start-up included), the order alternating from
round to round. Every timed run is checked to have changed nothing: foobar_ops' --json results
have no changed state, pyinfra's results table has no success (pyinfra counts an op that changed
something as a success and one that did not as "No Change") and no error, and both exit 0.
Prints medians and minimums, the ratio foobar_ops/pyinfra, foobar_ops' round trips per host and
the load average. The bench ops are removed at the end (one command per host) unless --keep.
The lab is shared: a foobar_ops apply that another run's lock refuses (it changes nothing) is tried
again a second later and never timed; the count of such retries is printed.

pyinfra is run from its own virtual environment, never the project's: --pyinfra PATH, else
/tmp/pyi/bin/pyinfra when it is 3.10, else CACHE/anchor-venv (made with pip on first use).
Usage: .venv/bin/python scripts/bench_anchor.py [--runs N] [--keep] [--pyinfra PATH]
  [--inventory PATH --hosts NAME,NAME,...]
(--inventory and --hosts: other hosts than the lab's three, e.g. a fleet of scripts/bench_fleet.py
kept up with --keep: the same comparison at 20 or 40 hosts)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from foobar_ops.core.inventory import load_inventory
from foobar_ops.core.paths import cache_dir

PROJECT = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).parent / "foobar-ops")
INVENTORY = PROJECT / "inventories" / "lab.yml"
STATES = PROJECT / "scripts" / "bench_states.py"
DEPLOY = PROJECT / "scripts" / "bench_anchor_deploy.py"
HOSTS = ("lb-01", "web-01", "web-02")
ANCHOR = "pyinfra==3.10.*"
PREINSTALLED = Path("/tmp/pyi/bin/pyinfra")
ANCHOR_VERSION = re.compile(r"\bv?3\.10\.\d+")
CLEANUP = (
    "rm -rf /srv/fobench; "
    "if getent passwd fobench >/dev/null; then userdel fobench; fi; "
    "if getent group fobench >/dev/null; then groupdel fobench; fi"
)
LOCK_WAIT = 300  # the lab is shared: the untimed first apply waits for another run's lock
LOCK_RETRIES = 120  # a timed apply refused by another run's lock is tried again, 1 s apart
RETRIED = [0]  # how many applies were refused by a lock and tried again
ANSI = re.compile(r"\x1b\[[0-9;]*m")

# The pyinfra inventory: the sudo password is read from the lab's own secret when pyinfra loads
# it, so it is never written anywhere nor passed on a command line.
INVENTORY_CODE = '''\
"""pyinfra inventory for scripts/bench_anchor.py (written per run; holds no secret)."""

import os as _os
from pathlib import Path as _Path


def _secret(ref):
    scheme, _, target = ref.partition(":")
    if scheme == "env":
        return _os.environ[target]
    text = _Path(target).read_text(encoding="utf-8")
    return text[:-1] if text.endswith("\\n") else text


lab = [
    (name, {**data, "_sudo": True, "_sudo_password": _secret(ref)})
    for name, data, ref in @HOSTS@
]
'''


def anchor_pyinfra(explicit: str | None) -> Path:
    """Return the pyinfra 3.10 command to run, making its virtual environment when none exists."""
    if explicit:
        return Path(explicit)
    venv = cache_dir() / "anchor-venv"
    for candidate in (PREINSTALLED, venv / "bin" / "pyinfra"):
        if candidate.exists():
            out = subprocess.run([str(candidate), "--version"], capture_output=True, text=True)
            if out.returncode == 0 and ANCHOR_VERSION.search(out.stdout + out.stderr):
                return candidate
    print(f"making pyinfra's virtual environment: {venv} ({ANCHOR})", flush=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    for step in (
        ["python3", "-m", "venv", "--clear", str(venv)],
        [str(venv / "bin" / "pip"), "install", "-q", ANCHOR],
    ):
        if subprocess.run(step).returncode:
            sys.exit(f"`{' '.join(step)}` failed")
    return venv / "bin" / "pyinfra"


def write_pyinfra_inventory(path: Path) -> None:
    """Write a pyinfra inventory for HOSTS with the lab inventory's user, key, known_hosts and sudo."""
    inventory = load_inventory(str(INVENTORY))
    hosts = []
    for name in HOSTS:
        host = inventory.host(name)
        if host.sudo_password is None or host.ssh.identity is None or host.ssh.known_hosts is None:
            sys.exit(f"{INVENTORY}: {name} needs an ssh identity, a known_hosts file and a sudo_password")
        data = {
            "ssh_hostname": host.address,
            "ssh_port": host.port,
            "ssh_user": host.user,
            "ssh_key": str(host.ssh.identity),
            "ssh_known_hosts_file": str(host.ssh.known_hosts),
            "ssh_strict_host_key_checking": "yes",
        }
        if "fobench_motto" in host.vars:  # the templated file's variable, as foobar_ops sees it
            data["fobench_motto"] = str(host.vars["fobench_motto"])
        hosts.append((name, data, host.sudo_password.ref))
    path.write_text(INVENTORY_CODE.replace("@HOSTS@", repr(hosts)))


def foobar_apply(journal: Path, wait: int | None = None) -> tuple[float, dict]:
    """Apply the bench states with foobar-ops, end to end; return (seconds, its --json document).

    wait: seconds to wait for another run's lock on a host (the untimed first apply). A timed
    apply that finds a host locked by another run (the lab is shared) changed nothing and is not
    a sample: it is tried again, up to LOCK_RETRIES times, and only a complete apply is timed.
    """
    args = [CLI, "apply", "-i", str(INVENTORY), "--hosts", ",".join(HOSTS), "--states", str(STATES)]
    args += [] if wait is None else ["--wait", str(wait)]
    for _ in range(LOCK_RETRIES):
        started = time.perf_counter()
        done = subprocess.run([*args, "--json", "--journal", str(journal)], capture_output=True, text=True, cwd=PROJECT)
        seconds = time.perf_counter() - started
        if done.returncode == 2 and " is locked by run " in done.stderr and "this run changed nothing" in done.stderr:
            RETRIED[0] += 1
            time.sleep(1)
            continue
        break
    try:
        doc = json.loads(done.stdout)
    except ValueError:
        sys.exit(f"foobar-ops apply failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")
    bad = [h["host"] for h in doc["hosts"] if h["outcome"] != "ok"]
    failed = [f"{r['host']} {r['id']}" for r in doc["results"] if r["status"] in ("failed", "not_run")]
    if done.returncode or bad or failed:
        sys.exit(f"foobar-ops apply failed (exit {done.returncode}): hosts {bad}, states {failed}")
    return seconds, doc


def pyinfra_apply(pyinfra: Path, inventory: Path) -> tuple[float, dict[str, int]]:
    """Run the deploy with pyinfra, end to end; return (seconds, its grand total: hosts, success,
    error, no_change, where an op that changed something counts as a success)."""
    started = time.perf_counter()
    done = subprocess.run(
        [str(pyinfra), "-y", str(inventory), str(DEPLOY)], capture_output=True, text=True, cwd=PROJECT
    )
    seconds = time.perf_counter() - started
    total = None
    for line in ANSI.sub("", done.stdout + done.stderr).splitlines():
        cells = line.split()
        if cells[:2] == ["Grand", "total"] and len(cells) == 6:
            counts = [0 if c == "-" else int(c) for c in cells[2:]]
            total = dict(zip(("hosts", "success", "error", "no_change"), counts, strict=True))
    if done.returncode or total is None or total["error"]:
        tail = (done.stdout + done.stderr).strip()[-2000:]
        sys.exit(f"pyinfra failed (exit {done.returncode}; totals {total}):\n{tail}")
    return seconds, total


def changed_states(doc: dict) -> list[str]:
    return [f"{r['host']} {r['id']}" for r in doc["results"] if r.get("changed")]


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def cleanup(journal: Path) -> None:
    """Remove the bench ops' user, group and folder: one command per host."""
    done = subprocess.run(
        [
            CLI,
            "run",
            "-i",
            str(INVENTORY),
            "--hosts",
            ",".join(HOSTS),
            "--sudo",
            "--journal",
            str(journal),
            "--",
            CLEANUP,
        ],
        capture_output=True,
        text=True,
        cwd=PROJECT,
    )
    if done.returncode:
        print(f"cleanup failed (exit {done.returncode}): {done.stdout.strip()} {done.stderr.strip()}", file=sys.stderr)
    else:
        print("removed the fobench user, group and /srv/fobench from " + ", ".join(HOSTS))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed no-op rounds (one apply of each tool)")
    parser.add_argument("--keep", action="store_true", help="leave the bench ops on the hosts at the end")
    parser.add_argument("--pyinfra", help="the pyinfra 3.10 command (default: /tmp/pyi, else the cache's venv)")
    parser.add_argument("--inventory", help="the foobar_ops inventory of the hosts (default: the lab's)")
    parser.add_argument("--hosts", help="the hosts, comma-separated (default: lb-01,web-01,web-02)")
    args = parser.parse_args()
    global INVENTORY, HOSTS
    if args.inventory:
        INVENTORY = Path(args.inventory).resolve()
    if args.hosts:
        HOSTS = tuple(h for h in args.hosts.split(",") if h)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    pyinfra = anchor_pyinfra(args.pyinfra)
    version = subprocess.run([str(pyinfra), "--version"], capture_output=True, text=True).stdout.strip()
    version = version.replace("pyinfra: ", "pyinfra ")
    work = Path(tempfile.mkdtemp(prefix="foobar-bench-anchor-"))
    journal = work / "journal.sqlite"
    inventory = work / "pyinfra_inventory.py"
    try:
        write_pyinfra_inventory(inventory)
        # first applies, not timed: foobar_ops makes the state, pyinfra must then find it as it wants it
        _, doc = foobar_apply(journal, wait=LOCK_WAIT)
        states = len(doc["results"]) // len(HOSTS)
        print(f"first apply: foobar_ops {len(changed_states(doc))} changed of {len(doc['results'])} states")
        _, total = pyinfra_apply(pyinfra, inventory)
        print(
            f"first apply: {version}, after foobar_ops: {total['success']} changed, "
            f"{total['no_change']} unchanged of {total['hosts']} ops"
        )
        if total["success"]:
            print("  (pyinfra changed what foobar_ops had made: the two tools disagree)", file=sys.stderr)
            return 1
        times: dict[str, list[float]] = {"foobar_ops": [], "pyinfra": []}
        trips: dict[str, list[int]] = {}
        pyinfra_ops = 0
        load_before = loadavg()
        for round_no in range(args.runs):
            order = ("foobar_ops", "pyinfra") if round_no % 2 == 0 else ("pyinfra", "foobar_ops")
            for tool in order:
                if tool == "foobar_ops":
                    seconds, doc = foobar_apply(journal)
                    if changed_states(doc):
                        sys.exit(f"a foobar_ops no-op changed {changed_states(doc)}")
                    for host in doc["hosts"]:
                        trips.setdefault(host["host"], []).append(host["round_trips"])
                else:
                    seconds, total = pyinfra_apply(pyinfra, inventory)
                    if total["success"]:
                        sys.exit(f"a pyinfra no-op changed something: {total}")
                    pyinfra_ops = total["hosts"] // len(HOSTS)
                times[tool].append(seconds)
        load_after = loadavg()
    finally:
        if not args.keep:
            cleanup(journal)
        shutil.rmtree(work, ignore_errors=True)
    fo, py = statistics.median(times["foobar_ops"]), statistics.median(times["pyinfra"])
    print(
        f"\nno-op apply, {len(HOSTS)} hosts ({', '.join(HOSTS) if len(HOSTS) <= 5 else HOSTS[0] + '..' + HOSTS[-1]}), "
        f"{states} states per host, "
        f"{args.runs} round(s) (order alternating), wall time end to end, start-up included:"
    )
    print(f"  {'tool':<18} {'median':>8} {'min':>8}  changed")
    for tool, label in (("foobar_ops", "foobar_ops"), ("pyinfra", version)):
        print(f"  {label:<18} {statistics.median(times[tool]):7.2f}s {min(times[tool]):7.2f}s  0 every run")
    print(f"  ratio foobar_ops/pyinfra (medians): {fo / py:.2f}")
    if RETRIED[0]:
        print(f"  foobar_ops applies refused by another run's lock and tried again (not timed): {RETRIED[0]}")
    print(
        f"  pyinfra ops per host on a no-op: {pyinfra_ops} (its guarded command is left out when the"
        " file it creates exists; the check still runs)"
    )
    print(
        "  foobar_ops round trips per host: "
        + ", ".join(f"{h} {'/'.join(map(str, sorted(set(n))))}" for h, n in trips.items())
    )
    print(
        f"  load average (1, 5, 15 min) before {load_before}, after {load_after}; CPUs: {len(os.sched_getaffinity(0))}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
