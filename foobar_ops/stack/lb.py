"""The HAProxy runtime API over SSH: `show stat` as a DataFrame by field name, and drain /
ready / maint for a server, refusing to take out the last server that is UP. Each state change
is journaled (unless the caller records it itself)."""

from __future__ import annotations

import csv
import io
import json
import re
import shlex
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ..core.errors import AuthError, ConnectionFailed, HostKeyError, LastServerUp, LBError
from ..core.journal import Journal
from ..core.result import Result, Status
from ..core.shell import cmd
from ..core.ssh import Remote
from .topology import BACKEND, STATS_SOCKET, lb_hosts, web_hosts

MARKS = "/var/lib/foobar-ops/drains"  # on the load balancer: drains made by runs, one file each
STATE_LOCK = "/run/foobar-ops/lb-state.lock"  # serializes admin state changes on the load balancer

__all__ = ["HAProxy", "LBError", "LastServerUp", "check_server", "parse_stat", "server_result"]
#: A backend or server name as HAProxy's configuration (and a mark file's name) may hold it.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
#: The backends the role's configuration declares (haproxy.cfg.j2).
BACKENDS = (BACKEND,)

Row = dict[str, Any]


def _name(what: str, value: Any) -> str:
    """Return a backend or server name, or raise LBError: it goes into a file name on the load
    balancer and into runtime API commands, so nothing but a plain name (no '/', no '..') passes.
    """
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise LBError(f"{what} {value!r} is not a name (letters, digits, '.', '_' or '-'): nothing was done")
    return value


def check_server(inventory: Any, server: str, backend: str = BACKEND) -> None:
    """Refuse, before any command runs, a backend the configuration does not declare or a server
    that is not one of its servers (the inventory's web hosts), naming what there is.

    inventory: the Inventory.
    server: the server asked for.
    backend: the backend asked for.
    """
    _name("backend", backend)
    _name("server", server)
    if backend not in BACKENDS:
        raise LBError(
            f"no backend {backend!r} in the configuration (backends: {', '.join(BACKENDS)}): nothing was done"
        )
    servers = [h.name for h in web_hosts(inventory)]
    if server not in servers:
        raise LBError(
            f"backend {backend} has no server {server!r} in {inventory.path} "
            f"(servers: {', '.join(servers) or 'none'}): nothing was done"
        )


def parse_stat(text: str) -> list[Row]:
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


def is_up(row: Row) -> bool:
    """Return True when a server row takes traffic: UP, or UP while its checks settle ("UP 1/2")."""
    return str(row["status"]).startswith("UP")


def server_result(
    lb_host: str,
    backend: str,
    server: str,
    action: str,
    ok: bool,
    comment: str,
    seconds: float,
    before: Any = None,
    changed: bool = True,
) -> Result:
    """Return the Result that records one server state change on the load balancer.

    lb_host: the load balancer's name.
    backend, server: which server.
    action: drain, ready, maint, or as-is (nothing done).
    ok: it worked.
    comment: one sentence.
    seconds: how long it took.
    before: the server's status before.
    changed: whether the server's state changed.
    """
    name = f"{backend}/{server}"
    changed = ok and changed
    status = Status.CHANGED if changed else Status.OK if ok else Status.FAILED
    return Result(
        lb_host,
        f"haproxy.server:{name}:{action}",
        name,
        "haproxy.server",
        status,
        changes={"old": before, "new": action} if changed else {},
        comment=comment,
        duration_ms=round(seconds * 1000, 2),
    )


def _number(value: str | None) -> int | str | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        return value


def marks_command(backend: str = BACKEND) -> str:
    """The command that prints the drain marks of a backend's servers, one JSON line each (run as
    root on the load balancer)."""
    _name("backend", backend)
    return f'cd {cmd(MARKS)} 2>/dev/null && for f in {cmd(backend)}.*; do [ -f "$f" ] && cat "$f"; done; true'


