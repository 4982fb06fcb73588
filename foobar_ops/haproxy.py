"""The HAProxy runtime API over SSH: `show stat` as a DataFrame by field name, and drain /
ready / maint for a server, refusing to take out the last server that is UP."""
from __future__ import annotations

import csv
import io
import time

from .errors import FoobarOpsError
from .roles.haproxy import STATS_SOCKET
from .shell import cmd
from .ssh import Remote

__all__ = ["HAProxy", "LBError"]


class LBError(FoobarOpsError):
    """The runtime API refused or failed (unknown server, last UP server, drain timeout)."""


def parse_stat(text: str) -> list[dict]:
    """Parse `show stat` CSV (header line `# pxname,svname,...`) into dicts keyed by field name.

    text: the command's output.
    """
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or not lines[0].startswith("# "):
        raise LBError(f"unexpected `show stat` output: {text[:200]!r}")
    reader = csv.DictReader(io.StringIO("\n".join([lines[0][2:]] + lines[1:])))
    rows = []
    for row in reader:
        rows.append({k: _number(v) for k, v in row.items() if k})
    return rows


def _number(value: str):
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        return value


class HAProxy:
    """The runtime API of the load balancer host (admin stats socket, through SSH as root).

    inventory: the Inventory.
    host: the load balancer's name (default: the first host with the haproxy role).
    socket: the admin socket path.
    journal: where server state changes are recorded (default: the project's journal).
    command: what is recorded as the command that made them.
    record: journal each state change as a run of its own (False: the caller records them).
    """

    def __init__(self, inventory, host: str | None = None, socket: str = STATS_SOCKET, journal=None,
                 command: str = "python: HAProxy", record: bool = True) -> None:
        name = host or next((h.name for h in inventory.hosts.values() if "haproxy" in h.roles), None)
        if name is None:
            raise LBError(f"{inventory.path}: no host has the haproxy role")
        self.host = inventory.host(name)
        self.remote = Remote(self.host, inventory)
        self.socket = socket
        self.inventory, self._journal, self.origin, self.record = inventory, journal, command, record

    def command(self, line: str) -> str:
        """Send one runtime API command and return its answer.

        line: e.g. "show stat" or "set server bk_web/web-01 state drain".
        """
        script = f"echo {cmd(line)} | socat -t 5 stdio {cmd('unix-connect:' + self.socket)}"
        out = self.remote.run(cmd("sh", "-c", script), sudo=self.host.user != "root")
        if not out.ok:
            raise LBError(f"{self.host.name}: `{line}` failed: {out.error}: {(out.stderr or out.stdout).strip()}")
        return out.stdout

    def stat_rows(self) -> list[dict]:
        """Return `show stat` as a list of dicts keyed by field name."""
        return parse_stat(self.command("show stat"))

    def stat(self):
        """Return `show stat` as a pandas DataFrame (columns are HAProxy's field names)."""
        import pandas as pd
        return pd.DataFrame(self.stat_rows())

    def servers(self, backend: str = "bk_web") -> dict[str, dict]:
        """Return the servers of a backend: name -> stat row."""
        return {r["svname"]: r for r in self.stat_rows()
                if r["pxname"] == backend and r["svname"] not in ("FRONTEND", "BACKEND")}

    def _set_state(self, backend: str, server: str, state: str) -> None:
        servers = self.servers(backend)
        if server not in servers:
            raise LBError(f"backend {backend} has no server {server!r} (servers: {', '.join(servers)})")
        if state in ("drain", "maint"):
            others_up = [n for n, r in servers.items() if n != server and str(r["status"]).startswith("UP")]
            if not others_up:
                raise LBError(f"refusing to {state} {backend}/{server}: it is the last server that is UP")
        before = servers[server]["status"]
        started = time.perf_counter()
        answer = self.command(f"set server {backend}/{server} state {state}").strip()
        self._record(backend, server, before, state, answer, time.perf_counter() - started)
        if answer:
            raise LBError(f"HAProxy refused `set server {backend}/{server} state {state}`: {answer}")

    def _record(self, backend, server, before, state, answer, seconds) -> None:
        """Journal a server state change as a run with one result."""
        if not getattr(self, "record", True):
            return
        from .records import Journal
        from .result import Result
        journal = self._journal or Journal()
        run_id = journal.start_run(command=f"{self.origin} {state} {backend}/{server}", inventory=self.inventory,
                                   parameters={"backend": backend, "server": server, "state": state})
        ok = not answer
        journal.add_result(run_id, Result(self.host.name, f"haproxy.server:{backend}/{server}", f"{backend}/{server}",
                                          "haproxy.server", ok, changed=ok, changes={"old": before, "new": state},
                                          comment=answer or f"{backend}/{server}: {before} -> {state}",
                                          duration_ms=round(seconds * 1000, 2)))
        journal.finish_run(run_id, "ok" if ok else "failed")

    def ready(self, server: str, backend: str = "bk_web") -> None:
        """Put a server back in rotation.

        server: server name (the inventory host name).
        backend: backend name.
        """
        self._set_state(backend, server, "ready")

    def maint(self, server: str, backend: str = "bk_web") -> None:
        """Take a server out at once (maintenance), unless it is the last one UP."""
        self._set_state(backend, server, "maint")

    def drain(self, server: str, backend: str = "bk_web", timeout: float = 60, poll: float = 0.5) -> float:
        """Stop sending new sessions to a server and wait until its current sessions reach zero;
        return the seconds waited. Refused when it is the last server that is UP.

        server: server name.
        backend: backend name.
        timeout: give up (LBError) after this many seconds.
        poll: seconds between checks.
        """
        self._set_state(backend, server, "drain")
        started = time.monotonic()
        while True:
            scur = self.servers(backend)[server]["scur"] or 0
            if scur == 0:
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise LBError(f"{backend}/{server} still has {scur} sessions after {timeout:g} s of draining")
            time.sleep(poll)

    def wait_up(self, server: str, backend: str = "bk_web", timeout: float = 30, poll: float = 0.5) -> float:
        """Wait until a server's status is UP (its health checks pass); return the seconds waited.

        server: server name.
        backend: backend name.
        timeout: give up (LBError) after this many seconds.
        poll: seconds between checks.
        """
        started = time.monotonic()
        while True:
            status = str(self.servers(backend)[server]["status"])
            if status == "UP":
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise LBError(f"{backend}/{server} is {status}, not UP, {timeout:g} s after it came back")
            time.sleep(poll)

    def close(self) -> None:
        """Close the SSH connection."""
        self.remote.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
