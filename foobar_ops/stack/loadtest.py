"""Locust load tests through the load balancer, and their verdicts computed, not eyeballed.

A run is Locust in processes of its own (headless, CSV and HTML reports, a run time and a hard
outer timeout; `workers` > 0: Locust's own master and local workers; `workers_on`: the master here
and one worker on each load generator named, over SSH, reporting to the master). Around it, HAProxy's
per-server `lbtot` and each database node's `Com_select` are read before and after. The verdict
joins Locust's stats, the per-response tallies of X-Served-By / X-DB-Node, the `lbtot` deltas and
the database counters, checks each figure against what the inventory configures, and is
"invalid" (never "pass") when the load generator ran out of CPU.

Traffic goes only to the load balancer's inventory address.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ..core import paths
from ..core.errors import FoobarOpsError, LoadTestError
from ..core.shape import BAD, GOOD, headline, one_line
from .balancers import Balancers
from .mariadb import DBError, Node
from .topology import (
    BACKEND,
    db_hosts,
    db_primary,
    domain,
    lb_hosts,
    read_weight,
    site_address,
    site_ca,
    site_url,
)

_CHECKOUT_LOADTESTS = Path(__file__).resolve().parents[2] / "loadtests"
KINDS = {"round-robin": "round_robin.py", "read-scaling": "read_scaling.py"}
SHARE_TOLERANCE = 0.05  # a server's share of requests may differ from its weight's share by this much
READ_TOLERANCE = 0.10  # a database node's share of reads, likewise (each gunicorn worker balances alone)
COUNTER_TOLERANCE = 0.02  # lbtot and the responses' own tally agree within this share of the total
FAILURE_RATIO = 0.01  # at most this share of requests may fail
CPU_WARNING = "CPU usage above"  # what Locust logs when the load generator is the bottleneck


def locustfiles() -> Path:
    """Return the folder of the locustfiles: $FOOBAR_OPS_LOADTESTS, else the checkout's loadtests/."""
    named = os.environ.get("FOOBAR_OPS_LOADTESTS")
    return Path(named) if named else (_CHECKOUT_LOADTESTS if _CHECKOUT_LOADTESTS.is_dir() else Path("loadtests"))


@dataclass
class Check:
    """One figure of a verdict: what was expected, what was measured, whether it holds."""

    name: str
    expected: Any
    measured: Any
    ok: bool


