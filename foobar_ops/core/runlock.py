"""One change at a time per host: a run takes a lock on each host it changes, on the host itself
(so runs from two control machines exclude each other too), and holds it for its whole life.

The lock is a `flock` held by a shell on the host that lives as long as this run's SSH channel:
when the run ends, is killed or loses its connection, the channel closes and the lock is released
with it; nothing has to be cleaned up by hand. Who holds it (run id, user, control machine, pid,
since when) is written next to it, so a refused run names the run in its way. A holder whose
control process is gone is stale: its shell is ended and the lock taken over, and the result says
whose it was. "Gone" is judged only for a holder of this very machine (its machine id: machine-id,
boot and pid namespace, never the hostname, which clones share) whose process (pid and start time)
no longer runs.

While holding the lock, leftovers of runs that died before cleaning up (upload folders, validation
copies) are removed: no run of ours can be using them.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import shlex
import socket
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from . import machine
from .errors import ConnectionFailed, EarlierChangeRunning, FoobarOpsError, RunLocked, SudoError
from .onhost import CHANGE_WAIT, CHANGES_LOCK_NAME, LOCK_DIR, OUTCOMES
from .secrets import mask_command, mask_known
from .shell import cmd
from .ssh import Remote, sudo_password

__all__ = ["LOCK_DIR", "OPENED", "EarlierChangeRunning", "RunLocked", "HostLock", "Holder", "holding", "locked"]

#: the key of the holder's details that the holding shell fills in with its own pid
SHELL_KEY = '"shell": '

#: how often (s) a run taking a lock looks at sudo's answer and its time limit while it waits
TICK = 0.05

#: the line the holding shell prints once the facts it gathered for the run (see HostLock.opening)
#: have all been sent
OPENED = "@@FBO-OPENED"


@dataclass
class Holder:
    """Who holds (or held) a host's lock."""

    run: str
    command: str = ""
    user: str = ""
    machine: str = ""
    pid: int = 0
    since: str = ""
    shell: int = 0  # the holding shell's pid on the host
    machine_id: str = ""  # the control machine's id (see core.machine); "" from older foobar_ops
    pid_start: str = ""  # when the control process started (tells a reused pid apart)

    @classmethod
    def parse(cls, text: str) -> "Holder | None":
        try:
            data = json.loads(text)
        except ValueError:
            return None
        if not isinstance(data, dict) or "run" not in data:
            return None
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def describe(self) -> str:
        return (
            f"run {self.run} ({self.command or 'a run'}) of {self.user or '?'} on {self.machine or '?'} "
            f"(pid {self.pid}), since {self.since or '?'}"
        )

    def is_dead_here(self) -> bool:
        """True when the holder ran on this very control machine (its machine id, not a hostname
        that a clone shares) and its process (pid and start time) is gone."""
        return machine.process_gone(self.machine_id, self.pid, self.pid_start) is True


