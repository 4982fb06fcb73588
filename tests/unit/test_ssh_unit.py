"""The SSH layer without hosts: error classification, strict host key policies, prefixed output,
and how connections are configured (no connection is opened)."""

from __future__ import annotations

import dataclasses
import io
import socket
import threading
import time
from types import SimpleNamespace

import paramiko
import pytest
from invoke.exceptions import CommandTimedOut
from invoke.runners import Result

from foobar_ops.core import hostkeys, ssh
from foobar_ops.core.errors import AuthError, ConnectionFailed, HostKeyError, HostUnreachable
from foobar_ops.core.inventory import load_inventory
from foobar_ops.core.secrets import Secret


@pytest.fixture
def inv(tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text("")
    path = tmp_path / "inv.yml"
    path.write_text(f"""
defaults:
  user: ops
  ssh: {{known_hosts: {known}, connect_timeout: 0.5, keepalive: 7}}
hosts:
  web-01: {{address: 10.77.0.11, roles: [nginx]}}
  lb-01: {{address: 10.77.0.10, roles: [haproxy]}}
  web-02: {{address: 10.77.0.12, roles: [nginx], ssh: {{proxy_jump: lb-01}}}}
""")
    return load_inventory(path)


def test_a_connect_started_early_fails_at_the_first_use_naming_the_host(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # closed: every connection to it is refused at once
    path = tmp_path / "inv.yml"
    path.write_text(f"hosts:\n  web-01: {{address: 127.0.0.1, port: {port}, roles: [nginx]}}\n")
    inv = load_inventory(path)
    remotes = ssh.connecting(inv.hosts.values(), inv, parallel=1)
    remote = remotes["web-01"]
    assert remote._early is not None  # under way in the background
    with pytest.raises(HostUnreachable, match="web-01"):
        remote.open()
    assert remote._early is None and remote.conn is None
    with pytest.raises(HostUnreachable, match="web-01"):  # asked again: it tries again
        remote.open()
    remote.close()


def test_closing_a_remote_whose_early_connect_is_under_way_does_not_wait_and_leaves_nothing_open(inv, monkeypatch):
    opened = []

    def slow_open(self):
        time.sleep(0.5)  # a host that is slow to answer
        opened.append(self.host.name)
        self.conn = SimpleNamespace(close=lambda: opened.append("closed"), is_connected=True)
        return self.conn

    monkeypatch.setattr(ssh.Remote, "open", slow_open)
    monkeypatch.setattr(ssh, "_tcp_payload", lambda conn: 0)
    remote = ssh.Remote(inv.hosts["web-01"], inv)
    remote.connect_early()
    attempt = remote._early
    started = time.monotonic()
    remote.close()  # e.g. a run refused for bad input: it ends now, not when the host answers
    remote.close()  # the engine's close and the operation's: the second one must not drop it either
    assert time.monotonic() - started < 0.3 and opened == []
    attempt.thread.join(5)
    assert opened == ["web-01", "closed"] and remote.conn is None  # what it made, closed when it ended


def test_a_connection_still_being_made_when_its_remote_is_closed_twice_is_closed_once_made(inv, monkeypatch):
    events = []

    class Slow:
        """A Fabric connection whose login takes a while: not connected until open() returns."""

        is_connected = False
        transport = SimpleNamespace(set_keepalive=lambda seconds: None, sock=None, channel_timeout=None)

        def open(self):
            time.sleep(0.3)
            self.is_connected = True
            events.append("made")

        def close(self):
            events.append("closed" if self.is_connected else "closed before made")

    monkeypatch.setattr(ssh, "connect", lambda host, inventory=None: Slow())
    monkeypatch.setattr(ssh, "_tcp_payload", lambda conn: 0)
    remote = ssh.Remote(inv.hosts["web-01"], inv)
    remote.connect_early()
    attempt = remote._early
    time.sleep(0.05)  # the login is under way
    remote.close()
    remote.close()  # the engine's close, then the operation's
    attempt.thread.join(5)
    assert events == ["made", "closed"] and remote.conn is None  # nothing left logged in


def test_connects_still_waiting_their_turn_when_the_run_ends_never_connect(inv, monkeypatch):
    made = []

    def slow_open(self):
        time.sleep(0.3)
        made.append(self.host.name)
        self.conn = SimpleNamespace(close=lambda: made.append(f"closed {self.host.name}"), is_connected=True)
        return self.conn

    monkeypatch.setattr(ssh.Remote, "open", slow_open)
    monkeypatch.setattr(ssh, "_tcp_payload", lambda conn: 0)
    remotes = ssh.connecting(inv.hosts.values(), inv, parallel=1)  # one at a time: two wait their turn
    attempts = [r._early for r in remotes.values()]
    for remote in remotes.values():
        remote.close()
    for attempt in attempts:
        attempt.thread.join(5)
    assert len([m for m in made if not m.startswith("closed")]) == 1  # only the one under way
    assert all(r.conn is None for r in remotes.values())


def test_a_remote_opened_from_several_threads_during_a_failed_early_connect_makes_one_connection(inv, monkeypatch):
    made = []

    def connect(host, inventory=None):
        made.append(host.name)
        if len(made) == 1:
            time.sleep(0.2)

            def refuse():
                raise OSError(111, "Connection refused")

            return SimpleNamespace(open=refuse, is_connected=False, close=lambda: None)
        transport = SimpleNamespace(set_keepalive=lambda seconds: None, sock=None, channel_timeout=None)
        return SimpleNamespace(open=lambda: None, is_connected=True, close=lambda: None, transport=transport)

    monkeypatch.setattr(ssh, "connect", connect)
    monkeypatch.setattr(ssh, "_tcp_payload", lambda conn: 0)
    remote = ssh.Remote(inv.hosts["web-01"], inv)
    remote.connect_early()
    outcomes = []

    def use():
        try:
            outcomes.append(remote.open())
        except Exception as err:  # noqa: BLE001 - collected for the assertion
            outcomes.append(err)

    threads = [threading.Thread(target=use) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    # the early connect's refusal reaches one caller; the others share one new connection
    errors = [o for o in outcomes if isinstance(o, Exception)]
    conns = [o for o in outcomes if not isinstance(o, Exception)]
    assert len(made) == 2 and len(errors) == 1 and isinstance(errors[0], HostUnreachable), outcomes
    assert len(conns) == 2 and conns[0] is conns[1]


def test_timeouts_and_refusals_are_unreachable(inv):
    host = inv.host("web-01")
    assert isinstance(ssh.classify(host, TimeoutError()), HostUnreachable)
    err = ssh.classify(
        host,
        paramiko.ssh_exception.NoValidConnectionsError(
            {("10.77.0.11", 22): ConnectionRefusedError(111, "Connection refused")}
        ),
    )
    assert isinstance(err, HostUnreachable) and "Connection refused" in str(err) and "10.77.0.11:22" in str(err)
    assert "0.5 s" in str(ssh.classify(host, TimeoutError()))


def test_a_changed_key_names_both_fingerprints_and_what_to_do(inv):
    host = inv.host("web-01")
    old, new = paramiko.RSAKey.generate(1024), paramiko.RSAKey.generate(1024)
    err = ssh.classify(host, paramiko.BadHostKeyException("10.77.0.11", new, old))
    assert isinstance(err, HostKeyError) and "CHANGED" in str(err)
    assert hostkeys.fingerprint(old) in str(err) and hostkeys.fingerprint(new) in str(err)
    assert "ssh-keygen -R 10.77.0.11" in str(err)


def test_a_refused_login_is_an_auth_error(inv):
    err = ssh.classify(inv.host("web-01"), paramiko.AuthenticationException("Authentication failed."))
    assert isinstance(err, AuthError) and "ops@10.77.0.11:22" in str(err)


def test_an_unknown_key_is_refused_by_default(inv, tmp_path):
    client = paramiko.SSHClient()
    hostkeys.apply_policy(client, "web-01", tmp_path / "known_hosts", trust_new=False)
    with pytest.raises(HostKeyError, match="is not known"):
        client._policy.missing_host_key(client, "10.77.0.11", paramiko.RSAKey.generate(1024))


def test_trusting_new_keys_records_them(tmp_path):
    store = tmp_path / "kh"
    client = paramiko.SSHClient()
    hostkeys.apply_policy(client, "web-01", store, trust_new=True)
    client._policy.missing_host_key(client, "10.77.0.11", paramiko.RSAKey.generate(1024))
    assert store.read_text().startswith("10.77.0.11 ssh-rsa ")


def test_a_missing_known_hosts_file_is_named(tmp_path):
    with pytest.raises(HostKeyError, match="does not exist"):
        hostkeys.apply_policy(paramiko.SSHClient(), "web-01", tmp_path / "nope", trust_new=False)


def test_connections_are_strict_with_float_timeouts_and_jump_through_inventory_hosts(inv):
    conn = ssh.connect(inv.host("web-02"), inv)
    assert isinstance(conn.client._policy, hostkeys.RefuseUnknown)
    assert conn.connect_kwargs["timeout"] == 0.5 and conn.connect_timeout is None
    assert conn.gateway is not None and conn.gateway.host == "10.77.0.10"
    assert isinstance(conn.gateway.client._policy, hostkeys.RefuseUnknown)


def test_prefixed_output_writes_whole_lines_with_the_host_and_masks_secrets(monkeypatch):
    monkeypatch.setenv("FOOBAR_TEST_PREFIX_SECRET", "s3cr3t-prefix-value")
    Secret("env:FOOBAR_TEST_PREFIX_SECRET").reveal()
    out = io.StringIO()
    stream = ssh.PrefixedOutput("web-01", out)
    stream.write("one\ntw")
    assert out.getvalue() == "web-01 | one\n"
    stream.write("o s3cr3t-prefix-value\n")
    stream.flush()
    assert out.getvalue() == "web-01 | one\nweb-01 | two ********\n"


def test_run_many_gives_every_host_an_outcome_even_when_one_raises(inv, monkeypatch):
    class FakeRemote:
        def __init__(self, host, inventory):
            self.host = host

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

        def run(self, command, **kw):
            if self.host.name == "web-01":
                raise HostUnreachable("web-01", "10.77.0.11:22 unreachable: no answer")
            if self.host.name == "lb-01":
                raise RuntimeError("surprise")
            return ssh.CommandOutcome(self.host.name, "ok", 0, "5.10\n")

    monkeypatch.setattr(ssh, "Remote", FakeRemote)
    seen = []
    outcomes = ssh.run_many(inv.select("all"), "uname -r", on_outcome=seen.append, cap=2)
    assert [(o.host, o.outcome) for o in outcomes] == [("web-01", "unreachable"), ("lb-01", "failed"), ("web-02", "ok")]
    assert "surprise" in outcomes[1].error and sorted(o.host for o in seen) == ["lb-01", "web-01", "web-02"]


@pytest.mark.parametrize(
    "code, seconds, error",
    [
        (0, 0.1, None),
        (3, 0.1, "exit code 3"),
        (-1, 1.02, "timed out after 1 s"),
        (-1, 0.2, "the connection closed before the command reported an exit status"),
    ],
)
def test_exit_errors_tell_a_timeout_from_a_lost_channel(code, seconds, error):
    assert ssh._exit_error(code, seconds, 1.0) == error


# --- a jump host keeps its own host key policy -----------------------------------------------


@pytest.fixture
def jump_inv(tmp_path):
    """web-02 jumps through lb-01; each has its own known_hosts and trust_new_keys."""
    web_known, lb_known = tmp_path / "web_known_hosts", tmp_path / "lb_known_hosts"
    web_known.write_text(f"10.77.0.12 ssh-rsa {paramiko.RSAKey.generate(1024).get_base64()}\n")
    lb_known.write_text(f"10.77.0.10 ssh-rsa {paramiko.RSAKey.generate(1024).get_base64()}\n")
    path = tmp_path / "inv.yml"
    path.write_text(f"""
defaults:
  user: ops
  ssh: {{known_hosts: {web_known}, connect_timeout: 0.5}}
hosts:
  lb-01: {{address: 10.77.0.10, roles: [haproxy], ssh: {{known_hosts: {lb_known}, trust_new_keys: true}}}}
  web-02: {{address: 10.77.0.12, roles: [nginx], ssh: {{proxy_jump: lb-01}}}}
  web-03: {{address: 10.77.0.13, roles: [nginx], ssh: {{proxy_jump: bastion.example, trust_new_keys: true}}}}
""")
    return SimpleNamespace(inv=load_inventory(path), web_known=web_known, lb_known=lb_known)


def test_a_jump_host_of_the_inventory_keeps_its_own_known_hosts_and_trust(jump_inv):
    conn = ssh.connect(jump_inv.inv.host("web-02"), jump_inv.inv)
    target, hop = conn.client._policy, conn.gateway.client._policy
    assert isinstance(target, hostkeys.RefuseUnknown)
    assert (target.label, target.known_hosts) == ("web-02", jump_inv.web_known)
    assert isinstance(hop, hostkeys.TrustNew) and hop.known_hosts == jump_inv.lb_known  # lb-01's own entry
    assert (
        "10.77.0.10" in conn.gateway.client.get_host_keys() and "10.77.0.12" not in conn.gateway.client.get_host_keys()
    )
    assert "10.77.0.12" in conn.client.get_host_keys()


def test_a_strict_jump_host_stays_strict_for_a_target_that_trusts_new_keys(jump_inv, tmp_path):
    inv = jump_inv.inv
    lb, web = inv.host("lb-01"), inv.host("web-02")
    strict_lb = dataclasses.replace(lb, ssh=dataclasses.replace(lb.ssh, trust_new_keys=False))
    trusting_web = dataclasses.replace(web, ssh=dataclasses.replace(web.ssh, trust_new_keys=True))
    inv.hosts["lb-01"] = strict_lb
    conn = ssh.connect(trusting_web, inv)
    assert isinstance(conn.client._policy, hostkeys.TrustNew) and conn.client._policy.known_hosts == jump_inv.web_known
    hop = conn.gateway.client._policy
    assert isinstance(hop, hostkeys.RefuseUnknown) and (hop.label, hop.known_hosts) == ("lb-01", jump_inv.lb_known)


def test_a_jump_host_outside_the_inventory_gets_the_targets_policy(jump_inv):
    conn = ssh.connect(jump_inv.inv.host("web-03"), jump_inv.inv)
    assert conn.gateway.host == "bastion.example"
    assert isinstance(conn.gateway.client._policy, hostkeys.TrustNew)
    assert conn.gateway.client._policy.known_hosts == jump_inv.web_known


# --- Remote: connection settings, a host that stops answering, the lock taken again ------------


class FakeTransport:
    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.keepalive = None

    def set_keepalive(self, seconds):
        self.keepalive = seconds


class FakeConn:
    """Stands for a Fabric Connection: run() gives the results (or raises the errors) in `answers`;
    the probe `true` of Remote.alive gets `probe`."""

    def __init__(self, answers=(), probe=None):
        self.answers = list(answers)
        self.probe = probe
        self.is_connected = False
        self.transport = None
        self.commands = []
        self.closed = 0

    def open(self):
        self.is_connected = True
        self.transport = FakeTransport()

    def run(self, command, **opts):
        self.commands.append(command)
        answer = self.probe if command == "true" else self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        if callable(answer):
            return answer(self)
        return answer

    sudo = run

    def close(self):
        self.closed += 1
        self.is_connected = False
        if self.transport is not None:
            self.transport.sock.close()


@pytest.fixture
def conns(monkeypatch):
    """Every connection Remote opens, in order (ssh.connect gives the next FakeConn)."""
    made: list[FakeConn] = []  # the next connections to hand out (else a new FakeConn)
    opened: list[FakeConn] = []

    def connect(host, inventory=None):
        conn = made.pop(0) if made else FakeConn()
        opened.append(conn)
        return conn

    monkeypatch.setattr(ssh, "connect", connect)
    return SimpleNamespace(next=made, opened=opened)


@pytest.mark.parametrize("timeout, user_timeout_ms, idle", [(0.5, 10_000, 1), (30, 60_000, 30), (2.2, 10_000, 3)])
def test_a_connection_gives_up_on_a_silent_host_in_time(inv, conns, timeout, user_timeout_ms, idle):
    host = inv.host("web-01")
    host = dataclasses.replace(host, ssh=dataclasses.replace(host.ssh, connect_timeout=timeout))
    remote = ssh.Remote(host, inv)
    transport = remote.open().transport
    assert transport.channel_timeout == float(timeout)  # opening a channel waits no longer than connecting
    assert transport.keepalive == 7
    sock = transport.sock
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == user_timeout_ms
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    # TCP keepalive probes a silent link every second after `idle` seconds, giving up after `idle` probes
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == idle
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 1
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == idle
    remote.close()


def test_the_lock_is_taken_again_only_when_a_remote_connects_again(inv, conns):
    remote = ssh.Remote(inv.host("web-01"), inv)
    relocked = []
    remote.relock = lambda: relocked.append(True)
    remote.open()
    remote.open()  # still connected: nothing new
    assert relocked == [] and len(conns.opened) == 1
    remote.close()
    remote.open()
    assert relocked == [True] and len(conns.opened) == 2


def test_a_lock_that_cannot_be_taken_again_fails_the_reconnection(inv, conns):
    remote = ssh.Remote(inv.host("web-01"), inv)
    remote.open()
    remote.close()

    def taken():
        raise ConnectionFailed("web-01", "the connection was lost, and meanwhile web-01: locked by run X")

    remote.relock = taken
    with pytest.raises(ConnectionFailed, match="meanwhile web-01: locked by run X"):
        remote.open()
    # the new connection is not kept: a later command does not run there without the lock
    assert remote.conn is None and conns.opened[1].closed == 1
    with pytest.raises(ConnectionFailed, match="locked by run X"):
        remote.run("systemctl reload haproxy")
    assert all(c.commands == [] for c in conns.opened)


def test_stdout_is_masked_unless_the_caller_masks_it_later(inv, conns, monkeypatch):
    monkeypatch.setenv("FOOBAR_TEST_SSH_MASK", "s3cr3t-in-output")
    Secret("env:FOOBAR_TEST_SSH_MASK").reveal()
    answer = Result(stdout="got s3cr3t-in-output", stderr="err s3cr3t-in-output", exited=0)
    conns.next.append(FakeConn([answer, answer]))
    remote = ssh.Remote(inv.host("web-01"), inv)
    masked, raw = remote.run("cat x"), remote.run("cat x", mask=False)
    assert masked.stdout == "got ********" and raw.stdout == "got s3cr3t-in-output"
    assert raw.stderr == masked.stderr == "err ********"  # stderr: always


def test_a_command_that_times_out_on_a_host_that_no_longer_answers_is_unreachable(inv, conns):
    conns.next.append(FakeConn([CommandTimedOut(Result(stdout="partial"), 300)], probe=EOFError("gone")))
    remote = ssh.Remote(inv.host("web-01"), inv)
    with pytest.raises(HostUnreachable, match=r"10.77.0.11:22 stopped answering: a command timed out after 300 s"):
        remote.run("sleep 1000")
    assert conns.opened[0].commands == ["sleep 1000", "true"] and remote.conn is None
    assert conns.opened[0].closed == 1


def test_a_command_that_times_out_on_a_host_that_still_answers_is_a_failed_command(inv, conns):
    conns.next.append(FakeConn([CommandTimedOut(Result(stdout="partial"), 300)], probe=Result(exited=0)))
    remote = ssh.Remote(inv.host("web-01"), inv)
    out = remote.run("sleep 1000")
    assert (out.outcome, out.exit_code, out.stdout, out.error) == ("failed", None, "partial", "timed out after 300 s")
    assert remote.conn is conns.opened[0] and remote.conn.is_connected  # the connection is kept


def test_a_command_whose_connection_dies_with_it_is_unreachable(inv, conns):
    def lost(conn):
        conn.is_connected = False  # the transport went with the link
        return Result(stdout="", exited=-1)

    conns.next.append(FakeConn([lost]))
    remote = ssh.Remote(inv.host("web-01"), inv)
    with pytest.raises(HostUnreachable, match="10.77.0.11:22: the connection was lost while a command ran"):
        remote.run("apt-get install -y haproxy")
    assert remote.conn is None


def test_a_channel_closed_without_an_exit_status_on_a_live_connection_is_a_failed_command(inv, conns):
    conns.next.append(FakeConn([Result(stdout="half", exited=-1)]))
    remote = ssh.Remote(inv.host("web-01"), inv)
    out = remote.run("systemctl is-active app")
    assert (out.outcome, out.exit_code) == ("failed", None)
    assert out.error == "the connection closed before the command reported an exit status"


def test_an_interrupt_swallowed_while_a_command_ran_is_raised_when_it_returns(inv, conns):
    from foobar_ops.core import interrupts

    def swallowed(conn):
        interrupts.note_term()  # a SIGTERM came in; invoke caught it, forwarded ^C, kept waiting
        return Result(stdout="done", exited=0)

    conns.next.append(FakeConn([swallowed, Result(stdout="ok", exited=0)]))
    remote = ssh.Remote(inv.host("web-01"), inv)
    with pytest.raises(interrupts.Terminated):
        remote.run("install something")
    assert remote.run("echo ready").ok  # the next command (e.g. putting a server back) is not refused


def test_an_interrupt_that_came_in_before_a_command_does_not_stop_it(inv, conns):
    from foobar_ops.core import interrupts

    interrupts.note()  # already delivered and handled: the unwinding runs commands
    conns.next.append(FakeConn([Result(stdout="ok", exited=0)]))
    assert ssh.Remote(inv.host("web-01"), inv).run("ready web-01").ok


# --- bytes on the wire ---------------------------------------------------------------------------


def test_the_bytes_a_connection_moved_are_counted_both_ways_and_kept_after_it_closes(inv):
    server = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(server.getsockname())
    peer, _ = server.accept()
    try:
        conn = SimpleNamespace(transport=SimpleNamespace(sock=client))
        client.sendall(b"x" * 3000)
        assert len(peer.recv(3000, socket.MSG_WAITALL)) == 3000
        peer.sendall(b"y" * 500)
        assert len(client.recv(500, socket.MSG_WAITALL)) == 500
        deadline = time.monotonic() + 5
        while ssh._tcp_payload(conn) != 3500 and time.monotonic() < deadline:
            pass  # the last acknowledgement may still be on its way
        assert ssh._tcp_payload(conn) == 3500
        remote = ssh.Remote(inv.hosts["web-01"])
        remote.conn = conn
        assert remote.ssh_bytes == 3500
        remote._forget()  # dropped: its count stays
        assert remote.conn is None and remote.ssh_bytes == 3500
        remote.conn, remote._bytes_seen = conn, 3500  # as of its last command ...
        client.close()  # ... then the link died and paramiko closed the socket
        remote._forget()
        assert remote.ssh_bytes == 7000
        remote.conn = SimpleNamespace(transport=SimpleNamespace(sock=paramiko.Channel(1)))  # through a hop
        assert remote.ssh_bytes is None  # cannot be measured
    finally:
        for sock in (client, peer, server):
            sock.close()


def test_a_runs_connection_is_handed_out_by_the_run_and_closed_by_it_not_by_a_user(inv, monkeypatch):
    from foobar_ops.core.run import Run, RunOptions
    from foobar_ops.stack.lb import HAProxy

    closed = []
    monkeypatch.setattr(ssh.Remote, "close", lambda self: closed.append(self))
    lb = inv.host("lb-01")
    run = Run("20260101-090000-abc123", inv, RunOptions())
    mine = run.remote(lb)
    assert run.remote(lb) is mine and run.remotes == {"lb-01": mine}  # one connection per host per run
    with HAProxy(inv, record=False, remote=mine) as user:
        assert user.remote is mine
    assert closed == []  # the run's, not the user's to close
    with HAProxy(inv, record=False) as own:
        assert own.remote is not mine  # outside a run: a connection of its own ...
    assert closed == [own.remote]  # ... closed by its user
    run.close()
    assert closed == [own.remote, mine]
