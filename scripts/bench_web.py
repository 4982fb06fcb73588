#!/usr/bin/env python3
"""Benchmark: the request path of foobar.com on the lab, through the load balancer and direct to
one web server's Nginx, with Debian's wrk (a client that is not ours).

For each path (Nginx's static file, the home page, the items API read, an item POST) it prints
requests per second, p50/p95/p99, errors, the LB/direct ratio, and the load generator's CPU use
during the run (wrk's own, from /proc: when it nears 100% of a core, wrk is the bottleneck).
A few seconds of unmeasured load come first (--warmup), so that the app's connection pools are
filled and a run does not measure their set-up. The stack must be deployed (`make demo` or
`foobar-ops apply -i inventories/lab.yml`). The firewall lets web-01's port 80 take the load
balancers only: for the direct runs it is opened to this machine (stack.firewall.allow, applied to
web-01 alone) and closed again after.
Usage: .venv/bin/python scripts/bench_web.py [--connections 16] [--threads 2] [--seconds 8] [--warmup 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
INVENTORY = HERE.parent / "inventories" / "lab.yml"
FOOBAR_OPS = Path(sys.executable).parent / "foobar-ops"
SITE = "foobar.com"
#: the site as users reach it (https at the floating address: wrk speaks TLS but checks no certificate,
#: so the certificate is verified against the lab CA once, with curl, before the runs), and web-01's
#: Nginx direct (plain http, as the load balancers reach it)
LB, DIRECT = "https://10.77.0.50", "http://10.77.0.11"
LAB_CA = "/var/lib/foobar-ops/lab/tls/ca.crt"
PATHS = [
    ("static", "GET", "/static/app.css"),
    ("home", "GET", "/"),
    ("items", "GET", "/api/items"),
    ("post", "POST", "/api/items"),
]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(address: str, method: str, path: str, connections: int, threads: int, seconds: int) -> dict:
    script = HERE / "wrk" / ("post.lua" if method == "POST" else "report.lua")
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "-H",
        f"Host: {SITE}",
        "-s",
        str(script),
        f"{address}{path}",
    ]
    env = dict(os.environ, FOOBAR_WRK_REPORT=str(HERE / "wrk" / "report.lua"))
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    last = 0.0
    while proc.poll() is None:
        try:
            last = cpu_seconds(proc.pid)
        except OSError:
            break
        time.sleep(0.2)
    out, err = proc.communicate()
    elapsed = time.monotonic() - started
    line = next((ln for ln in out.splitlines() if ln.startswith("{")), None)
    if line is None:
        sys.exit(f"wrk failed for {address}{path}: {err or out}")
    figures = json.loads(line)
    figures["client_cpu"] = round(last / elapsed, 2)  # cores wrk used
    return figures


@contextmanager
def direct_opened() -> Iterator[None]:
    """Open web-01's port 80 to this machine for the run (the firewall's allow list), then close it."""
    data = yaml.safe_load(INVENTORY.read_text())
    firewall = data.get("stack", {}).get("firewall")
    if not firewall:
        yield
        return
    firewall["allow"] = [*(firewall.get("allow") or []), {"port": 80, "from": ["10.77.0.1"], "to": ["web-01"]}]
    with tempfile.TemporaryDirectory() as folder:
        opened = Path(folder) / "lab.yml"
        opened.write_text(yaml.safe_dump(data, sort_keys=False))
        apply = [str(FOOBAR_OPS), "apply", "firewall", "--hosts", "web-01", "-i"]
        subprocess.run([*apply, str(opened)], check=True, stdout=subprocess.DEVNULL)
        try:
            yield
        finally:
            subprocess.run([*apply, str(INVENTORY)], check=True, stdout=subprocess.DEVNULL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=3, help="seconds of unmeasured load first")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: run `make setup` (Debian package wrk)")
    verified = subprocess.run(
        [
            "curl",
            "-sS",
            "-o",
            "/dev/null",
            "--cacert",
            LAB_CA,
            "--resolve",
            f"{SITE}:443:10.77.0.50",
            f"https://{SITE}/",
        ],
        capture_output=True,
        text=True,
    )
    if verified.returncode != 0:
        sys.exit(f"the site's certificate does not verify against the lab CA: {verified.stderr.strip()}")
    with direct_opened():
        rows = measure(args)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(
        f"wrk -t{args.threads} -c{args.connections} -d{args.seconds}s, Host: {SITE}; "
        f"LB {LB}, direct {DIRECT} (web-01's Nginx); after {args.warmup} s of unmeasured load on each"
    )
    print(
        f"{'path':<22} {'where':<7} {'req/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>7} {'wrk cpu':>8}"
    )
    for row in rows:
        for where in ("lb", "direct"):
            f = row[where]
            print(
                f"{row['path']:<22} {where:<7} {f['rps']:>9.1f} {f['p50_ms']:>8.2f} {f['p95_ms']:>8.2f} "
                f"{f['p99_ms']:>8.2f} {f['errors']:>7} {f['client_cpu']:>8.2f}"
            )
        print(f"{'':<22} LB/direct ratio {row['lb_direct_ratio']}")
    return 0


def measure(args: argparse.Namespace) -> list[dict]:
    if args.warmup:  # fill the app's connection pools (a new database connection costs ~50 ms)
        for address in (LB, DIRECT):
            wrk(address, "GET", "/api/items", args.connections, args.threads, args.warmup)
    rows = []
    for name, method, path in PATHS:
        row = {"path": f"{method} {path}", "name": name}
        for where, address in (("lb", LB), ("direct", DIRECT)):
            row[where] = wrk(address, method, path, args.connections, args.threads, args.seconds)
        row["lb_direct_ratio"] = round(row["lb"]["rps"] / row["direct"]["rps"], 2) if row["direct"]["rps"] else None
        rows.append(row)
    return rows


if __name__ == "__main__":
    sys.exit(main())
