"""The SSH layer: strict, timed-out, keep-alive Fabric connections built from the inventory, and
parallel runs over many hosts that report one outcome per host."""

from __future__ import annotations

import math
import socket
import struct
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from typing import Any

import paramiko
from fabric import Config, Connection
from invoke.exceptions import AuthFailure, CommandTimedOut, UnexpectedExit

from . import hostkeys, interrupts
from .errors import AuthError, ConnectionFailed, FoobarOpsError, HostKeyError, HostUnreachable, SudoError
from .secrets import mask_known

__all__ = ["Remote", "CommandOutcome", "run_many", "connect", "stage"]

_print_lock = threading.Lock()
#: where Remote.stage() puts a command's uploads; what a dead run left there is removed by the next
#: run that takes the host's run lock
STAGE_PREFIX = "/tmp/.foobar-stage-"


class PrefixedOutput:
    """A stream that prints whole lines prefixed with a host name.

    host: the prefix.
    stream: where lines go (stdout by default).
    """

    def __init__(self, host: str, stream: Any = None) -> None:
        self.host, self.stream, self._buf = host, stream or sys.stdout, ""

    def write(self, data: str) -> int:
        self._buf += data
        *lines, self._buf = self._buf.split("\n")
        with _print_lock:
            for line in lines:
                self.stream.write(f"{self.host} | {mask_known(line)}\n")
            self.stream.flush()
        return len(data)

    def flush(self) -> None:
        if self._buf:
            self.write("\n")


@dataclass
class CommandOutcome:
    """What one command did on one host: ok, failed (exit code and output) or unreachable."""

    host: str
    outcome: str
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    error: str | None = None
    rtt_ms: float | None = None
    connect_ms: float | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    def __bool__(self) -> bool:
        return self.ok

    def as_dict(self) -> dict:
        return asdict(self)


def _fabric_config(host: Any) -> Config:
    """Build a Fabric config whose connect settings also reach ProxyJump hops."""
    ssh = host.ssh
    connect_kwargs: dict[str, Any] = {
        "timeout": ssh.connect_timeout,
        "banner_timeout": ssh.connect_timeout,
        "auth_timeout": ssh.connect_timeout,
    }  # floats: Fabric's own timeout is an int
    if ssh.identity:
        connect_kwargs.update(key_filename=[str(ssh.identity)], look_for_keys=False, allow_agent=False)
    overrides = {"connect_kwargs": connect_kwargs, "run": {"hide": True, "warn": True, "in_stream": False}}
    kwargs: dict[str, Any] = {"overrides": overrides}
    if ssh.config:
        kwargs["runtime_ssh_path"] = str(ssh.config)
    return Config(**kwargs)


def connect(host: Any, inventory: Any = None) -> Connection:
    """Return a lazy Fabric Connection to an inventory host, with strict host key checking.

    host: an inventory Host.
    inventory: the Inventory, needed when host.ssh.proxy_jump names another inventory host.
    """
    gateway = own = None  # own: a jump host built from its own inventory entry
    jump = host.ssh.proxy_jump
    if jump and inventory is not None and jump in inventory.hosts:
        gateway = own = connect(inventory.hosts[jump], inventory)
    elif jump:
        gateway = Connection(jump, config=_fabric_config(host))
    try:
        conn = Connection(host.address, user=host.user, port=host.port, config=_fabric_config(host), gateway=gateway)
    except (OSError, ValueError) as err:  # e.g. an unreadable ssh config
        raise ConnectionFailed(host.name, f"cannot set up the connection: {err}") from None
    conn.connect_timeout = None  # the float timeout in connect_kwargs rules (ssh_config may set one)
    hop = conn
    # every hop, ours or ssh_config's ProxyJump, is strict; a jump host that is an inventory host
    # keeps the policy (known_hosts, trust_new_keys) of its own entry, set when it was built
    while isinstance(hop, Connection) and hop is not own:
        hostkeys.apply_policy(
            hop.client,
            host.name if hop is conn else f"{host.name} via {hop.host}",
            host.ssh.known_hosts,
            host.ssh.trust_new_keys,
        )
        hop = hop.gateway
    return conn