class HAProxy:
    """The runtime API of the load balancer host (admin stats socket, through SSH as root).

    inventory: the Inventory.
    host: the load balancer's name (default: the first host with the haproxy role; see
        balancers.Balancers for all of them at once).
    socket: the admin socket path.
    journal: where server state changes are recorded (default: the project's journal).
    command: what is recorded as the command that made them.
    record: journal each state change as a run of its own (False: the caller records them).
    remote: a connection to the load balancer to use (a run's own, which holds its run lock: the
        run closes it, not this object); default: a connection of its own.
    """

    #: where each server state change's result goes instead of a journal run of its own (a caller
    #: that records the change on every load balancer as one run); None: see record
    emit: Callable[[Result], None] | None = None

    def __init__(
        self,
        inventory: Any,
        host: str | None = None,
        socket: str = STATS_SOCKET,
        journal: Journal | None = None,
        command: str = "python: HAProxy",
        record: bool = True,
        remote: Remote | None = None,
    ) -> None:
        found = inventory.host(host) if host else next(iter(lb_hosts(inventory)), None)
        if found is None:
            raise LBError(f"{inventory.path}: no host has the haproxy role")
        self.host = found
        self._owned = remote is None
        self.remote = remote if remote is not None else Remote(self.host, inventory)
        self.socket = socket
        self.inventory, self._journal, self.origin, self.record = inventory, journal, command, record

    def command(self, line: str) -> str:
        """Send one runtime API command and return its answer.

        line: e.g. "show stat" or "set server bk_web/web-01 state drain".
        """
        script = f"echo {cmd(line)} | socat -t 5 stdio {cmd('unix-connect:' + self.socket)}"
        out = self._run(script)
        if not out.ok:
            raise LBError(f"{self.host.name}: `{line}` failed: {out.error}: {(out.stderr or out.stdout).strip()}")
        return out.stdout

    def stat_rows(self) -> list[Row]:
        """Return `show stat` as a list of dicts keyed by field name."""
        return parse_stat(self.command("show stat"))

    def stat(self) -> Any:
        """Return `show stat` as a pandas DataFrame (columns are HAProxy's field names)."""
        import pandas as pd

        return pd.DataFrame(self.stat_rows())

    def servers(self, backend: str = BACKEND) -> dict[str, Row]:
        """Return the servers of a backend: name -> stat row."""
        return {
            r["svname"]: r
            for r in self.stat_rows()
            if r["pxname"] == backend and r["svname"] not in ("FRONTEND", "BACKEND")
        }

    def set_state(self, backend: str, server: str, state: str, mark: str | None = None) -> str:
        """Change a server's admin state in one atomic step on the load balancer (under a lock
        there, so two runs never both see the other server UP and both take theirs out): a drain
        or maint is refused when no other server is UP. A drain made by a run carries a mark on
        the load balancer (mark: the run id) so that the next run can put it back if this one dies;
        any change without a mark (ready, an operator's drain or maint) removes it, and so does
        asking for a server the backend no longer has. Return the server's status before."""
        _name("backend", backend)
        _name("server", server)
        started = time.perf_counter()
        out = self.command_script(_state_script(self.socket, backend, server, state, mark))
        line = out.strip().splitlines()[-1] if out.strip() else ""
        verdict, _, rest = line.partition("\t") if "\t" in line else line.partition(" ")
        if verdict == "UNKNOWN":
            raise LBError(
                f"{self.host.name}: backend {backend} has no server {server!r} (servers: {', '.join(rest.split())})"
            )
        if verdict == "LAST":
            raise LastServerUp(
                f"{self.host.name}: refusing to {state} {backend}/{server}: it is the last server that is UP"
            )
        if verdict not in ("OK", "REFUSED"):
            raise LBError(
                f"{self.host.name}: unexpected answer to `set server {backend}/{server}`: {out.strip()[-300:]}"
            )
        before, _, answer = rest.partition("\t")
        self._record(backend, server, before, state, answer.strip(), time.perf_counter() - started)
        if verdict != "OK":
            raise LBError(
                f"{self.host.name}: HAProxy refused `set server {backend}/{server} state {state}`: "
                f"{answer.strip() or out}"
            )
        return before

    def command_script(self, script: str) -> str:
        """Run a shell script as root on the load balancer; return its output (LBError on failure)."""
        out = self._run(script)
        if not out.ok:
            raise LBError(f"{self.host.name}: {out.error}: {(out.stderr or out.stdout).strip()[-300:]}")
        return out.stdout

    def _run(self, script: str) -> Any:
        """Run a script as root; a connection cut once is opened again and the script run again
        (every runtime API step here can be repeated: it sets a state, or reads one)."""
        line = cmd("sh", "-c", script)
        try:
            return self.remote.run(line, sudo=self.host.user != "root")
        except (HostKeyError, AuthError):
            raise  # trying again changes nothing
        except ConnectionFailed:  # the Remote dropped the lost connection: the next run opens one
            return self.remote.run(line, sudo=self.host.user != "root")

    def marks(self, backend: str = BACKEND, said: str | None = None) -> dict[str, dict[str, Any]]:
        """Return the drains made by runs that are still marked: server -> {run, at} (a mark whose
        server is not a plain name is not one a run made, and is left out).

        backend: the backend.
        said: what marks_command(backend) printed on the load balancer, when it was already
            asked (e.g. in a run's opening command); default: ask it now.
        """
        text = said if said is not None else self.command_script(marks_command(backend))
        found: dict[str, dict[str, Any]] = {}
        for line in text.splitlines():
            try:
                mark = json.loads(line)
            except ValueError:
                continue
            if isinstance(mark, dict) and mark.get("backend") == backend and mark.get("server"):
                if isinstance(mark["server"], str) and _NAME.fullmatch(mark["server"]):
                    found[mark["server"]] = mark
        return found

    def _record(self, backend: str, server: str, before: Any, state: str, answer: str, seconds: float) -> None:
        """Journal a server state change as a run with one result (unless record is off), or hand
        it to emit when a caller records it."""
        result = server_result(
            self.host.name,
            backend,
            server,
            state,
            not answer,
            answer or f"{self.host.name}: {backend}/{server}: {before} -> {state}",
            seconds,
            before,
        )
        if self.emit is not None:
            self.emit(result)
            return
        if not self.record:
            return
        with (self._journal or Journal()).recording(
            command=f"{self.origin} {state} {backend}/{server}",
            inventory=self.inventory,
            parameters={"backend": backend, "server": server, "state": state},
        ) as run:
            run.add(result)

    def ready(self, server: str, backend: str = BACKEND) -> None:
        """Put a server back in rotation (and forget any run's drain mark on it).

        server: server name (the inventory host name).
        backend: backend name.
        """
        self.set_state(backend, server, "ready")

    def maint(self, server: str, backend: str = BACKEND) -> None:
        """Take a server out at once (maintenance), unless it is the last one UP."""
        self.set_state(backend, server, "maint")

    def drain(
        self, server: str, backend: str = BACKEND, timeout: float = 60, poll: float = 0.5, mark: str | None = None
    ) -> float:
        """Stop sending new sessions to a server and wait until its current sessions reach zero;
        return the seconds waited. Refused when it is the last server that is UP.

        server: server name.
        backend: backend name.
        timeout: give up (LBError) after this many seconds.
        poll: seconds between checks.
        mark: the run id making the drain (marked on the load balancer until ready), or None for
            an operator's drain (left alone by runs).
        """
        self.set_state(backend, server, "drain", mark)
        return self.wait_sessions_end(server, backend, timeout, poll)

    def wait_sessions_end(self, server: str, backend: str = BACKEND, timeout: float = 60, poll: float = 0.5) -> float:
        """Wait until a drained server has no session left here; return the seconds waited.

        server: server name.
        backend: backend name.
        timeout: give up (LBError) after this many seconds.
        poll: seconds between checks.
        """
        return self._wait(
            backend,
            lambda rows: not rows[server]["scur"],
            timeout,
            poll,
            lambda rows: (
                f"{self.host.name}: {backend}/{server} still has {rows[server]['scur']} sessions "
                f"after {timeout:g} s of draining"
            ),
        )

    def wait_up(self, server: str, backend: str = BACKEND, timeout: float = 30, poll: float = 0.5) -> float:
        """Wait until a server's status is UP (its health checks pass); return the seconds waited.

        server: server name.
        backend: backend name.
        timeout: give up (LBError) after this many seconds.
        poll: seconds between checks.
        """
        return self._wait(
            backend,
            lambda rows: rows[server]["status"] == "UP",
            timeout,
            poll,
            lambda rows: (
                f"{self.host.name}: {backend}/{server} is {rows[server]['status']}, not UP, "
                f"{timeout:g} s after it came back"
            ),
        )

    def wait_all_up(self, backend: str = BACKEND, timeout: float = 30) -> dict[str, str]:
        """Wait until every server of the backend is UP; return their statuses (also on timeout).

        backend: backend name.
        timeout: seconds to wait.
        """
        try:
            self._wait(
                backend, lambda rows: all(r["status"] == "UP" for r in rows.values()), timeout, 0.5, lambda rows: ""
            )
        except LBError:
            pass
        return {name: str(row["status"]) for name, row in self.servers(backend).items()}

    def _wait(
        self,
        backend: str,
        done: Callable[[dict[str, Row]], Any],
        timeout: float,
        poll: float,
        failure: Callable[[dict[str, Row]], str],
    ) -> float:
        """Poll the backend's servers until done(rows); return the seconds waited, or raise LBError
        with failure(rows) after timeout seconds."""
        started = time.monotonic()
        while True:
            rows = self.servers(backend)
            if done(rows):
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise LBError(failure(rows))
            time.sleep(poll)

    def close(self) -> None:
        """Close the SSH connection (unless it is a run's, which the run closes)."""
        if self._owned:
            self.remote.close()

    def __enter__(self) -> "HAProxy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _state_script(socket: str, backend: str, server: str, state: str, mark: str | None) -> str:
    """The one step on the load balancer that checks and changes a server's admin state.

    Prints `UNKNOWN <servers>`, `LAST`, `OK <status before>` or `REFUSED <status before> <answer>`.
    """
    api = f"socat -t 5 stdio {cmd('unix-connect:' + socket)}"
    mark_file = f"{MARKS}/{backend}.{server}"
    unmark = f"rm -f {cmd(mark_file)}"
    if mark:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = json.dumps({"backend": backend, "server": server, "state": state, "run": mark, "at": stamp})
        after = f"mkdir -p {cmd(MARKS)} && printf '%s\\n' {cmd(body)} > {cmd(mark_file)}"
    else:  # ready, or an operator's drain/maint: the server's state is nobody's left-over any more
        after = unmark
    checks_others = "1" if state in ("drain", "maint") else "0"
    awk = (
        'NR==1 { sub(/^# /, ""); for (i = 1; i <= NF; i++) if ($i == "status") col = i; next } '
        '$1 == b && $2 != "FRONTEND" && $2 != "BACKEND" { names = names " " $2; '
        "if ($2 == s) { found = 1; before = $col } else if ($col ~ /^UP/) up++ } "
        'END { if (!found) print "UNKNOWN" names; else if (o && !up) print "LAST"; else print "GO " before }'
    )
    return "\n".join(
        [
            f"umask 022; mkdir -p {cmd(STATE_LOCK.rsplit('/', 1)[0])}",
            f"exec 8>>{cmd(STATE_LOCK)}; flock -w 20 8 || exit 9",
            f"stat=$(echo 'show stat' | {api}) || exit 9",  # the runtime API cannot be reached: an error
            f"v=$(printf '%s\\n' \"$stat\" | awk -F, -v b={cmd(backend)} -v s={cmd(server)} -v o={checks_others} "
            f"{cmd(awk)})",
            # a mark for a server the backend no longer has can never be put back: it goes
            f'case "$v" in GO*) ;; UNKNOWN*) {unmark}; echo "$v"; exit 0;; *) echo "$v"; exit 0;; esac',
            "before=${v#GO }",
            f"a=$(echo {cmd(f'set server {backend}/{server} state {state}')} | {api}) || exit 9",
            'if [ -n "$(printf %s "$a" | tr -d "[:space:]")" ]; then',
            '    printf "REFUSED\\t%s\\t%s\\n" "$before" "$a"; exit 0',
            "fi",
            after,
            'printf "OK\\t%s\\n" "$before"',
        ]
    )


