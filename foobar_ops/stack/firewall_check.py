"""Prove the firewall from the hosts themselves: from every host (and from this control machine),
connect to every other host on every TCP port the topology names, and compare what happened with
what the rules intend.

A connection that is accepted, or refused by the host's own TCP stack (nothing listens there yet),
got through the firewall: `open`. One that times out (the input policy drops it) or is reported
unreachable: `closed`. Each source tries all its connections at once, so a source costs one SSH
round trip and about one timeout.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import FirewallError, FoobarOpsError
from ..core.shell import cmd
from .firewall import _ip, enabled, openings, settings

CONTROL = "control"
#: what a source runs: connect to every (address, port) of argv[1] at once, print one JSON object
PROBE = r"""
import errno, json, socket, sys, threading
targets, timeout = json.loads(sys.argv[1]), float(sys.argv[2])
seen = {}
def one(address, port):
    s = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET)
    s.settimeout(timeout)
    try:
        code = s.connect_ex((address, port))
        late = (errno.EAGAIN, errno.ETIMEDOUT, errno.EINPROGRESS)
        seen[f"{address} {port}"] = (
            "connected" if code == 0 else "refused" if code == errno.ECONNREFUSED
            else "timeout" if code in late else errno.errorcode.get(code, str(code)))
    except socket.timeout:
        seen[f"{address} {port}"] = "timeout"
    except OSError as err:
        seen[f"{address} {port}"] = errno.errorcode.get(err.errno or 0, str(err))
    finally:
        s.close()
threads = [threading.Thread(target=one, args=(a, p)) for a, p in targets]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps(seen))
"""


@dataclass
class Check:
    """One path: from a source to a host's port, what the rules intend and what was measured."""

    source: str
    to: str
    port: int
    expected: str
    measured: str
    answer: str

    @property
    def ok(self) -> bool:
        return self.expected == self.measured

    def as_json(self) -> dict[str, Any]:
        return {
            "from": self.source,
            "to": self.to,
            "port": self.port,
            "expected": self.expected,
            "measured": self.measured,
            "ok": self.ok,
            "answer": self.answer,
        }


@dataclass
class FirewallCheck:
    """Every path checked; ok when each one is as the rules intend.

    checks: the paths.
    errors: sources that could not be asked (host -> why).
    """

    checks: list[Check] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and not self.errors and all(c.ok for c in self.checks)

    def differences(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def line(self) -> str:
        """One sentence: how many paths, how many as intended."""
        good = sum(c.ok for c in self.checks)
        share = 100 * good / len(self.checks) if self.checks else 0
        text = f"{len(self.checks)} paths checked, {good} as intended ({share:.0f}%)"
        if self.errors:
            text += "; not asked: " + "; ".join(f"{h}: {why}" for h, why in self.errors.items())
        return text

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [c.as_json() for c in self.checks], "errors": self.errors}

    def frame(self) -> Any:
        """The checks as a DataFrame (one row per path)."""
        import pandas as pd

        return pd.DataFrame([c.as_json() for c in self.checks])

    def matrix(self) -> Any:
        """A matrix: one row per source, one column per destination:port, each cell the measured
        word, marked with ! where it differs from the intent."""
        frame = self.frame()
        if frame.empty:
            return frame
        frame["cell"] = frame["measured"] + frame["ok"].map({True: "", False: " !"})
        frame["path"] = frame["to"] + ":" + frame["port"].astype(str)
        return frame.pivot(index="from", columns="path", values="cell").fillna("")

    def _repr_html_(self) -> str:
        return f"<p>{self.line()}</p>" + self.matrix().to_html()

    def __str__(self) -> str:
        return self.line()


def _control_address(address: str) -> str:
    """The address this machine's packets to `address` leave from."""
    with socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect((address, 9))
        return str(s.getsockname()[0])


def plan_checks(inventory: Any, control: str | None) -> list[tuple[str, str, Any, int, str]]:
    """Return the paths to check: (source name, source address, destination host, port, expected)
    for every source (each host, and this machine as `control` when its address is given), every
    other host with the firewall, and every TCP port any host's openings name."""
    targets = [h for h in inventory.hosts.values() if enabled(h, inventory)]
    rules = {h.name: openings(h, inventory) for h in targets}
    tcp_ports = sorted({o.port for found in rules.values() for o in found if o.proto == "tcp" and o.port})
    sources = [(h.name, _ip(h, inventory)) for h in inventory.hosts.values()]
    if control:
        sources.append((CONTROL, control))
    out = []
    for name, address in sources:
        for host in targets:
            if host.name == name:
                continue
            for port in tcp_ports:
                admitted = any(o.proto == "tcp" and o.port == port and o.admits(address) for o in rules[host.name])
                out.append((name, address, host, port, "open" if admitted else "closed"))
    return out


def _measure_local(targets: list[tuple[str, int]], timeout: float) -> dict[str, str]:
    """The same probe, run here (this machine as a source)."""
    argv = [sys.executable, "-c", PROBE, json.dumps(targets), f"{timeout:g}"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout * 4 + 30)
    if done.returncode != 0:
        raise FirewallError(f"{CONTROL}: the probe failed: {done.stderr.strip()[-300:]}")
    seen: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
    return seen


def _measure_remote(remote: Any, targets: list[tuple[str, int]], timeout: float) -> dict[str, str]:
    out = remote.run(cmd("python3", "-c", PROBE, json.dumps(targets), f"{timeout:g}"), timeout=timeout * 4 + 30)
    if not out.ok:
        raise FirewallError(f"{remote.host.name}: the probe failed: {out.error or out.stderr.strip()[-300:]}")
    seen: dict[str, str] = json.loads(out.stdout.strip().splitlines()[-1])
    return seen


def check(inventory: Any, remotes: dict[str, Any], timeout: float = 1.5, from_control: bool = True) -> FirewallCheck:
    """Measure every path the topology names and compare it with the rules.

    inventory: the Inventory (with stack.firewall).
    remotes: host name -> its connection (each source host is asked over it, all at once).
    timeout: seconds a connection may take before it counts as dropped.
    from_control: also check from this machine.
    """
    if settings(inventory) is None:
        raise FirewallError(f"{inventory.path}: stack.firewall is not set: there are no rules to check")
    hosts = list(inventory.hosts.values())
    control = _control_address(_ip(hosts[0], inventory)) if from_control and hosts else None
    paths = plan_checks(inventory, control)
    by_source: dict[str, list[tuple[str, int]]] = {}
    for name, _, host, port, _ in paths:
        by_source.setdefault(name, []).append((_ip(host, inventory), port))
    result = FirewallCheck()
    seen: dict[str, dict[str, str]] = {}

    def measure(name: str) -> None:
        try:
            if name == CONTROL:
                seen[name] = _measure_local(by_source[name], timeout)
            else:
                seen[name] = _measure_remote(remotes[name], by_source[name], timeout)
        except FoobarOpsError as err:
            result.errors[name] = str(err)

    with ThreadPoolExecutor(max_workers=min(32, max(1, len(by_source)))) as pool:
        list(pool.map(measure, list(by_source)))
    for name, _, host, port, expected in paths:
        if name not in seen:
            continue
        answer = seen[name].get(f"{_ip(host, inventory)} {port}", "unknown")
        measured = "open" if answer in ("connected", "refused") else "closed"
        result.checks.append(Check(name, host.name, port, expected, measured, answer))
    return result