class Remote:
    """One inventory host over SSH: opened on first use, reused, closed as a context manager.

    host: the inventory Host.
    inventory: the Inventory (for ProxyJump through another inventory host).
    """

    def __init__(self, host: Any, inventory: Any = None) -> None:
        self.host, self.inventory = host, inventory
        self.conn: Connection | None = None
        self.connect_ms: float | None = None
        self.round_trips = 0
        #: called after connecting again once a connection was lost (e.g. to take the run lock
        #: again, which went with the old connection); its error is the connection's
        self.relock: Callable[[], Any] | None = None
        self._opened = False
        #: a connect started ahead of the first command (see connect_early)
        self._early: _Early | None = None
        self._early_lock = threading.Lock()
        self._opening = threading.RLock()  # one connect at a time (a relock may open again within)
        self._bytes_before = 0  # SSH bytes of the connections already closed (or lost)
        self._bytes_seen = 0  # the open connection's count after its last command

    def __enter__(self) -> "Remote":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect_early(self, gate: threading.Semaphore | None = None) -> None:
        """Start connecting now, in the background, while the caller prepares the first command
        (which then waits for the connection, or raises how it failed). Nothing is run on the host.

        gate: held while connecting (at most so many hosts connect at once).
        """
        if self.conn is not None or self._early is not None:
            return
        attempt = _Early()

        def connecting() -> None:
            try:
                with gate if gate is not None else nullcontext():
                    if not attempt.abandoned:  # a run that ended while this one waited its turn
                        self.open()
            except BaseException as err:  # noqa: BLE001 - kept for the first use, raised there
                attempt.error = err
            finally:
                with self._early_lock:
                    attempt.done = True
                    abandoned = attempt.abandoned
                if abandoned:  # closed while it connected: what it made is closed here
                    self._close_conn()

        attempt.thread = threading.Thread(target=connecting, name=f"connect {self.host.name}", daemon=True)
        self._early = attempt
        attempt.thread.start()

    def _await_early(self) -> None:
        """Wait for a connect started early (from any thread but its own); raise how it failed."""
        attempt = self._early
        if attempt is None or attempt.thread is threading.current_thread():
            return
        assert attempt.thread is not None
        attempt.thread.join()
        self._early = None
        if attempt.error is not None:
            failed, attempt.error = attempt.error, None
            raise failed

    def open(self) -> Connection:
        """Connect (once) and return the Fabric connection; raise a ConnectionFailed subclass."""
        self._await_early()
        with self._opening:
            return self._open()

    def _open(self) -> Connection:
        if self.conn is not None and self.conn.is_connected:
            return self.conn
        if self.conn is not None:  # it was lost
            self._forget()
        started = time.perf_counter()
        conn = connect(self.host, self.inventory)
        try:
            conn.open()
        except Exception as err:  # noqa: BLE001 - classified below
            raise classify(self.host, err) from None
        self.conn = conn  # only once open: a close() meanwhile finds nothing half-made to drop
        self.connect_ms = (time.perf_counter() - started) * 1000
        transport = conn.transport
        transport.set_keepalive(int(self.host.ssh.keepalive))
        # opening a channel (every command) waits at most the connect timeout, not paramiko's hour
        transport.channel_timeout = float(self.host.ssh.connect_timeout)
        if isinstance(transport.sock, socket.socket):
            transport.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # a host that stops answering (powered off, cable cut) is given up after about twice
            # the connect timeout (TCP keepalive probes, answered by the host's kernel even while
            # a command prints nothing), instead of after the kernel's ~15 minutes
            idle = max(1, math.ceil(float(self.host.ssh.connect_timeout)))
            sock = transport.sock
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, idle)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, self._user_timeout_ms())
        again, self._opened = self._opened, True
        if again and self.relock is not None:
            try:
                self.relock()
            except BaseException:
                self.close()  # never go on without the lock: the next use tries to take it again
                raise
        return conn

    @property
    def ssh_bytes(self) -> int | None:
        """Bytes of the SSH stream (both ways, TCP payload: what the SSH protocol moved, without
        TCP/IP headers) over every connection this Remote made; None when the kernel cannot say
        (e.g. a connection through a ProxyJump hop)."""
        if self.conn is not None and not isinstance(_tcp_socket(self.conn), socket.socket):
            return None
        now = _tcp_payload(self.conn)
        return self._bytes_before + (now if now is not None else self._bytes_seen)

    def _forget(self) -> None:
        """Drop the connection (lost, or closed), keeping the count of the bytes it moved (as of
        its last command when its socket is already gone)."""
        now = _tcp_payload(self.conn)
        self._bytes_before += now if now is not None else self._bytes_seen
        self._bytes_seen = 0
        self.conn = None

    def _user_timeout_ms(self) -> int:
        return int(max(10.0, 2 * float(self.host.ssh.connect_timeout)) * 1000)

    def alive(self) -> bool:
        """True when the connection is open and the host answers a trivial command in time (the
        connect timeout): after a command timed out, tells a slow command from a dead host."""
        if self.conn is None or not self.conn.is_connected:
            return False
        try:
            result = self.conn.run("true", timeout=max(2.0, float(self.host.ssh.connect_timeout)), hide=True, warn=True)
        except Exception:  # noqa: BLE001 - any failure means: not answering
            return False
        return bool(result.exited == 0)

    def run(
        self, command: str, *, sudo: bool = False, timeout: float | None = None, stream: bool = False, mask: bool = True
    ) -> CommandOutcome:
        """Run a command line (built with shell.cmd) and return its CommandOutcome; never raises for a
        non-zero exit, raises ConnectionFailed/SudoError for what is not the command's doing.

        command: the command line.
        sudo: run it through sudo with the inventory's sudo password.
        timeout: seconds before the command is abandoned (default: the inventory's command_timeout).
        stream: print output lines as they come, prefixed with the host name.
        mask: mask known secrets in stdout (False: the caller masks it once it can read it, e.g.
            compressed output; stderr is always masked).
        """
        shown = mask_known if mask else _as_is
        conn = self.open()
        opts = {"timeout": timeout or self.host.ssh.command_timeout}
        if stream:
            opts.update(
                hide=False,
                out_stream=PrefixedOutput(self.host.name),
                err_stream=PrefixedOutput(self.host.name, sys.stderr),
            )
        started = time.perf_counter()
        self.round_trips += 1
        interrupted = interrupts.count()
        try:
            if sudo:
                result = conn.sudo(command, password=self._sudo_password(), **opts)
            else:
                result = conn.run(command, **opts)
        except CommandTimedOut as err:
            if not self.alive():  # not a slow command: the host stopped answering
                self.close()
                raise HostUnreachable(
                    self.host.name,
                    f"{self.host.address}:{self.host.port} stopped answering: a command timed out after "
                    f"{err.timeout} s and the host does not answer since",
                ) from None
            return CommandOutcome(
                self.host.name,
                "failed",
                None,
                shown(err.result.stdout),
                mask_known(err.result.stderr),
                f"timed out after {err.timeout} s",
                connect_ms=self.connect_ms,
            )
        except AuthFailure:
            raise SudoError(
                self.host.name, f"sudo refused the password from {self.host.sudo_password.ref}: check that secret"
            ) from None
        except UnexpectedExit as err:
            result = err.result
        except (paramiko.SSHException, OSError, EOFError) as err:
            self._forget()
            raise classify(self.host, err) from None
        self._bytes_seen = _tcp_payload(conn) or self._bytes_seen
        interrupts.raise_if_new(interrupted)  # an interrupt the wait swallowed: the command ended, now stop
        rtt = (time.perf_counter() - started) * 1000
        code = result.exited
        if code == -1 and (self.conn is None or not self.conn.is_connected):  # the channel died with the link
            self._forget()
            raise HostUnreachable(
                self.host.name,
                f"{self.host.address}:{self.host.port}: the connection was lost while a command ran "
                f"(after {rtt / 1000:.1f} s)",
            )
        return CommandOutcome(
            self.host.name,
            "ok" if code == 0 else "failed",
            None if code == -1 else code,
            shown(result.stdout),
            mask_known(result.stderr),
            _exit_error(code, rtt / 1000, opts["timeout"]),
            round(rtt, 2),
            self.connect_ms and round(self.connect_ms, 2),
        )

    def _sudo_password(self) -> str:
        return sudo_password(self.host)

    def close(self) -> None:
        """Close the connection (and its gateway hops). A connect still under way is not waited
        for: it closes what it makes when it ends (a run refused for bad input ends at once, even
        with hosts that are slow to answer)."""
        attempt = self._early
        if attempt is not None and attempt.thread is not threading.current_thread():
            with self._early_lock:
                if not attempt.done:  # kept: a second close() returns here too
                    attempt.abandoned = True
                    return
            self._early = None
        self._close_conn()

    def _close_conn(self) -> None:
        if self.conn is not None:
            conn = self.conn
            self._forget()
            conn.close()