@dataclass
class LoadTest:
    """A load test run and its verdict.

    kind: round-robin or read-scaling.
    run_id: its id (its folder under the records' loadtests/).
    verdict: pass, fail or invalid.
    checks: every figure checked.
    servers: web server -> requests (from the responses), share, lbtot (HAProxy's delta).
    db_nodes: database node -> reads (from the responses), share, counter (Com_select delta).
    rps, p50_ms, p95_ms, p99_ms, failures, requests: Locust's aggregated figures.
    parameters: users, spawn rate, run time, workers.
    folder: where the run's files are kept.
    extra: more figures (e.g. the primary-only comparison of a read-scaling run).
    """

    kind: str
    run_id: str
    verdict: str = "invalid"
    checks: list[Check] = field(default_factory=list)
    servers: dict[str, dict[str, Any]] = field(default_factory=dict)
    db_nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    rps: float = 0.0
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    failures: int = 0
    requests: int = 0
    parameters: dict[str, Any] = field(default_factory=dict)
    folder: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    @property
    def ok(self) -> bool:
        """True when the verdict is pass (never when it is fail or invalid)."""
        return self.verdict == "pass"

    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def as_json(self) -> dict[str, Any]:
        """`foobar-ops loadtest ... --json`."""
        doc = asdict(self)
        doc["checks"] = [asdict(c) for c in self.checks]
        doc["ok"] = self.ok
        return doc

    def __str__(self) -> str:
        """One line: the run, its verdict, its figures, and the checks that failed."""
        line = (
            f"{self.kind} {self.run_id}: {self.verdict.upper()}: {self.rps:.0f} req/s, p50 {self.p50_ms} ms, "
            f"p95 {self.p95_ms} ms, {self.failures} failed of {self.requests}"
        )
        failed = self.failed_checks()
        if failed:
            line += "; failed: " + "; ".join(f"{c.name} (expected {c.expected}, measured {c.measured})" for c in failed)
        return one_line(line)

    def plot_shares(self) -> Any:
        """Draw requests per web server (responses and HAProxy's lbtot) beside reads per database
        node; return the servers' table (a DataFrame)."""
        import matplotlib.pyplot as plt
        import pandas as pd

        fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
        servers = pd.DataFrame(self.servers).T
        servers[["requests", "lbtot"]].plot(kind="bar", ax=left, title="requests per web server")
        nodes = pd.DataFrame(self.db_nodes).T
        if not nodes.empty:
            nodes[["reads"]].plot(kind="bar", ax=right, title="reads per database node", legend=False)
        plt.tight_layout()
        plt.show()
        return servers

    def latency_history(self) -> Any:
        """Return the run's aggregated latency percentiles over time (seconds from its start, ms), a
        DataFrame read from Locust's stats history."""
        import pandas as pd

        history = pd.read_csv(Path(self.folder) / "locust_stats_history.csv")
        history = history[history["Name"] == "Aggregated"].replace("N/A", None)
        out = pd.DataFrame({"t": history["Timestamp"] - history["Timestamp"].min()})
        for column in ("50%", "95%", "99%"):
            out[f"p{column.rstrip('%')}"] = pd.to_numeric(history[column])
        return out.reset_index(drop=True)

    def plot_latency(self) -> None:
        """Draw the latency percentiles over the run."""
        import matplotlib.pyplot as plt

        history = self.latency_history()
        fig, ax = plt.subplots(figsize=(10, 3.5))
        for column in ("p50", "p95", "p99"):
            ax.plot(history["t"], history[column], label=column)
        ax.set_xlabel("seconds")
        ax.set_ylabel("ms")
        ax.set_title(f"{self.kind}: latency percentiles ({self.rps:.0f} req/s)")
        ax.legend()
        plt.show()

    def _repr_html_(self) -> str:
        import html

        rows = "".join(
            f"<tr style='color:{GOOD if c.ok else BAD}'><td>{html.escape(str(c.name))}</td>"
            f"<td>{html.escape(str(c.expected))}</td><td>{html.escape(str(c.measured))}</td></tr>"
            for c in self.checks
        )
        return (
            headline(str(self), {"pass": True, "fail": False}.get(self.verdict))  # invalid: neither
            + f"<table><tr><th>check</th><th>expected</th><th>measured</th></tr>{rows}</table>"
        )


# ---- measuring around a run ------------------------------------------------------------------------


def _lbtot(inventory: Any) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """Return each web server's lbtot summed over the load balancers, each server's weight, and
    each load balancer's own total, from HAProxy's statistics: whichever load balancer served
    (the one holding the floating address, or both when it moved) is counted."""
    with Balancers(inventory) as lbs:
        views = lbs.servers(BACKEND)
    counts: dict[str, int] = {}
    weights: dict[str, int] = {}
    for rows in views.values():
        for name, row in rows.items():
            counts[name] = counts.get(name, 0) + int(row["lbtot"] or 0)
            weights.setdefault(name, int(row["weight"] or 0))
    per_lb = {lb: sum(int(r["lbtot"] or 0) for r in rows.values()) for lb, rows in views.items()}
    return counts, weights, per_lb


def _selects(inventory: Any) -> dict[str, int | None]:
    """Return each database node's Com_select (None when it cannot be asked)."""
    out: dict[str, int | None] = {}
    for host in db_hosts(inventory):
        node = Node(host, inventory)
        try:
            rows = node.query("SHOW GLOBAL STATUS LIKE 'Com_select'")
            out[host.name] = int(rows[0]["Value"]) if rows else None
        except (DBError, FoobarOpsError):
            out[host.name] = None
        finally:
            node.close()
    return out


