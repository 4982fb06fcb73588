"""What the load balancer pair's lab tests measure: a client that asks the site through the floating
address every 50 ms (a new https connection each, verified against the lab CA), and a sampler that
reads `ip addr` on both load balancers every 100 ms (in each host's own network namespace, from
the control machine), so a test can say the largest gap in answers, how often the address moved,
the longest time nobody held it, and whether two ever held it at once."""

from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from foobar_ops.stack.verify import connection
from tests.lab.helpers import HTTPS, SITE, site_tls

VIP = "10.77.0.50"
LBS = ("lb-01", "lb-02")


@dataclass
class Answer:
    at: float  # when the request was sent (monotonic)
    done: float  # when it ended
    ok: bool
    served_by: str | None
    error: str | None


@dataclass
class Sample:
    at: float
    holders: tuple[str, ...]


@dataclass
class Watch:
    """Run the client and the sampler until stop(); then read the figures.

    lab: the Lab (its machines give each load balancer's init pid, for its network namespace).
    interval: seconds between requests.
    timeout: a request's own time limit.
    path: what is requested.
    """

    lab: Any
    interval: float = 0.05
    timeout: float = 2.0
    path: str = "/static/app.css"
    answers: list[Answer] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> "Watch":
        self._pids = {name: self.lab.machines[name].init_pids()[0] for name in LBS}
        self._threads = [threading.Thread(target=self._client, daemon=True)]
        self._threads += [threading.Thread(target=self._sampler, daemon=True)]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> "Watch":
        self._stop.set()
        for thread in self._threads:
            thread.join(10)
        return self

    def __enter__(self) -> "Watch":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _client(self) -> None:
        """A request every `interval` seconds, each on a new connection, each in a thread of its own
        (a request that hangs does not hold the next one back)."""
        lock = threading.Lock()

        def one(sent: float) -> None:
            conn = connection(VIP, HTTPS, SITE, site_tls(), timeout=self.timeout)
            try:
                conn.request("GET", self.path, headers={"Host": SITE})
                resp = conn.getresponse()
                resp.read()
                answer = Answer(sent, time.monotonic(), resp.status == 200, resp.getheader("X-Served-By"), None)
            except OSError as err:
                answer = Answer(sent, time.monotonic(), False, None, str(err) or type(err).__name__)
            finally:
                conn.close()
            with lock:
                self.answers.append(answer)

        workers = []
        next_at = time.monotonic()
        while not self._stop.is_set():
            worker = threading.Thread(target=one, args=(time.monotonic(),), daemon=True)
            worker.start()
            workers.append(worker)
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))
        for worker in workers:
            worker.join(self.timeout + 1)

    def _holds(self, name: str) -> bool:
        out = subprocess.run(
            ["nsenter", "-t", str(self._pids[name]), "-n", "ip", "-o", "-4", "addr", "show"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        return f" {VIP}/" in out.stdout

    def _sampler(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            at = time.monotonic()
            try:
                holders = tuple(name for name in LBS if self._holds(name))
            except (subprocess.SubprocessError, OSError):
                holders = ("?",)
            self.samples.append(Sample(at, holders))
            next_at += 0.1
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    # ---- figures ----------------------------------------------------------------------------------

    def failed(self) -> list[Answer]:
        return [a for a in self.answers if not a.ok]

    def largest_gap(self) -> float:
        """The longest time between two answered requests (by when they were answered)."""
        done = sorted(a.done for a in self.answers if a.ok)
        return max((b - a for a, b in zip(done, done[1:], strict=False)), default=float("inf"))

    def moves(self) -> int:
        """How many times the address went to another load balancer (a time with none is not a move)."""
        seen = [s.holders[0] for s in self.samples if len(s.holders) == 1]
        return sum(1 for a, b in zip(seen, seen[1:], strict=False) if a != b)

    def holder(self) -> str | None:
        """Who held the address at the last sample."""
        last = self.samples[-1].holders if self.samples else ()
        return last[0] if len(last) == 1 else None

    def longest_none(self) -> float:
        """The longest time no load balancer held the address (sampled every 100 ms)."""
        longest, since = 0.0, None
        for s in self.samples:
            if not s.holders:
                since = s.at if since is None else since
                longest = max(longest, s.at - since + 0.1)
            else:
                since = None
        return longest

    def ever_two(self) -> int:
        """How many samples saw both load balancers holding the address."""
        return sum(1 for s in self.samples if len(s.holders) > 1)

    def figures(self) -> dict[str, Any]:
        return {
            "requests": len(self.answers),
            "failed": len(self.failed()),
            "largest_gap_s": round(self.largest_gap(), 3),
            "moves": self.moves(),
            "longest_none_s": round(self.longest_none(), 2),
            "samples": len(self.samples),
            "samples_with_two": self.ever_two(),
            "holder": self.holder(),
        }
