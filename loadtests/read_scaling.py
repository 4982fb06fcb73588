"""Read scaling over the database pair: read-heavy (nine reads to one write) through the load
balancer; every response's content checked. Run by `foobar-ops loadtest read-scaling`, which
computes the verdict from the X-DB-Node of each response and each node's read counters.
"""

from __future__ import annotations

import itertools
import os
import uuid

import tally  # noqa: F401 - counts X-Served-By / X-DB-Node per response
from locust import FastHttpUser, constant, task
from site_tls import site_context

SITE = os.environ.get("FOOBAR_SITE", "foobar.com")
_numbers = itertools.count()
_run = uuid.uuid4().hex[:6]


class Reader(FastHttpUser):
    wait_time = constant(0)
    default_headers = {"Host": SITE}
    insecure = False  # https: the certificate verified for the site (site_tls)
    ssl_context_factory = site_context

    @task(9)
    def read(self):
        with self.client.get("/api/items", name="/api/items", catch_response=True) as r:
            try:
                ok = r.status_code == 200 and isinstance(r.json().get("items"), list)
            except ValueError:
                ok = False
            if not ok:
                r.failure(f"read: status {r.status_code}, not a JSON item list")

    @task(1)
    def write(self):
        name = f"loadtest-{_run}-{next(_numbers)}"
        with self.client.post("/api/items", json={"name": name}, name="POST /api/items", catch_response=True) as r:
            try:
                ok = r.status_code == 201 and r.json().get("name") == name
            except ValueError:
                ok = False
            if not ok:
                r.failure(f"write: status {r.status_code}, the item did not come back")