# ---- running Locust ---------------------------------------------------------------------------------


_RUN_TIME = re.compile(r"([0-9]{1,6})([smh]?)")
#: The most a run may last (Locust's -t), and the most users or users per second it may start.
MAX_RUN_S = 24 * 3600
MAX_USERS = 100_000


def _seconds(run_time: Any) -> float:
    """Return a run time (20, 20s, 5m, 1h) in seconds; LoadTestError for anything else.

    run_time: Locust's -t as given.
    """
    match = _RUN_TIME.fullmatch(run_time) if isinstance(run_time, str) else None
    seconds = int(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)] if match else 0
    if not 0 < seconds <= MAX_RUN_S:
        raise LoadTestError(
            f"run time {run_time!r}: give seconds, minutes or hours such as 20s, 5m, 1h (at most {MAX_RUN_S // 3600} h)"
        )
    return float(seconds)


def check_load(users: Any, spawn_rate: Any, run_time: Any, workers: Any = 0) -> None:
    """Refuse load parameters that are not what Locust takes, naming the one at fault: the one
    check for a run now (loadtest) and a scheduled one (its unit file).

    users: whole number of users, 1 to MAX_USERS.
    spawn_rate: users started per second, a finite number above 0 (at most MAX_USERS).
    run_time: 20s, 5m, 1h (at most MAX_RUN_S).
    workers: Locust worker processes, 0 to 64.
    """
    if isinstance(users, bool) or not isinstance(users, int) or not 1 <= users <= MAX_USERS:
        raise LoadTestError(f"users {users!r}: give a whole number from 1 to {MAX_USERS}")
    if (
        isinstance(spawn_rate, bool)
        or not isinstance(spawn_rate, (int, float))
        or not math.isfinite(spawn_rate)
        or not 0 < spawn_rate <= MAX_USERS
    ):
        raise LoadTestError(f"spawn rate {spawn_rate!r}: give a number of users per second above 0")
    if isinstance(workers, bool) or not isinstance(workers, int) or not 0 <= workers <= 64:
        raise LoadTestError(f"workers {workers!r}: give a whole number from 0 to 64")
    _seconds(run_time)


def run_locust(
    locustfile: Path,
    host_url: str,
    site: str,
    folder: Path,
    users: int,
    spawn_rate: float,
    run_time: str,
    workers: int = 0,
    ca: str | None = None,
    remote: RemoteWorkers | None = None,
) -> dict[str, Any]:
    """Run Locust headless (a master and `workers` local workers when workers > 0; a master and
    the remote workers when `remote` is given) and return what it left: the aggregated stats row,
    the tallies, whether it warned of CPU, its exit code.

    locustfile: the locustfile.
    host_url: the load balancer (https://ADDRESS:PORT, or http://).
    site: the Host header, and the name the certificate is verified for.
    folder: where its CSV, HTML, tallies and log go.
    users, spawn_rate, run_time: Locust's -u, -r, -t.
    workers: local worker processes (0: one process).
    ca: the CA file the site's certificate is verified against (default: the system's).
    remote: workers on load generators (see RemoteWorkers), instead of local ones.
    """
    folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, FOOBAR_SITE=site, FOOBAR_TALLY=str(folder / "tally.json"), FOOBAR_SITE_CA=ca or "")
    locust = [sys.executable, "-m", "locust", "-f", str(locustfile)]
    common = [
        "--headless",
        "-u",
        str(users),
        "-r",
        str(spawn_rate),
        "-t",
        run_time,
        "--host",
        host_url,
        "--csv",
        str(folder / "locust"),
        "--csv-full-history",
        "--html",
        str(folder / "report.html"),
        "--only-summary",
        "--stop-timeout",
        "5",
        "--exit-code-on-error",
        "0",
    ]
    limit = _seconds(run_time) + 90  # the hard outer timeout
    log = open(folder / "locust.log", "w")
    try:
        if remote is not None:
            port = 5557 + (uuid.uuid4().int % 2000)
            master = subprocess.Popen(
                [
                    *locust,
                    *common,
                    "--master",
                    "--master-bind-host",
                    remote.master_address,
                    "--master-bind-port",
                    str(port),
                    "--expect-workers",
                    str(len(remote.hosts)),
                    "--expect-workers-max-wait",
                    "60",
                ],
                env=env,
                stdout=log,
                stderr=log,
            )
            helpers = []
            remote.start(port, limit, folder)
        elif workers > 0:
            port = 5557 + (uuid.uuid4().int % 2000)
            master = subprocess.Popen(
                [*locust, *common, "--master", "--expect-workers", str(workers), "--master-bind-port", str(port)],
                env=env,
                stdout=log,
                stderr=log,
            )
            helpers = [
                subprocess.Popen(
                    [*locust, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)],
                    env=env,
                    stdout=log,
                    stderr=log,
                )
                for _ in range(workers)
            ]
        else:
            master, helpers = subprocess.Popen([*locust, *common], env=env, stdout=log, stderr=log), []
        try:
            code = master.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            master.kill()
            code = -9
        for helper in helpers:
            try:
                helper.wait(timeout=15)
            except subprocess.TimeoutExpired:
                helper.kill()
        if remote is not None:
            remote.join(timeout=30)
    finally:
        log.close()
    found = read_run(folder, code)
    if remote is not None:
        found["workers_on"] = remote.outcomes
    return found