@dataclass
class _Early:
    """A connect started ahead of a Remote's first use: its thread, how it failed, whether it has
    ended, and whether the Remote was closed meanwhile (then the thread closes what it made)."""

    thread: threading.Thread | None = None
    error: BaseException | None = None
    done: bool = False
    abandoned: bool = False


def connecting(hosts: Iterable[Any], inventory: Any = None, parallel: int = 10) -> dict[str, Remote]:
    """Return a Remote for each host, each already connecting in the background (see
    Remote.connect_early), at most `parallel` at once: a run opens its hosts' connections while it
    reads its records and builds its states, instead of after."""
    remotes = {host.name: Remote(host, inventory) for host in hosts}
    gate = threading.Semaphore(max(1, parallel))
    for remote in remotes.values():
        remote.connect_early(gate)
    return remotes


def stage(remote: Any, files: dict[str, bytes | Callable[[], bytes]]) -> str:
    """Upload files for one command, private from the moment they exist: into a folder of their
    own (STAGE_PREFIX + random, made mode 0700 by the mkdir request itself, never an existing
    path), each file created there and set to mode 0600; return the folder. The command that
    reads them removes the folder; one cut off before it could is removed by the next run that
    takes the host's run lock (see runlock).

    remote: the host's Remote (its connection is opened when needed).
    files: name -> content (bytes, or a function that returns them when uploaded).
    """
    sftp = remote.open().sftp()
    folder = f"{STAGE_PREFIX}{uuid.uuid4().hex[:12]}"
    sftp.mkdir(folder, 0o700)  # the mode travels with the request: private at creation
    if sftp.stat(folder).st_mode & 0o077:  # an SFTP server that ignored it: never put a secret there
        sftp.rmdir(folder)
        raise ConnectionFailed(remote.host.name, f"{folder}: the SFTP server did not create it private (0700)")
    remote.round_trips += 1
    for name, data in files.items():
        with sftp.open(f"{folder}/{name}", "wbx") as out:  # a new file in the private folder
            out.chmod(0o600)
            out.write(data() if callable(data) else data)
        remote.round_trips += 1
    return folder


