"""Monitoring: the stack's health as Prometheus sees it, PromQL as DataFrames, and the webhook that
records Alertmanager's alerts in the journal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.inventory import Inventory
from ..core.journal import Journal
from .common import inventory_of, journal_of


def health(inventory: Inventory | str | Path, wait: float = 0) -> Any:
    """Return the stack's Health from Prometheus on the monitoring host: every scrape target up or
    down and the alerts firing (`ok` False when one is critical); targets_frame() and alerts_frame()
    give DataFrames.

    inventory: the Inventory (with stack.monitoring), or its path.
    wait: up to this many seconds for every target to be up (e.g. just after a deploy); the Health
        as it then is (a HealthError only when Prometheus cannot be asked at all).
    """
    from ..core.errors import HealthError
    from ..stack import health as h

    inv = inventory_of(inventory)
    if wait > 0:
        try:
            return h.wait_until(inv, lambda found: found.targets and not found.down, timeout=wait)
        except HealthError:
            pass
    return h.health(inv)


def metrics(
    inventory: Inventory | str | Path, promql: str, minutes: float | None = None, step: str | None = None
) -> Any:
    """Return a PromQL query as a DataFrame: its value now (one row per series), or with minutes, the
    last minutes of it (a time index, one column per series).

    inventory: the Inventory (with stack.monitoring), or its path.
    promql: the query, e.g. 'rate(haproxy_server_http_responses_total[1m])'.
    minutes: how far back (None: now only).
    step: the resolution over time (default: about 240 points).
    """
    from ..stack import health as h

    inv = inventory_of(inventory)
    return h.query(inv, promql) if minutes is None else h.query_range(inv, promql, minutes, step)


def alert_receiver(
    inventory: Inventory | str | Path,
    journal: Journal | str | Path | None = None,
    address: str | None = None,
    port: int | None = None,
) -> Any:
    """Return the webhook that records Alertmanager's alerts in the journal (not started: start()
    serves it in a thread, server.serve_forever() in the foreground).

    inventory: the Inventory (with stack.monitoring), or its path.
    journal: where alerts are recorded (default: the records folder's).
    address, port: where it listens (default: stack.monitoring.webhook).
    """
    from ..stack import alerts

    return alerts.receiver(inventory_of(inventory), journal_of(journal), address, port)


def records_alerts(journal: Journal | str | Path | None = None, since: Any = None, name: str | None = None) -> Any:
    """Return the alerts recorded by the webhook (each firing and resolution), oldest first, as a
    DataFrame: name, severity, instance, state, at, since, ended, summary.

    journal: the journal (default: the records folder's).
    since: only after this: an age such as "1d", "2h", or a date/time.
    name: only alerts of this name.
    """
    return journal_of(journal).alerts(since, name)