class RemoteWorkers:
    """One Locust worker on each of some load generators (role loadgen: Locust installed from the
    control machine's own version, the stack's locustfiles), started over SSH, each reporting to
    the master here on the address the control machine reaches them from; each bounded by
    `timeout` on its host, so that none outlives the run even when this process dies.

    inventory: the Inventory.
    hosts: the load generators' inventory Hosts.
    kind: round-robin or read-scaling (the locustfile each worker runs).
    """

    def __init__(self, inventory: Any, hosts: list[Any], kind: str) -> None:
        self.inventory, self.hosts, self.kind = inventory, hosts, kind
        self.master_address = control_address(hosts[0].address)
        self.outcomes: dict[str, dict[str, Any]] = {}
        self._threads: list[threading.Thread] = []

    def command(self, port: int, limit: float) -> str:
        """The worker's command line on a load generator."""
        from ..core.shell import cmd
        from .build import build_loadgen
        from .loadgen_layout import FILES, SITE_CA, venv

        env = venv(build_loadgen().release)
        return cmd(
            "env",
            f"FOOBAR_SITE={domain(self.inventory)}",
            f"FOOBAR_SITE_CA={SITE_CA if site_ca(self.inventory) else ''}",
            "timeout",
            "--kill-after=5",
            str(int(limit)),
            f"{env}/bin/locust",
            "-f",
            f"{FILES}/{KINDS[self.kind]}",
            "--worker",
            "--master-host",
            self.master_address,
            "--master-port",
            str(port),
        )

    def check(self) -> None:
        """Refuse to start when a load generator has no Locust of this version (LoadTestError)."""
        from ..core.shell import cmd
        from ..core.ssh import Remote
        from .build import build_loadgen
        from .loadgen_layout import venv

        locust = f"{venv(build_loadgen().release)}/bin/locust"
        for host in self.hosts:
            with Remote(host, self.inventory) as remote:
                found = remote.run(cmd("test", "-x", locust), timeout=30)
            if found.exit_code != 0:
                raise LoadTestError(
                    f"{host.name}: no Locust at {locust}: apply the loadgen role to it first "
                    f"(foobar-ops apply -i {self.inventory.path} loadgen --hosts {host.name})"
                )

    def start(self, port: int, limit: float, folder: Path) -> None:
        """Start every worker (each on a thread of its own, its output kept in folder)."""
        line = self.command(port, limit)
        for host in self.hosts:
            thread = threading.Thread(
                target=self._work, args=(host, line, limit, folder), name=f"locust worker {host.name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _work(self, host: Any, line: str, limit: float, folder: Path) -> None:
        from ..core.ssh import Remote

        try:
            with Remote(host, self.inventory) as remote:
                done = remote.run(line, timeout=limit + 30)
            (folder / f"worker-{host.name}.log").write_text(done.stdout + done.stderr)
            self.outcomes[host.name] = {"exit": done.exit_code}
        except FoobarOpsError as err:
            self.outcomes[host.name] = {"exit": None, "error": str(err)}

    def join(self, timeout: float) -> None:
        for thread in self._threads:
            thread.join(timeout=timeout)


def control_address(address: str) -> str:
    """Return this machine's address on the way to a host: the source its packets to the host
    leave from (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((address, 9))
        return str(probe.getsockname()[0])


def check_workers_on(inventory: Any, names: Any, workers: int) -> list[Any]:
    """Return the load generators named for remote workers, checked: each an inventory host with
    the loadgen role, named once, at most 32; not with local workers too (LoadTestError)."""
    if not isinstance(names, (list, tuple)) or not names or not all(isinstance(n, str) for n in names):
        raise LoadTestError(f"workers on {names!r}: name load generators (hosts with the loadgen role)")
    if workers:
        raise LoadTestError("give local workers or workers on load generators (--workers-on), not both")
    if len(names) > 32 or len(set(names)) != len(names):
        raise LoadTestError(f"workers on {', '.join(names)[:200]}: name each load generator once, at most 32")
    generators = {h.name: h for h in inventory.hosts.values() if "loadgen" in h.roles}
    strays = [n for n in names if n not in generators]
    if strays:
        raise LoadTestError(
            f"workers on {', '.join(repr(n[:64]) for n in strays)}: not a load generator of {inventory.path} "
            f"(hosts with the loadgen role: {', '.join(generators) or 'none'})"
        )
    return [generators[n] for n in names]


def read_run(folder: Path, code: int) -> dict[str, Any]:
    """Read what a Locust run left in a folder: the aggregated stats row, the tallies, whether it
    warned of CPU, and its exit code (given).

    folder: the run's folder (locust_stats.csv, tally.json, locust.log).
    code: Locust's exit code (-9: killed at the outer timeout).
    """
    log_path = folder / "locust.log"
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    stats = folder / "locust_stats.csv"
    aggregated: dict[str, str] = {}
    if stats.exists():
        with open(stats) as f:
            aggregated = next((row for row in csv.DictReader(f) if row.get("Name") == "Aggregated"), {})
    tally_path = folder / "tally.json"
    return {
        "code": code,
        "aggregated": aggregated,
        "cpu_warning": CPU_WARNING in text,
        "tally": json.loads(tally_path.read_text()) if tally_path.exists() else {},
        "timed_out": code == -9,
    }


def _delta(before: int | None, after: int | None) -> int | None:
    return after - before if before is not None and after is not None else None


def _number(row: dict[str, str], key: str) -> float | None:
    try:
        value = row.get(key)
        return round(float(value), 1) if value not in (None, "", "N/A") else None
    except ValueError:
        return None


# ---- verdicts -----------------------------------------------------------------------------------------


def _shares(counts: dict[str, int]) -> dict[str, float]:
    total = sum(counts.values()) or 1
    return {k: round(v / total, 4) for k, v in counts.items()}


def judge(
    test: LoadTest,
    ran: dict[str, Any],
    lbtot: dict[str, int] | None,
    weights: dict[str, int],
    reads_weights: dict[str, int],
    selects: dict[str, int | None] | None,
    primary: str | None,
) -> LoadTest:
    """Fill a LoadTest's figures and checks from a finished run (pure: no host needed).

    test: the LoadTest (kind, run_id, parameters set).
    ran: what run_locust returned.
    lbtot: each web server's lbtot delta (None: not measured, e.g. a scheduled run).
    weights: each web server's HAProxy weight.
    reads_weights: each database node's read weight.
    selects: each database node's Com_select delta (None: not measured).
    primary: the database primary's name.
    """
    row, tally = ran["aggregated"], ran["tally"]
    test.requests = int(_number(row, "Request Count") or 0)
    test.failures = int(_number(row, "Failure Count") or 0)
    test.rps = _number(row, "Requests/s") or 0.0
    test.p50_ms, test.p95_ms, test.p99_ms = _number(row, "50%"), _number(row, "95%"), _number(row, "99%")
    served = {k: int(v) for k, v in tally.get("served_by", {}).items()}
    share = _shares(served)
    test.servers = {
        name: {
            "requests": served.get(name, 0),
            "share": share.get(name, 0.0),
            "lbtot": (lbtot or {}).get(name),
            "weight": weights.get(name),
        }
        for name in sorted(set(weights) | set(served))
    }
    reads = {k: int(v) for k, v in tally.get("reads", {}).items()}
    read_share = _shares(reads)
    test.db_nodes = {
        name: {
            "reads": reads.get(name, 0),
            "share": read_share.get(name, 0.0),
            "counter": (selects or {}).get(name),
            "weight": reads_weights.get(name),
        }
        for name in sorted(set(reads_weights) | set(reads))
    }
    checks = test.checks
    checks.append(Check("requests made", "> 0", test.requests, test.requests > 0))
    ratio = round(test.failures / test.requests, 4) if test.requests else 1.0
    checks.append(Check("failure ratio", f"<= {FAILURE_RATIO}", ratio, ratio <= FAILURE_RATIO))
    if test.kind == "round-robin":
        total_weight = sum(w for w in weights.values()) or 1
        for name, w in sorted(weights.items()):
            expected = round(w / total_weight, 4)
            got = share.get(name, 0.0)
            checks.append(
                Check(
                    f"share of {name}", f"{expected} +- {SHARE_TOLERANCE}", got, abs(got - expected) <= SHARE_TOLERANCE
                )
            )
        counted = sum(served.values()) or 1
        for name in sorted(weights) if lbtot is not None else []:
            gap = abs(((lbtot or {}).get(name) or 0) - served.get(name, 0)) / counted
            checks.append(
                Check(
                    f"lbtot of {name} agrees with the responses",
                    f"<= {COUNTER_TOLERANCE} apart",
                    round(gap, 4),
                    gap <= COUNTER_TOLERANCE,
                )
            )
    else:
        total_weight = sum(w for w in reads_weights.values()) or 1
        for name, w in sorted(reads_weights.items()):
            expected = round(w / total_weight, 4)
            got = read_share.get(name, 0.0)
            checks.append(
                Check(f"reads on {name}", f"{expected} +- {READ_TOLERANCE}", got, abs(got - expected) <= READ_TOLERANCE)
            )
        writers = sorted(tally.get("writes", {}))
        checks.append(Check("writes on the primary only", [primary], writers, writers == [primary]))
        counters = {n: v for n, v in (selects or {}).items() if v is not None}
        served_by_node = {n: c for n, c in counters.items() if reads_weights.get(n)}
        rising = all(v > 0 for v in served_by_node.values()) if served_by_node else False
        if selects is not None:
            checks.append(
                Check("database read counters rose on every node reads went to", "> 0 each", served_by_node, rising)
            )
    if ran["cpu_warning"] or ran["timed_out"] or ran["code"] != 0:
        why = "the load generator ran out of CPU" if ran["cpu_warning"] else f"Locust ended with {ran['code']}"
        checks.append(Check("load generator not overloaded", "no CPU warning, a clean end", why, False))
        test.verdict = "invalid"
    else:
        checks.append(Check("load generator not overloaded", "no CPU warning, a clean end", "ok", True))
        test.verdict = "pass" if all(c.ok for c in checks) else "fail"
    return test


def run(
    inventory: Any,
    kind: str,
    *,
    users: int = 16,
    spawn_rate: float = 16,
    run_time: str = "20s",
    workers: int = 0,
    folder: Path | None = None,
    workers_on: list[str] | None = None,
) -> LoadTest:
    """Run one load test through the inventory's load balancer and return it with its verdict.

    inventory: the Inventory.
    kind: round-robin or read-scaling.
    users, spawn_rate, run_time: Locust's -u, -r, -t.
    workers: Locust worker processes (0: one process).
    folder: where to keep the run (default: a new folder under the records' loadtests/).
    workers_on: load generators (inventory hosts with the loadgen role) that each run one worker
        for a master here (instead of local workers).
    """
    if kind not in KINDS:
        raise LoadTestError(f"unknown load test {kind!r} (load tests: {', '.join(KINDS)})")
    check_load(users, spawn_rate, run_time, workers)
    remote = None
    if workers_on is not None:
        remote = RemoteWorkers(inventory, check_workers_on(inventory, workers_on, workers), kind)
    if not lb_hosts(inventory):
        raise LoadTestError(f"{inventory.path}: no host has the haproxy role: nothing to send load through")
    if remote is not None:
        remote.check()
    address = site_address(inventory)
    run_id = datetime.now().strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    folder = folder or paths.records_dir() / "loadtests" / f"{kind}-{run_id}"
    test = LoadTest(
        kind,
        run_id,
        parameters={
            "users": users,
            "spawn_rate": spawn_rate,
            "run_time": run_time,
            "workers": workers,
            **({"workers_on": list(workers_on)} if workers_on else {}),
        },
        folder=str(folder),
    )
    lbtot_before, _, per_lb_before = _lbtot(inventory)
    selects_before = _selects(inventory)
    started = time.monotonic()
    ran = run_locust(
        locustfiles() / KINDS[kind],
        site_url(inventory, address),
        domain(inventory),
        folder,
        users,
        spawn_rate,
        run_time,
        workers,
        site_ca(inventory),
        remote,
    )
    if remote is not None:
        test.extra["workers_on"] = ran.get("workers_on", {})
    test.extra["seconds"] = round(time.monotonic() - started, 1)
    lbtot_after, weights, per_lb_after = _lbtot(inventory)
    test.extra["lb_served"] = {lb: per_lb_after[lb] - per_lb_before.get(lb, 0) for lb in per_lb_after}
    test.extra["site_address"] = address
    selects_after = _selects(inventory)
    lbtot = {n: lbtot_after[n] - lbtot_before.get(n, 0) for n in lbtot_after}
    selects = {n: _delta(selects_before.get(n), selects_after.get(n)) for n in selects_after}
    reads_weights = {h.name: read_weight(h) for h in db_hosts(inventory)}
    judge(
        test, ran, lbtot, weights, reads_weights, selects, db_primary(inventory).name if db_hosts(inventory) else None
    )
    (folder / "verdict.json").write_text(json.dumps(test.as_json(), indent=2, default=str))
    return test


def against_baseline(test: LoadTest, baseline: dict[str, Any] | None, margin: float) -> LoadTest:
    """Check a run against its baseline: p95 and throughput within `margin` (a share); a regression
    fails the run, saying which figure.

    test: the judged run (its verdict is updated).
    baseline: {"run_id", "rps", "p95_ms"} of the baseline run, or None (the checks are skipped).
    margin: e.g. 0.5: p95 up to 1.5x the baseline's, throughput down to 0.5x.
    """
    if not baseline:
        return test
    p95_limit = round(float(baseline["p95_ms"]) * (1 + margin), 1)
    rps_floor = round(float(baseline["rps"]) * (1 - margin), 1)
    checks = [
        Check(
            f"p95 against baseline {baseline['run_id']}",
            f"<= {p95_limit} ms",
            test.p95_ms,
            test.p95_ms is not None and test.p95_ms <= p95_limit,
        ),
        Check(
            f"throughput against baseline {baseline['run_id']}",
            f">= {rps_floor} req/s",
            test.rps,
            test.rps >= rps_floor,
        ),
    ]
    test.checks += checks
    if test.verdict == "pass" and not all(c.ok for c in checks):
        test.verdict = "fail"
    return test