def sudo_password(host: Any) -> str:
    """Return the host's sudo password; SudoError naming the missing setting when it has none."""
    secret = host.sudo_password
    if secret is None:
        raise SudoError(
            host.name,
            "sudo needs a password but the inventory sets no sudo_password for this host (use env:NAME or file:PATH)",
        )
    return str(secret.reveal())


def _as_is(text: str) -> str:
    return text


def _tcp_socket(conn: Any) -> Any:
    """The socket under a connection's SSH transport (a channel when it goes through a hop)."""
    return getattr(getattr(conn, "transport", None), "sock", None) if conn is not None else None


def _tcp_payload(conn: Any) -> int | None:
    """Bytes a connection's TCP socket sent (acknowledged) and received so far, from the kernel's
    TCP_INFO (bytes_acked and bytes_received, Linux ≥ 4.2); None without a TCP socket."""
    sock = _tcp_socket(conn)
    if not isinstance(sock, socket.socket) or not hasattr(socket, "TCP_INFO"):
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 192)
    except OSError:
        return None
    if len(info) < 136:
        return None
    acked, received = struct.unpack_from("=QQ", info, 120)
    return int(max(acked - 1, 0) + received)  # the kernel counts our SYN as one byte acknowledged


def _exit_error(code: int, seconds: float, timeout: float) -> str | None:
    """Return the error of a finished command, or None when it succeeded.

    code: its exit status (-1: the channel closed without one).
    seconds: how long it ran.
    timeout: the command timeout it ran under.
    """
    if code == 0:
        return None
    if code == -1:  # invoke can lose the race between its timeout and the channel closing
        return (
            f"timed out after {timeout:g} s"
            if seconds >= timeout
            else "the connection closed before the command reported an exit status"
        )
    return f"exit code {code}"