def _script(info: str, wait: float, clean: bool = True, then: str | None = None) -> str:
    """The holding shell: take the lock (or say who has it), then hold it until the channel closes.

    then: a script to run once the lock is held (the facts every phase of the run needs, see
        HostLock.opening): its output and exit status come back gzipped and base64-encoded on
        one line, followed by a line OPENED; the lock and the facts cost the host one command.

    clean: remove what runs that died left behind (upload folders, validation copies, change
        outcomes) once the lock is taken; not when a run takes its lock again after a cut
        connection (what it left is what it is about to read back).
    """
    d = LOCK_DIR
    # a change that outlived its run (killed or cut off: the host went on with it) ends before this
    # run looks at the host or clears what that change uses; not when a run takes its lock again
    # (the change still running is its own, and its outcome is read back once it ends)
    settle = (
        f"exec 8>>{d}/{CHANGES_LOCK_NAME}; if ! flock -x -n 8; then printf 'WAITING\\n'; "
        f"if ! flock -x -w {CHANGE_WAIT} 8; then rm -f {d}/run.holder; printf 'CHANGING\\n'; exit 4; fi; fi; "
        "exec 8>&-"  # closing the only descriptor lets the lock go
        if clean
        else ":"
    )
    # in the shell itself (no process is started when nothing was left, the usual case)
    leftovers = (
        "n=0; for f in /tmp/.foobar-stage-* /tmp/.foobar-validate.*; do "
        '{ [ -e "$f" ] || [ -L "$f" ]; } || continue; rm -rf "$f"; n=$((n+1)); done; '
        f'set -- {OUTCOMES}/apply.*; if [ -e "$1" ]; then rm -f "$@"; fi'
        if clean
        else "n=0"
    )
    # who holds it; the holding shell's pid goes in the place of the 0 of its "shell" key
    parts = info.split(SHELL_KEY + "0", 1)
    holder = (
        f"printf '%s%s%s\\n' {shlex.quote(parts[0] + SHELL_KEY)} \"$$\" {shlex.quote(parts[1])}"
        if len(parts) == 2
        else f"printf '%s\\n' {shlex.quote(info)}"
    )
    return "\n".join(
        [
            f"umask 077; [ -d {d} ] || mkdir -p {d}; exec 9>>{d}/run.lock",
            # held: by a run that has just taken it (its details not written yet) or is just letting
            # it go, look again for up to 3 s, so the refusal names the holder or the lock is taken
            f"if ! flock -w {wait:g} 9; then got=; i=0; while [ $i -lt 30 ] && [ ! -s {d}/run.holder ]; do "
            "if flock -n 9; then got=1; break; fi; sleep 0.1; i=$((i+1)); done; "
            f'[ -n "$got" ] || {{ printf \'BUSY %s\\n\' "$(cat {d}/run.holder 2>/dev/null)"; exit 3; }}; fi',
            f"[ -s {d}/run.holder ] && printf 'STALE %s\\n' \"$(cat {d}/run.holder)\"",
            f"{holder} > {d}/run.holder",
            settle,
            leftovers,  # nobody else can be using them now
            'printf "LOCKED %s\\n" "$n"',
            _opening(then) if then else ":",
            # held until this run says `release` (it is done: its change outcomes were read and
            # can go) or its channel closes (a crash, a kill, a lost connection: they stay); its
            # details go first, so a run refused meanwhile looks again instead of naming it
            f'while read -r line; do [ "$line" = release ] && {{ rm -f {d}/run.holder {OUTCOMES}/apply.*; break; }}; '
            "done",
            f"rm -f {d}/run.holder",
        ]
    )


def _opening(script: str) -> str:
    """The holding shell's part that runs a script (as root, under the lock) and prints what it
    printed and its exit status, gzipped and base64-encoded on one line, then a line OPENED."""
    payload = base64.b64encode(gzip.compress(script.encode(), 9)).decode()
    return (
        f"echo {payload} | base64 -d | gzip -dc | {{ sh; printf '\\n@@FBO-EXIT %d\\n' $?; }} "
        f"| gzip -1 | base64 -w 0; printf '\\n{OPENED}\\n'"
    )


def _opened(text: str, locked_line: str) -> str:
    """The opening script's output as it came (gzipped, base64: the engine's wire decodes it),
    from the holding shell's output."""
    after = text.split(locked_line + "\n", 1)[-1]
    return after.split(f"\n{OPENED}\n", 1)[0].strip()


