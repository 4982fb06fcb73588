"""Read-only looks at the running stack, as DataFrames: service states, the last errors from the
logs, and request latency from Nginx's access log. Nothing here changes a host or the journal."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..core.errors import FoobarOpsError
from ..core.shell import cmd
from ..core.ssh import Remote

#: The systemd unit of each role.
UNITS = {
    "haproxy": "haproxy.service",
    "nginx": "nginx.service",
    "app": "foobar-app.service",
    "mysql": "mariadb.service",
}
ACCESS_LOG = "/var/log/nginx/foobar.access.log"
_LINE = re.compile(
    r'^(?P<client>\S+) - \[(?P<time>[^\]]+)\] "(?P<request>[^"]*)" (?P<status>\d{3}) (?P<bytes>\d+) '
    r'rt=(?P<rt>[\d.]+) urt=(?P<urt>\S+) ua="(?P<upstream>[^"]*)"'
)


def _on(host: Any, inventory: Any, script: str) -> str:
    with Remote(host, inventory) as remote:
        out = remote.run(cmd("sh", "-c", script), sudo=host.user != "root", timeout=60)
    if out.exit_code is None and not out.ok:
        raise FoobarOpsError(f"{host.name}: {out.error}")
    return str(out.stdout)


def _each(inventory: Any, hosts: str | None, work: Any) -> list[Any]:
    targets = inventory.select(hosts)
    with ThreadPoolExecutor(max_workers=max(1, len(targets))) as pool:
        return list(pool.map(lambda h: _safely(h, work), targets))


def _safely(host: Any, work: Any) -> Any:
    try:
        return work(host)
    except FoobarOpsError as err:
        return [{"host": host.name, "error": str(err)}]


def services(inventory: Any, hosts: str | None = None) -> Any:
    """Return each host's stack services: host, unit, active, sub-state, since.

    inventory: the Inventory.
    hosts: host pattern (default: all).
    """
    import pandas as pd

    def one(host: Any) -> list[dict[str, Any]]:
        units = [UNITS[r] for r in host.roles if r in UNITS]
        if not units:
            return []
        text = _on(
            host,
            inventory,
            "systemctl show -p Id -p ActiveState -p SubState -p ActiveEnterTimestamp "
            + " ".join(cmd(u) for u in units),
        )
        rows = []
        for block in text.strip().split("\n\n"):
            f = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
            rows.append(
                {
                    "host": host.name,
                    "unit": f.get("Id"),
                    "active": f.get("ActiveState"),
                    "sub": f.get("SubState"),
                    "since": f.get("ActiveEnterTimestamp") or None,
                }
            )
        return rows

    return pd.DataFrame([row for rows in _each(inventory, hosts, one) for row in rows])


def errors(inventory: Any, hosts: str | None = None, since: str = "1 hour ago", limit: int = 20) -> Any:
    """Return the last warnings and errors the stack's services logged: host, unit, time, message.

    inventory: the Inventory.
    hosts: host pattern (default: all).
    since: how far back (journalctl --since).
    limit: at most this many entries per host.
    """
    import pandas as pd

    def one(host: Any) -> list[dict[str, Any]]:
        units = [UNITS[r] for r in host.roles if r in UNITS]
        if not units:
            return []
        args = ["journalctl", "--no-pager", "-o", "json", "-p", "warning", "--since", since, "-n", str(limit)]
        for unit in units:
            args += ["-u", unit]
        rows = []
        for line in _on(host, inventory, cmd(*args) + " || true").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            rows.append(
                {
                    "host": host.name,
                    "unit": entry.get("_SYSTEMD_UNIT"),
                    "time": pd.to_datetime(int(entry.get("__REALTIME_TIMESTAMP", 0)), unit="us"),
                    "priority": int(entry.get("PRIORITY", 6)),
                    "message": entry.get("MESSAGE"),
                }
            )
        return rows

    frame = pd.DataFrame([row for rows in _each(inventory, hosts, one) for row in rows])
    return frame.sort_values("time") if "time" in frame else frame


def parse_access_log(text: str, host: str) -> list[dict[str, Any]]:
    """Parse Nginx access log lines of the stack's format (foobar_timed) into rows.

    text: the log lines.
    host: the web host they came from.
    """
    rows = []
    for line in text.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        method, _, rest = m["request"].partition(" ")
        path = rest.rsplit(" ", 1)[0] if " " in rest else rest
        urt = m["urt"].split(",")[-1].strip()
        rows.append(
            {
                "host": host,
                "time": m["time"],
                "method": method,
                "path": path,
                "status": int(m["status"]),
                "bytes": int(m["bytes"]),
                "request_ms": float(m["rt"]) * 1000,
                "upstream_ms": float(urt) * 1000 if urt not in ("-", "") else None,
                "upstream": m["upstream"] if m["upstream"] != "-" else None,
            }
        )
    return rows


def access_log(inventory: Any, hosts: str | None = "role:nginx", lines: int = 2000) -> Any:
    """Return the last requests each web host served: time, method, path, status, request and
    upstream (app) milliseconds.

    inventory: the Inventory.
    hosts: host pattern (default: the web hosts).
    lines: at most this many per host.
    """
    import pandas as pd

    def one(host: Any) -> list[dict[str, Any]]:
        return parse_access_log(_on(host, inventory, f"tail -n {int(lines)} {ACCESS_LOG} || true"), host.name)

    frame = pd.DataFrame([row for rows in _each(inventory, hosts, one) for row in rows])
    if "time" in frame:
        frame["time"] = pd.to_datetime(frame["time"], format="%d/%b/%Y:%H:%M:%S %z")
    return frame


def latency(frame: Any) -> Any:
    """Return request latency percentiles (p50, p95, p99 in ms) by host and path from access_log()."""
    if frame.empty:
        return frame
    grouped = frame.groupby(["host", "path"])["request_ms"]
    return grouped.describe(percentiles=[0.5, 0.95, 0.99])[["count", "50%", "95%", "99%", "max"]].rename(
        columns={"50%": "p50_ms", "95%": "p95_ms", "99%": "p99_ms", "max": "max_ms"}
    )
