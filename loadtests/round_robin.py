"""Round robin through the load balancer: the home page and the items API, each response's
content checked (not only its status). Run by `foobar-ops loadtest round-robin`, which computes the
verdict; by hand (lab traffic only): `FOOBAR_SITE_CA=/var/lib/foobar-ops/lab/tls/ca.crt
locust -f loadtests/round_robin.py --host https://10.77.0.50`.
"""

from __future__ import annotations

import os

import tally  # noqa: F401 - counts X-Served-By / X-DB-Node per response
from locust import FastHttpUser, constant, task
from site_tls import site_context

SITE = os.environ.get("FOOBAR_SITE", "foobar.com")


class Visitor(FastHttpUser):
    wait_time = constant(0)
    default_headers = {"Host": SITE}
    insecure = False  # https: the certificate verified for the site (site_tls)
    ssl_context_factory = site_context

    @task(1)
    def home(self):
        with self.client.get("/", name="/", catch_response=True) as r:
            if r.status_code != 200 or "<h1>foobar.com</h1>" not in (r.text or "") or 'id="served-by"' not in r.text:
                r.failure(f"home page: status {r.status_code}, not the foobar.com page")

    @task(1)
    def items(self):
        with self.client.get("/api/items", name="/api/items", catch_response=True) as r:
            try:
                ok = r.status_code == 200 and isinstance(r.json().get("items"), list)
            except ValueError:
                ok = False
            if not ok:
                r.failure(f"items: status {r.status_code}, not a JSON item list")
