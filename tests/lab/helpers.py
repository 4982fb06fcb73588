"""What the lab tests share: requests through the load balancer, inventory copies, applies, and
steady traffic in the background."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import yaml

from foobar_ops.core.inventory import load_inventory
from foobar_ops.stack.verify import request, tls_context
from tests.conftest import LAB_INVENTORY, run_cli

LB = "10.77.0.50"  # the floating address: the site as users reach it
SITE = "foobar.com"
HTTPS = 443
#: the lab CA's certificate (`foobar-ops paths --json` lab_ca): what every client here verifies against
LAB_CA = Path("/var/lib/foobar-ops/lab/tls/ca.crt")
_tls = None


def site_tls():
    """The TLS context of the lab's clients: the site's certificate verified against the lab CA."""
    global _tls
    if _tls is None:
        _tls = tls_context(load_inventory(LAB_INVENTORY))
        assert _tls is not None, "the lab inventory serves the site over https"
    return _tls


def get(path="/", **kw):
    return request(LB, HTTPS, SITE, path, tls=site_tls(), **kw)


def post(body: bytes, ctype="application/json"):
    return request(
        LB, HTTPS, SITE, "/api/items", method="POST", body=body, headers={"Content-Type": ctype}, tls=site_tls()
    )


#: GET requests sent from a lab host (argv: address, port, Host, path, count, at once): one JSON list
_FROM_HOST = r"""
import base64, http.client, json, sys
from concurrent.futures import ThreadPoolExecutor
address, host, path = sys.argv[1], sys.argv[3], sys.argv[4]
port, n, at_once = int(sys.argv[2]), int(sys.argv[5]), int(sys.argv[6])
def one(_):
    conn = http.client.HTTPConnection(address, port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": host})
        r = conn.getresponse()
        body = r.read()
        said = {k: r.getheader(h) for k, h in (("served_by", "X-Served-By"), ("release", "X-Release"))}
        return {"status": r.status, "body": base64.b64encode(body).decode(), **said, "error": None}
    except OSError as err:
        return {"status": None, "body": "", "served_by": None, "release": None, "error": str(err)}
    finally:
        conn.close()
with ThreadPoolExecutor(at_once) as pool:
    print(json.dumps(list(pool.map(one, range(n)))))
"""


def request_from(lab, source: str, address: str, path: str = "/", n: int = 1, at_once: int = 1) -> list[dict]:
    """GET requests to a web server sent from a lab host: the firewall lets a web server's port 80
    be reached from the load balancers only (not from this machine).

    source: the lab host that sends them (a load balancer).
    address: the web server's address.
    n, at_once: how many, and how many at a time.
    """
    import base64

    argv = ["python3", "-c", _FROM_HOST, address, "80", SITE, path, str(n), str(at_once)]
    done = lab.run(source, argv)
    assert done.returncode == 0, done.stderr[-500:]
    answers = json.loads(done.stdout)
    for answer in answers:
        answer["body"] = base64.b64decode(answer["body"])
    return answers


def inventory_with(tmp_path: Path, host: str, **vars_) -> Path:
    data = yaml.safe_load(LAB_INVENTORY.read_text())
    for name in [host] if isinstance(host, str) else host:
        data["hosts"][name].setdefault("vars", {}).update(vars_)
    path = tmp_path / "stack.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def apply(inv=LAB_INVENTORY, *extra):
    done = run_cli("apply", "-i", inv, "--json", *extra, timeout=900)
    assert done.out, done
    return done, done.json()


class Traffic:
    """Requests through the load balancer in a background thread, bounded in count and time.
    With writes=TAG, every other request is a POST of an item named TAG-N (every `every`-th, when
    given); each result keeps its status, the node and server that answered, and the item name."""

    def __init__(self, path="/health", max_seconds=90, max_requests=5000, writes: str | None = None, every: int = 2):
        self.path, self.max_seconds, self.max_requests, self.writes = path, max_seconds, max_requests, writes
        self.every = every
        self.results: list[dict] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        deadline = time.monotonic() + self.max_seconds
        while not self.stop.is_set() and time.monotonic() < deadline and len(self.results) < self.max_requests:
            n = len(self.results)
            if self.writes and n % self.every == self.every - 1:
                name = f"{self.writes}-{n}"
                answer = post(json.dumps({"name": name}).encode())
                self.results.append(
                    dict(
                        answer,
                        status=200 if answer["status"] == 201 else answer["status"],
                        posted=answer["status"] == 201,
                        name=name,
                        write=True,
                    )
                )
            else:
                self.results.append(dict(get(self.path), write=False))
            time.sleep(0.01)

    @property
    def posted(self) -> int:
        """POSTs acknowledged (201)."""
        return sum(1 for r in self.results if r.get("posted"))

    @property
    def acknowledged(self) -> list[str]:
        """Names of the items whose POST was acknowledged."""
        return [r["name"] for r in self.results if r.get("posted")]

    def __enter__(self):
        self.thread.start()
        time.sleep(0.3)
        return self

    def __exit__(self, *exc):
        time.sleep(0.3)
        self.stop.set()
        self.thread.join(10)

    @property
    def failures(self):
        return [r for r in self.results if r["status"] != 200]

    @property
    def read_failures(self):
        return [r for r in self.failures if not r["write"]]
