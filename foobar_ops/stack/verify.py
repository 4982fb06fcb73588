"""Verify the site as users see it: requests to the address foobar.com points at (the floating
address of the load balancer pair, or the only load balancer) with the site's Host, and the one
rule for a passing verification."""

from __future__ import annotations

import http.client
import math
import ssl
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ..core.shape import headline, one_line
from . import topology
from .topology import domain, site_address, vip, web_hosts


class SiteHTTPS(http.client.HTTPSConnection):
    """An https connection to an address (a load balancer, the floating address) that speaks to it
    as the site: SNI and the certificate's name check are the site's name, not the address."""

    def __init__(self, address: str, port: int, site: str, context: ssl.SSLContext, timeout: float = 5.0) -> None:
        super().__init__(address, port, timeout=timeout, context=context)
        self.site = site

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.site)  # type: ignore[attr-defined]


def tls_context(inventory: Any) -> ssl.SSLContext | None:
    """The TLS context foobar_ops's clients reach the site with (None when the site is plain http):
    certificates verified, against stack.tls.ca when the inventory names one, else the system's
    trust store; never with verification off."""
    if topology.site_scheme(inventory) != "https":
        return None
    ca = topology.site_ca(inventory)
    try:
        return ssl.create_default_context(cafile=ca)
    except (OSError, ssl.SSLError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise topology.TopologyError(f"{inventory.path}: stack.tls.ca {ca}: cannot load it: {reason}") from None


def connection(
    address: str, port: int, site: str, tls: ssl.SSLContext | None, timeout: float = 5.0
) -> http.client.HTTPConnection:
    """A connection to `address` for the site: https (verified for `site`) when tls is given."""
    if tls is None:
        return http.client.HTTPConnection(address, port, timeout=timeout)
    return SiteHTTPS(address, port, site, tls, timeout=timeout)


def request(
    address: str,
    port: int,
    host_header: str,
    path: str = "/",
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 5.0,
    tls: ssl.SSLContext | None = None,
) -> dict[str, Any]:
    """Send one HTTP request and return status, served_by, db_node, release, ms, body (or error).

    address: where to connect (the load balancer's address).
    port: its port.
    host_header: the Host header (the site's domain; also the name TLS verifies).
    path, method, body, headers: the request.
    timeout: seconds.
    tls: https with this context (see tls_context); None: plain http.
    """
    started = time.perf_counter()
    conn = connection(address, port, host_header, tls, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"Host": host_header, **(headers or {})})
        resp = conn.getresponse()
        data = resp.read()
        return {
            "status": resp.status,
            "served_by": resp.getheader("X-Served-By"),
            "db_node": resp.getheader("X-DB-Node"),
            "release": resp.getheader("X-Release"),
            "ms": round((time.perf_counter() - started) * 1000, 2),
            "body": data,
            "error": None,
        }
    except OSError as err:
        return {
            "status": None,
            "served_by": None,
            "db_node": None,
            "release": None,
            "ms": round((time.perf_counter() - started) * 1000, 2),
            "body": b"",
            "error": str(err),
        }
    finally:
        conn.close()


def wait_all_up(inventory: Any, timeout: float = 30.0, backend: str = topology.BACKEND) -> dict[str, str]:
    """Wait until every load balancer reports every server of the backend UP; return their status
    (a server UP on one load balancer and not on another is reported as each one sees it).

    A freshly deployed server needs a few passing health checks before it takes traffic.
    inventory: the Inventory.
    timeout: give up after this many seconds (the statuses at that moment are returned).
    backend: the HAProxy backend.
    """
    from .balancers import Balancers

    with Balancers(inventory) as lbs:
        seen = {lb.host.name: lb.wait_all_up(backend, timeout) for lb in lbs}
    out: dict[str, str] = {}
    for server in dict.fromkeys(name for statuses in seen.values() for name in statuses):
        words = {lb: statuses.get(server, "absent") for lb, statuses in seen.items()}
        same = set(words.values())
        out[server] = same.pop() if len(same) == 1 else ", ".join(f"{lb} {w}" for lb, w in words.items())
    return out


