"""Per-response tallies for foobar_ops load tests: which web server answered (X-Served-By) and which
database node served a read or took a write (X-DB-Node), summed over every Locust process (workers
report to the master) and written at the end to the file named by FOOBAR_TALLY.

Imported by the locustfiles beside it; it needs nothing but Locust.
"""

from __future__ import annotations

import json
import os
from collections import Counter

from locust import events
from locust.runners import WorkerRunner

TALLY: dict[str, Counter] = {"served_by": Counter(), "reads": Counter(), "writes": Counter(), "checked": Counter()}


def _header(response, name: str) -> str | None:
    headers = getattr(response, "headers", None) or {}
    return headers.get(name) or headers.get(name.lower())


@events.request.add_listener
def _count(request_type, name, response, exception, **kwargs):
    if response is None:
        return
    served = _header(response, "X-Served-By")
    if served:
        TALLY["served_by"][served] += 1
    node = _header(response, "X-DB-Node")
    if node and not exception:
        TALLY["writes" if request_type == "POST" else "reads"][node] += 1
    TALLY["checked"]["failed" if exception else "ok"] += 1


@events.report_to_master.add_listener
def _report(client_id, data, **kwargs):
    data["foobar_tally"] = {k: dict(v) for k, v in TALLY.items()}
    for counter in TALLY.values():
        counter.clear()


@events.worker_report.add_listener
def _merge(client_id, data, **kwargs):
    for key, counts in data.get("foobar_tally", {}).items():
        TALLY[key].update(counts)


@events.quitting.add_listener
def _write(environment, **kwargs):
    path = os.environ.get("FOOBAR_TALLY")
    if path and not isinstance(environment.runner, WorkerRunner):  # the master (or a lone process) writes
        with open(path, "w") as out:
            json.dump({k: dict(v) for k, v in TALLY.items()}, out)