@dataclass
class HostLock:
    """The run lock of one host, held through a channel of its own.

    remote: the host's Remote (the lock rides on its connection).
    run_id, command: who is taking it (recorded on the host).
    wait: seconds to wait for another run to finish before giving up (0: refuse at once).
    opening: a script the holding shell runs once the lock is held (the facts of every phase of
        the run): what it printed comes back as `opened` (packed: gzipped, base64, its exit
        status inside, as engine.wire.unpacked_output reads it).
    """

    remote: Remote
    run_id: str
    command: str = ""
    wait: float = 0.0
    opening: str | None = None
    opened: str | None = None
    stale: Holder | None = None  # a previous holder that ended without releasing its details
    cleaned: int = 0  # leftover temporary folders removed
    took_over: Holder | None = None  # a dead holder whose lock was taken over
    _channel: Any = field(default=None, repr=False)

    @property
    def host(self) -> str:
        return str(self.remote.host.name)

    def _info(self) -> str:
        from .journal import whoami  # the journal's notion of who runs

        return json.dumps(
            {
                "run": self.run_id,
                "command": mask_command(self.command)[:200],
                "user": whoami(),
                "machine": socket.gethostname(),
                "machine_id": machine.machine_id(),
                "pid": os.getpid(),
                "pid_start": machine.process_start(os.getpid()),
                "since": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "shell": 0,
            },
            sort_keys=True,
        )

    def acquire(self) -> "HostLock":
        """Take the lock or raise RunLocked naming the holder (ConnectionFailed, SudoError when the
        host cannot be reached or sudo refuses)."""
        try:
            return self._acquire()
        except EarlierChangeRunning:
            raise  # the lock was free: nothing to take over
        except RunLocked as err:
            if err.holder is None or not err.holder.is_dead_here() or err.holder.shell <= 0:
                raise
            self._end_shell(err.holder.shell)  # its run is gone: end the shell that kept the lock
            self.took_over = err.holder
            return self._acquire()

    def _acquire(self, clean: bool = True) -> "HostLock":
        conn = self.remote.open()
        host = self.remote.host
        timeout = float(host.ssh.connect_timeout) + self.wait + 10
        then = self.opening if clean else None  # a lock taken again after a cut gathers nothing
        script = _script(self._info(), self.wait, clean, then)
        sudo = host.user != "root"
        password = sudo_password(host) if sudo else None  # none set: a clear error, not a wait
        line = cmd("sudo", "-S", "-p", "", "-H", "--", "sh", "-c", script) if sudo else script
        channel = conn.transport.open_session(timeout=float(host.ssh.connect_timeout))
        self.remote.round_trips += 1  # the lock's command is one of the host's round trips
        channel.settimeout(timeout)
        channel.exec_command(line)
        if password is not None:
            channel.sendall((password + "\n").encode())
        started = time.monotonic()
        out, err = b"", b""
        text, lines, done = "", [], []
        waiting = opening = False
        # wait for what the holding shell prints (woken by it, not by polling); stderr (sudo's
        # refusal) and the time limit are looked at between waits of at most TICK s
        channel.settimeout(TICK)
        while True:
            fresh, waited = b"", False
            try:
                fresh = channel.recv(65536)
            except TimeoutError:
                waited = True
            # recv() gives b"" at once, without waiting, once the output has ended: at its end of
            # file, or when the connection is gone (closed with no end of file)
            ended = not waited and fresh == b""
            while channel.recv_stderr_ready():
                err += channel.recv_stderr(4096)
            if fresh:
                out += fresh
                text = out.decode(errors="replace")
                lines = text.splitlines()
                done = [ln for ln in lines if ln.startswith(("LOCKED", "BUSY", "CHANGING"))]
                if "WAITING" in lines and not waiting:  # for a change left running by a dead run
                    waiting = True
                    timeout = time.monotonic() - started + CHANGE_WAIT + 10
                if done and done[0].startswith("LOCKED") and then and not opening:  # now the facts
                    opening = True
                    timeout = time.monotonic() - started + float(host.ssh.command_timeout)
            finished = done and (not opening or f"\n{OPENED}\n" in text)
            if finished or ended and not channel.recv_ready():
                break
            if b"try again" in err or b"incorrect password" in err:
                channel.close()
                raise SudoError(
                    host.name, f"sudo refused the password from {host.sudo_password.ref}: check that secret"
                )
            if time.monotonic() - started > timeout:
                channel.close()
                raise ConnectionFailed(host.name, f"no answer to the run lock within {timeout:g} s")
        channel.settimeout(timeout)
        for ln in lines:
            if ln.startswith("STALE "):
                self.stale = Holder.parse(ln[6:])
        if not done or not done[0].startswith("LOCKED"):
            channel.close()
            if done and done[0] == "CHANGING":
                raise EarlierChangeRunning(host.name, self.stale, CHANGE_WAIT)
            if not done and not channel.eof_received:  # closed with no end of file: the link is gone
                raise ConnectionFailed(host.name, "the connection was lost while taking the run lock")
            if not done:
                why = mask_known((err or out).decode(errors="replace").strip()[-300:])
                raise FoobarOpsError(f"{host.name}: cannot take the run lock: {why or 'no answer'}")
            raise RunLocked(host.name, Holder.parse(done[0][5:]), self.wait)
        self.cleaned = int(done[0].split()[1]) if len(done[0].split()) > 1 else 0
        if opening:
            self.opened = _opened(text, done[0])
        self._channel = channel
        return self

    def _end_shell(self, pid: int) -> None:
        """End a dead run's holding shell (only a shell holding our lock file: checked on the host)."""
        check = (
            f"if ls -l /proc/{pid}/fd 2>/dev/null | grep -q {LOCK_DIR}/run.lock; then kill {pid}; sleep 0.2; fi; true"
        )
        self.remote.run(shlex.join(["sh", "-c", check]), sudo=self.remote.host.user != "root", timeout=15)

    def reacquire(self) -> None:
        """Take the lock again on a new connection (the old one, and the lock with it, was lost);
        a ConnectionFailed when another run took it meanwhile: this run must not go on there. A
        shell of this run's own that still holds it (the host has not noticed the lost
        connection yet) is ended first."""
        self._channel = None
        try:
            self._acquire(clean=False)
        except RunLocked as err:
            held, me = err.holder, (self.run_id, machine.machine_id(), os.getpid())
            if held is None or (held.run, held.machine_id, held.pid) != me or held.shell <= 0:
                raise ConnectionFailed(self.host, f"the connection was lost, and meanwhile {err}") from None
            # the host has not noticed yet that the old connection is gone: its shell still holds
            # this run's lock; end it and take the lock again
            self._end_shell(held.shell)
            self._acquire(clean=False)

    @property
    def held(self) -> bool:
        return self._channel is not None and not self._channel.closed

    def release(self) -> None:
        """Let go of the lock (closing the channel ends the holding shell)."""
        channel, self._channel = self._channel, None
        if channel is None:
            return
        try:
            channel.sendall(b"release\n")  # done: the shell removes this run's outcomes and exits
            channel.shutdown_write()
            deadline = time.monotonic() + 2
            while not channel.exit_status_ready() and time.monotonic() < deadline:
                time.sleep(0.01)
        except Exception:  # noqa: BLE001 - the connection may be gone: the lock went with it
            pass
        finally:
            channel.close()