def through_lb(inventory: Any, n: int = 20, path: str = "/") -> Any:
    """Send n sequential GET requests to the site's address (the floating address when there is
    one); return a DataFrame of them.

    inventory: the Inventory.
    n: number of requests.
    path: the path requested.
    """
    import pandas as pd

    address, port, tls = site_address(inventory), topology.site_port(inventory), tls_context(inventory)
    rows = [request(address, port, domain(inventory), path, tls=tls) for _ in range(n)]
    return pd.DataFrame([{k: v for k, v in r.items() if k != "body"} for r in rows])


def summary_line(inventory: Any, frame: Any) -> str:
    """Return one line saying how the site answered through the load balancer.

    inventory: the Inventory.
    frame: what through_lb returned.
    """
    address = site_address(inventory)
    via = f"the floating address {address}" if vip(inventory) else f"{topology.lb_hosts(inventory)[0].name} ({address})"
    if topology.site_scheme(inventory) == "https":
        via += " over https"
    ok = int((frame["status"] == 200).sum())
    by = Counter(frame.loc[frame["status"] == 200, "served_by"].dropna())
    servers = ", ".join(f"{name} {count}" for name, count in sorted(by.items())) or "none"
    return f"{domain(inventory)} via {via}: {ok}/{len(frame)} answered 200; served by {servers}"


@dataclass(repr=False)
class Verification:
    """How the site answered through the load balancer.

    ok: every request answered 200 and every web server answered some (the one rule of a pass).
    line: one line saying so.
    requests: a DataFrame of the requests (status, served_by, db_node, release, ms, error).
    statuses: what the load balancer saw of each server before the requests (when it was asked).
    """

    ok: bool
    line: str
    requests: Any
    statuses: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """Return ok, the line, the load balancer's statuses and every request (a dict each, no NaN)."""
        return {
            "ok": self.ok,
            "line": self.line,
            "statuses": dict(self.statuses),
            "requests": _records(self.requests),
        }

    def __str__(self) -> str:
        return one_line(f"{'PASS' if self.ok else 'FAIL'} {self.line}")

    def __repr__(self) -> str:
        return f"<Verification {self}>"

    def _repr_html_(self) -> str:
        table = self.requests.groupby(["served_by", "status"], dropna=False).size().rename("requests")
        return headline(str(self), self.ok) + table.to_frame().to_html()


def _records(frame: Any) -> list[dict[str, Any]]:
    """A DataFrame's rows as JSON-ready dicts: NaN (a missing value) as None, numpy numbers as
    Python's."""
    out = []
    for row in frame.to_dict(orient="records"):
        clean = {}
        for key, value in row.items():
            if hasattr(value, "item") and not isinstance(value, (str, bytes)):
                value = value.item()
            clean[str(key)] = None if isinstance(value, float) and math.isnan(value) else value
        out.append(clean)
    return out


def check_site(inventory: Any, n: int = 20, wait: float = 30.0) -> Verification:
    """Wait until the load balancer sees every server UP (up to `wait` seconds), then send n
    requests through it and judge them.

    inventory: the Inventory.
    n: requests to send.
    wait: seconds to wait for every server to be UP first (0: do not ask the load balancer).
    """
    statuses = wait_all_up(inventory, wait) if wait > 0 else {}
    frame = through_lb(inventory, n)
    answered = set(frame.loc[frame["status"] == 200, "served_by"].dropna())
    ok = bool((frame["status"] == 200).all()) and answered == {h.name for h in web_hosts(inventory)}
    line = summary_line(inventory, frame)
    down = {name: s for name, s in statuses.items() if s != "UP"}
    if down:
        line += "; not UP: " + ", ".join(f"{name} {s}" for name, s in down.items())
    return Verification(ok, line, frame, statuses)
