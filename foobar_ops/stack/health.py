"""The stack's health as Prometheus sees it: every scrape target up or down, the alerts firing, and
PromQL queries (instant and over time) as DataFrames, for `foobar-ops health`, the health_report
runbook and troubleshooting in a notebook. Everything is read over Prometheus's HTTP API on the
monitoring host."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from ..core.errors import HealthError
from .monitoring import prometheus_url


def api(inventory: Any, path: str, params: dict[str, Any] | None = None, timeout: float = 10.0) -> Any:
    """Return the `data` of one Prometheus HTTP API call; a HealthError names what went wrong.

    inventory: the Inventory (with monitoring).
    path: the API path, e.g. /api/v1/targets.
    params: its query parameters.
    timeout: seconds for the answer.
    """
    url = prometheus_url(inventory) + path + ("?" + urllib.parse.urlencode(params) if params else "")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            body = json.loads(answer.read())
    except urllib.error.HTTPError as err:
        try:
            detail = json.loads(err.read()).get("error", "")
        except ValueError:
            detail = ""
        raise HealthError(f"prometheus {url.split('?')[0]}: HTTP {err.code} {detail}".strip()) from None
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise HealthError(f"prometheus at {prometheus_url(inventory)}: cannot be asked: {reason}") from None
    if body.get("status") != "success":
        raise HealthError(f"prometheus {path}: {body.get('error') or body.get('status')}")
    return body["data"]


def targets(inventory: Any) -> list[dict[str, Any]]:
    """Return every active scrape target: job, instance, up (bool), health, error, last_scrape."""
    found = api(inventory, "/api/v1/targets", {"state": "active"})
    out = [
        {
            "job": t["labels"].get("job", ""),
            "instance": t["labels"].get("instance", ""),
            "up": t.get("health") == "up",
            "health": t.get("health"),
            "error": t.get("lastError") or "",
            "last_scrape": t.get("lastScrape"),
        }
        for t in found.get("activeTargets", [])
    ]
    return sorted(out, key=lambda r: (r["job"], r["instance"]))


def alerts(inventory: Any, firing_only: bool = True) -> list[dict[str, Any]]:
    """Return the alerts Prometheus holds: name, severity, instance, state (firing, or pending with
    firing_only False), since, summary."""
    found = api(inventory, "/api/v1/alerts")
    out = [
        {
            "name": a["labels"].get("alertname", ""),
            "severity": a["labels"].get("severity", ""),
            "instance": a["labels"].get("instance", ""),
            "state": a.get("state", ""),
            "since": a.get("activeAt"),
            "summary": (a.get("annotations") or {}).get("summary", ""),
        }
        for a in found.get("alerts", [])
        if not firing_only or a.get("state") == "firing"
    ]
    return sorted(out, key=lambda r: (r["severity"] != "critical", r["name"], r["instance"]))


@dataclass
class Health:
    """The stack's health: ok when no critical alert fires.

    targets: see targets().
    alerts: the firing alerts (see alerts()).
    """

    targets: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(a["severity"] == "critical" for a in self.alerts)

    @property
    def down(self) -> list[dict[str, Any]]:
        """The targets that are not up."""
        return [t for t in self.targets if not t["up"]]

    def as_json(self) -> dict[str, Any]:
        """The `health --json` document: {ok, targets: [{job, instance, up}], alerts: [{name,
        severity, instance, state, since}]} (with a few more keys each)."""
        return {"ok": self.ok, "targets": self.targets, "alerts": self.alerts}

    def targets_frame(self) -> Any:
        """The targets as a DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.targets, columns=["job", "instance", "up", "health", "error", "last_scrape"])

    def alerts_frame(self) -> Any:
        """The firing alerts as a DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.alerts, columns=["name", "severity", "instance", "state", "since", "summary"])


def health(inventory: Any) -> Health:
    """Return the stack's Health as Prometheus sees it now."""
    return Health(targets(inventory), alerts(inventory))


def query(inventory: Any, promql: str) -> Any:
    """Return an instant PromQL query's result as a DataFrame: one row per series, its labels as
    columns and `value`."""
    import pandas as pd

    found = api(inventory, "/api/v1/query", {"query": promql})
    rows = [{**r.get("metric", {}), "value": float(r["value"][1])} for r in found.get("result", [])]
    return pd.DataFrame(rows)


def query_range(inventory: Any, promql: str, minutes: float = 60, step: str | None = None) -> Any:
    """Return a PromQL query over the last `minutes` as a DataFrame: a time index, one column per
    series (named by its labels other than __name__).

    promql: the query.
    minutes: how far back.
    step: the resolution (default: about 240 points).
    """
    import pandas as pd

    end = time.time()
    start = end - minutes * 60
    step = step or f"{max(1, int(minutes * 60 / 240))}s"
    found = api(inventory, "/api/v1/query_range", {"query": promql, "start": start, "end": end, "step": step})
    columns = {}
    for series in found.get("result", []):
        labels = {k: v for k, v in series.get("metric", {}).items() if k != "__name__"}
        name = ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or promql
        columns[name] = pd.Series(
            [float(v) for _, v in series["values"]],
            index=pd.to_datetime([float(t) for t, _ in series["values"]], unit="s", utc=True),
        )
    return pd.DataFrame(columns)


def wait_until(inventory: Any, check: Any, timeout: float, every: float = 1.0) -> Any:
    """Ask health() until check(health) is true; return the Health, or raise HealthError with the
    last one seen after `timeout` seconds.

    check: a function of a Health.
    timeout: seconds.
    every: seconds between asks.
    """
    deadline = time.monotonic() + timeout
    seen: Health | None = None
    while True:
        try:
            seen = health(inventory)
            if check(seen):
                return seen
        except HealthError:
            if time.monotonic() >= deadline:
                raise
        if time.monotonic() >= deadline:
            down = ", ".join(f"{t['job']}/{t['instance']}" for t in seen.down) if seen else "?"
            raise HealthError(f"not as wanted after {timeout:g} s (targets down: {down or 'none'})")
        time.sleep(every)