@contextmanager
def locked(
    remotes: Iterable[Remote],
    run_id: str,
    command: str = "",
    wait: float = 0.0,
    opening: dict[str, str] | None = None,
    parallel: int = 10,
) -> Iterator[dict[str, HostLock | BaseException]]:
    """Take the run lock of every host; yield host -> HostLock, or the error that kept it
    (RunLocked, ConnectionFailed, SudoError); release them all at the end.

    Every host is tried at once (connect, lock, and the opening script, one command each). When
    another run holds one of them, every lock taken is let go and the locks are taken again one
    host at a time in name order, waiting up to `wait` s each, and the first host still held stops
    the taking: two runs that want some of the same hosts never end up each holding a part (nor,
    when waiting, deadlocked); at worst both start the ordered pass, where one of them wins.

    remotes: the hosts' Remotes.
    run_id, command: who takes them.
    wait: seconds each may wait for another run.
    opening: host name -> a script its holding shell runs once the lock is held (HostLock.opening).
    parallel: at most this many hosts at once.
    """
    ordered = sorted(remotes, key=lambda r: str(r.host.name))
    scripts = opening or {}
    held: dict[str, HostLock | BaseException] = {}

    def take(remote: Remote, patience: float) -> HostLock | BaseException:
        name = remote.host.name
        try:
            remote.open()
            return HostLock(remote, run_id, command, patience, opening=scripts.get(name)).acquire()
        except FoobarOpsError as err:  # RunLocked, SudoError, ConnectionFailed
            return err
        except Exception as err:  # noqa: BLE001 - a surprise on one host must not hide the others
            return FoobarOpsError(f"{name}: cannot take the run lock: {type(err).__name__}: {err}")

    try:
        if ordered:
            with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(ordered)))) as pool:
                first = list(pool.map(lambda r: take(r, 0.0), ordered))
            held = {r.host.name: got for r, got in zip(ordered, first, strict=True)}
        if any(isinstance(got, RunLocked) and not isinstance(got, EarlierChangeRunning) for got in held.values()):
            for got in held.values():  # another run holds a host: let go, then one host at a time
                if isinstance(got, HostLock):
                    got.release()
            held = {}
            for remote in ordered:
                got = take(remote, wait)
                held[remote.host.name] = got
                if isinstance(got, RunLocked):
                    break  # the rest are not tried: this run will not go on
        yield held
    finally:
        for outcome in held.values():
            if isinstance(outcome, HostLock):
                outcome.release()


@contextmanager
def holding(
    hosts: Iterable[Any],
    inventory: Any,
    run_id: str,
    command: str = "",
    wait: float | None = None,
) -> Iterator[dict[str, HostLock]]:
    """Hold the run lock of each host for a run that changes them outside the engine (a database
    role change): yield host -> HostLock of the hosts held. Another run holding one refuses this
    one (RunLocked, naming it: nothing done yet); a host that refuses its lock (sudo) is that
    error; a host that cannot be reached is left out (the run's own steps find it: a failover's
    dead primary). Each lock rides on a connection of its own, closed at the end.

    hosts: the inventory hosts.
    inventory: the Inventory (for ProxyJump).
    run_id, command: who holds them.
    wait: seconds to wait for another run (default: 0, refuse at once).
    """
    remotes = [Remote(host, inventory) for host in hosts]
    try:
        with locked(remotes, run_id, command, float(wait or 0.0)) as outcomes:
            errors = [e for e in outcomes.values() if isinstance(e, Exception) and not isinstance(e, ConnectionFailed)]
            for error in sorted(errors, key=lambda e: not isinstance(e, RunLocked)):  # another run first
                raise error
            yield {name: lock for name, lock in outcomes.items() if isinstance(lock, HostLock)}
    finally:
        for remote in remotes:
            remote.close()