def classify(host: Any, err: BaseException) -> ConnectionFailed:
    """Turn a low-level connect error into unreachable, host key or auth errors.

    host: the inventory Host.
    err: what paramiko, Fabric or the socket raised.
    """
    where = f"{host.address}:{host.port}"
    if isinstance(err, ConnectionFailed):
        return err
    if isinstance(err, paramiko.BadHostKeyException):
        return HostKeyError(host.name, hostkeys.changed_key_message(err, host.ssh.known_hosts))
    if isinstance(err, paramiko.AuthenticationException):
        return AuthError(
            host.name,
            f"login as {host.user}@{where} refused: {err}; check ssh.identity ({host.ssh.identity}) and the user",
        )
    if isinstance(err, (socket.timeout, TimeoutError)):
        return HostUnreachable(host.name, f"{where} unreachable: no answer within {host.ssh.connect_timeout:g} s")
    if isinstance(err, paramiko.ssh_exception.NoValidConnectionsError):
        return HostUnreachable(host.name, f"{where} unreachable: {_strip(err)}")
    if isinstance(err, OSError):
        return HostUnreachable(host.name, f"{where} unreachable: {err.strerror or err}")
    return ConnectionFailed(host.name, f"{where}: {type(err).__name__}: {mask_known(str(err))}")


def _strip(err: Exception) -> str:
    errors = getattr(err, "errors", {})
    reasons = {getattr(e, "strerror", None) or str(e) for e in errors.values()}
    return "; ".join(sorted(reasons)) or str(err)


def outcome_of_error(host: Any, err: FoobarOpsError) -> CommandOutcome:
    """Return the CommandOutcome that stands for an error raised before or around a command."""
    kind = "unreachable" if isinstance(err, HostUnreachable) else "failed"
    return CommandOutcome(host.name, kind, error=mask_known(str(err)))


def run_many(
    hosts: Iterable[Any],
    command: str,
    *,
    inventory: Any = None,
    sudo: bool = False,
    cap: int = 10,
    timeout: float | None = None,
    stream: bool = False,
    on_outcome: Callable[[CommandOutcome], None] | None = None,
) -> list[CommandOutcome]:
    """Run one command on many hosts in parallel and return one CommandOutcome per host, in order.

    hosts: inventory Hosts.
    command: the command line (built with shell.cmd).
    inventory: the Inventory (for ProxyJump through an inventory host).
    sudo: run through sudo.
    cap: at most this many hosts at once.
    timeout: per-command timeout in seconds.
    stream: print output lines prefixed with the host name as they come.
    on_outcome: called with each host's CommandOutcome as soon as it is known (e.g. to journal it).
    """

    def one(host: Any) -> CommandOutcome:
        outcome = _one(host)
        if on_outcome:
            on_outcome(outcome)
        return outcome

    def _one(host: Any) -> CommandOutcome:
        try:
            with Remote(host, inventory) as remote:
                return remote.run(command, sudo=sudo, timeout=timeout, stream=stream)
        except FoobarOpsError as err:
            return outcome_of_error(host, err)
        except Exception as err:  # noqa: BLE001 - one host's surprise must not hide the others
            return CommandOutcome(host.name, "failed", error=f"{type(err).__name__}: {mask_known(str(err))}")

    hosts = list(hosts)
    if not hosts:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(cap, len(hosts)))) as pool:
        return list(pool.map(one, hosts))