def push_script(path: str, socket: str = STATS_SOCKET) -> str:
    """The shell script that makes a running HAProxy serve the file at `path` as it is now, without a
    reload: `set ssl cert` with the file's content (blank lines dropped: the runtime API ends the
    payload at one), then `commit ssl cert`; a transaction left open by a failure is aborted. When
    HAProxy is not running, or does not serve that file yet, there is nothing to do (its next start
    or reload reads the file). Prints `pushed` or `not-served`."""
    p, api = shlex.quote(path), f"socat -t 5 stdio {shlex.quote('unix-connect:' + socket)}"
    return (
        f"p={p}\n"
        f'if ! [ -S {shlex.quote(socket)} ] || ! echo "show ssl cert" | {api} | grep -qxF "$p"; then '
        "echo not-served; exit 0; fi\n"
        f'set_answer=$({{ printf "set ssl cert %s <<\\n" "$p"; grep -v "^[[:space:]]*$" "$p"; printf "\\n"; }} '
        f"| {api})\n"
        'case "$set_answer" in *Transaction*) ;; *) '
        f'echo "abort ssl cert $p" | {api} >/dev/null; echo "set ssl cert: $set_answer" >&2; exit 1;; esac\n'
        f'commit_answer=$(echo "commit ssl cert $p" | {api})\n'
        'case "$commit_answer" in *Success*) echo pushed;; *) '
        f'echo "abort ssl cert $p" | {api} >/dev/null; echo "commit ssl cert: $commit_answer" >&2; exit 1;; esac\n'
    )


def serves_script(path: str, fingerprint: str, socket: str = STATS_SOCKET) -> str:
    """A check that succeeds when there is nothing to push: the running HAProxy serves the file at
    `path` with the certificate whose SHA-1 fingerprint is `fingerprint` already, or it does not
    serve that file at all (not running, or the file not in its configuration yet: its next start
    or reload reads the file). It fails when HAProxy serves another certificate there, e.g. after a
    push that failed or was cut off: the next apply pushes again."""
    if not re.fullmatch(r"[0-9A-F]{40}", fingerprint):
        raise LBError(f"{fingerprint!r} is not a SHA-1 fingerprint")
    api = f"socat -t 5 stdio {shlex.quote('unix-connect:' + socket)}"
    return (
        f"served=$(echo {shlex.quote('show ssl cert ' + path)} | {api} 2>/dev/null "
        "| sed -n 's/^SHA1 FingerPrint: *//p' | tr -d ': ' | tr a-f A-F); "
        f'[ -z "$served" ] || [ "$served" = {fingerprint} ]'
    )
