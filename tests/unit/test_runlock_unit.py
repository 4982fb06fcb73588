"""The run lock of a host (core.runlock) without a host: who holds it (Holder), the holding shell's
script, and HostLock / locked() with that script run by a local /bin/sh over a fake SSH channel
(the lock folder is a temporary one)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from types import SimpleNamespace

import pytest

from foobar_ops.core import machine, onhost, runlock
from foobar_ops.core.errors import ConnectionFailed, FoobarOpsError, SudoError
from foobar_ops.core.runlock import EarlierChangeRunning, Holder, HostLock, RunLocked, locked

HERE = socket.gethostname()
ME = machine.machine_id()  # this control machine, as the lock details name it


def dead_pid() -> int:
    """The pid of a process that has ended (on this machine)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


# --- Holder ----------------------------------------------------------------------------------


def test_a_holder_is_parsed_from_what_the_lock_file_says():
    text = json.dumps(
        {
            "run": "20260101-090000-abc123",
            "command": "foobar-ops apply web",
            "user": "alice",
            "machine": "ctl-2",
            "pid": 4242,
            "since": "2026-01-01T09:00:00Z",
            "shell": 777,
            "added_later": "ignored",
        }
    )
    assert Holder.parse(text) == Holder(
        "20260101-090000-abc123", "foobar-ops apply web", "alice", "ctl-2", 4242, "2026-01-01T09:00:00Z", 777
    )


@pytest.mark.parametrize("text", ["", "not json", "[1, 2]", '"run"', '{"command": "x"}', '{"run": "x"'])
def test_a_lock_file_that_names_no_run_is_no_holder(text):
    assert Holder.parse(text) is None


def test_a_holder_describes_itself_whatever_it_left_out():
    full = Holder("r1", "foobar-ops apply web", "alice", "ctl-2", 4242, "2026-01-01T09:00:00Z")
    assert full.describe() == "run r1 (foobar-ops apply web) of alice on ctl-2 (pid 4242), since 2026-01-01T09:00:00Z"
    assert Holder("r2").describe() == "run r2 (a run) of ? on ? (pid 0), since ?"


def test_a_holder_is_dead_here_only_when_its_process_on_this_machine_is_gone():
    assert Holder("r", machine=HERE, machine_id=ME, pid=dead_pid()).is_dead_here()
    assert not Holder("r", machine=HERE, machine_id=ME, pid=os.getpid()).is_dead_here()  # alive
    assert not Holder("r", machine=HERE, machine_id=ME, pid=0).is_dead_here()
    # another machine that has the same hostname (a cloned VM, a container): cannot tell from here
    assert not Holder("r", machine=HERE, machine_id="0f" * 16 + "/boot/1", pid=dead_pid()).is_dead_here()
    assert not Holder("r", machine=HERE, pid=dead_pid()).is_dead_here()  # no machine id: never judged


def test_a_pid_reused_by_another_process_is_not_the_holder():
    started = machine.process_start(os.getpid())
    assert started and machine.process_alive(os.getpid(), started)
    mine = Holder("r", machine=HERE, machine_id=ME, pid=os.getpid(), pid_start=started)
    assert not mine.is_dead_here()
    reused = Holder("r", machine=HERE, machine_id=ME, pid=os.getpid(), pid_start=str(int(started) - 1))
    assert reused.is_dead_here()  # the pid runs, but it is another process than the holder


def read(path: str) -> str:
    return open(path).read().strip() if os.path.exists(path) else ""


def test_the_machine_id_is_the_machine_its_boot_and_pid_namespace():
    base, boot, namespace = ME.split("/")
    kept = [text for p in ("/etc/machine-id", "/var/lib/dbus/machine-id") if (text := read(p))]
    assert base == (kept[0] if kept else "host:" + HERE)  # never the hostname while a machine id is there
    assert boot == open("/proc/sys/kernel/random/boot_id").read().strip()
    assert namespace == str(os.stat("/proc/self/ns/pid").st_ino)


def test_run_locked_names_the_holder_and_says_nothing_changed():
    err = RunLocked("web-01", Holder("r1", "foobar-ops apply", "alice", "ctl-2", 42, "T"), 0)
    assert str(err) == (
        "web-01 is locked by run r1 (foobar-ops apply) of alice on ctl-2 (pid 42), since T: this run changed nothing"
    )
    assert str(RunLocked("web-01", None, 2.5)) == (
        "web-01 is locked by another run (it left no details) after waiting 2.5 s: this run changed nothing"
    )
    assert err.host == "web-01" and err.holder.run == "r1"


# --- the holding shell's script ----------------------------------------------------------------


@pytest.mark.parametrize("wait, flag", [(0, "flock -w 0 9"), (30.0, "flock -w 30 9"), (2.5, "flock -w 2.5 9")])
def test_the_script_waits_as_long_as_asked_for_the_lock(wait, flag):
    line = runlock._script('{"run": "r1"}', wait).splitlines()[1]
    assert line.startswith(f"if ! {flag}; then ")
    assert line.endswith("{ printf 'BUSY %s\\n' \"$(cat /run/foobar-ops/run.holder 2>/dev/null)\"; exit 3; }; fi")


def test_the_script_holds_the_lock_in_its_shell_only_until_the_channel_closes():
    info = json.dumps({"run": "r1", "command": "it's", "shell": 0})
    lines = runlock._script(info, 0).splitlines()
    # on tmpfs; made once
    assert lines[0] == "umask 077; [ -d /run/foobar-ops ] || mkdir -p /run/foobar-ops; exec 9>>/run/foobar-ops/run.lock"
    # who holds it, with the shell's own pid, next to the lock
    assert lines[3].startswith('printf \'%s%s%s\\n\' \'{"run": "r1", "command": "it\'"\'"\'s", "shell": \' "$$" \'}\'')
    assert lines[3].endswith("> /run/foobar-ops/run.holder")
    # held while the channel is open, until the run says it is done (then its change outcomes go)
    wait = (
        'while read -r line; do [ "$line" = release ] && '
        "{ rm -f /run/foobar-ops/run.holder /var/lib/foobar-ops/outcomes/apply.*; break; }; done"
    )
    assert lines[-2:] == [wait, "rm -f /run/foobar-ops/run.holder"]
    assert lines.index('printf "LOCKED %s\\n" "$n"') < lines.index(wait)
    # taking it cleans what dead runs left, once any change that outlived its run has ended
    # (a change holds the changes lock, shared, while it runs)
    clean = next(i for i, line in enumerate(lines) if "/tmp/.foobar-stage-*" in line)
    assert lines[clean - 1] == (
        "exec 8>>/run/foobar-ops/changes.lock; if ! flock -x -n 8; then printf 'WAITING\\n'; "
        "if ! flock -x -w 300 8; then rm -f /run/foobar-ops/run.holder; printf 'CHANGING\\n'; exit 4; fi; fi; "
        "exec 8>&-"
    )
    # taking it cleans what dead runs left; taking it again after a cut does not, nor waits for
    # the change still running (the run's own: it reads its outcome back)
    assert 'set -- /var/lib/foobar-ops/outcomes/apply.*; if [ -e "$1" ]; then rm -f "$@"; fi' in lines[clean]
    again = runlock._script(info, 0, clean=False).splitlines()
    assert again[clean - 1 : clean + 1] == [":", "n=0"]


# --- HostLock and locked(), the script run by a local shell ----------------------------------


class ShellChannel:
    """Stands for a paramiko channel: runs the command line in a local /bin/sh (the /tmp it cleans
    is the test's; the lock folder is the host's own, within the test's), its stdin being what is
    sent."""

    def __init__(self, tmp, host="web-01"):
        self.tmp, self.host = tmp, host
        self.proc = None
        self.out, self.err = bytearray(), bytearray()
        self.closed = False
        self.timeout = None
        self.arrived = threading.Condition()  # what paramiko's buffers wake a blocked recv() with
        self.eof_received = False  # the command's stdout has ended

    def settimeout(self, seconds):
        self.timeout = seconds

    def exec_command(self, line):
        line = line.replace("/tmp/.foobar-", f"{self.tmp}/.foobar-")
        line = line.replace(runlock.LOCK_DIR, f"{runlock.LOCK_DIR}/{self.host}")
        line = line.replace(runlock.OUTCOMES, f"{runlock.OUTCOMES}/{self.host}")
        self.proc = subprocess.Popen(
            ["/bin/sh", "-c", line], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.pumps = [
            threading.Thread(target=self._pump, args=(stream, into), daemon=True)
            for stream, into in ((self.proc.stdout, self.out), (self.proc.stderr, self.err))
        ]
        for pump in self.pumps:
            pump.start()

    def _pump(self, stream, into):
        while chunk := os.read(stream.fileno(), 4096):
            with self.arrived:
                into.extend(chunk)
                self.arrived.notify_all()
        if into is self.out:
            with self.arrived:
                self.eof_received = True
                self.arrived.notify_all()

    def recv_ready(self):
        return bool(self.out)

    @staticmethod
    def _take(buffer, n):
        data = bytes(buffer[:n])
        del buffer[:n]
        return data

    def recv(self, n):
        # as paramiko's: waits (up to the channel's timeout, then socket.timeout) for output; b""
        # once the output has ended
        with self.arrived:
            if not self.arrived.wait_for(lambda: self.out or self.eof_received, self.timeout):
                raise TimeoutError
            return self._take(self.out, n)

    def recv_stderr_ready(self):
        return bool(self.err)

    def recv_stderr(self, n):
        return self._take(self.err, n)

    def exit_status_ready(self):
        # as over SSH, the exit status comes after all of the output
        return self.proc.poll() is not None and not any(p.is_alive() for p in self.pumps)

    def sendall(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def shutdown_write(self):
        self.proc.stdin.close()

    def close(self):
        if not self.closed:
            self.closed = True
            if not self.proc.stdin.closed:
                self.proc.stdin.close()  # what the end of the SSH channel does to the shell's stdin
            self.proc.wait(timeout=10)


class ShellRemote:
    """Stands for ssh.Remote of a host logged into as root: channels and commands run locally."""

    def __init__(self, tmp, name="web-01", user="root"):
        self.tmp = tmp
        self.host = SimpleNamespace(
            name=name, user=user, ssh=SimpleNamespace(connect_timeout=5.0, command_timeout=30.0), sudo_password=None
        )
        self.channels = []
        self.commands = []
        self.round_trips = 0

    def open(self):
        def open_session(timeout):
            channel = ShellChannel(self.tmp, self.host.name)
            self.channels.append(channel)
            return channel

        return SimpleNamespace(transport=SimpleNamespace(open_session=open_session))

    def run(self, command, sudo=False, timeout=None):
        self.round_trips += 1
        self.commands.append(command)
        command = command.replace(runlock.LOCK_DIR, f"{runlock.LOCK_DIR}/{self.host.name}")
        done = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, timeout=30)
        return SimpleNamespace(ok=done.returncode == 0, stdout=done.stdout)


@pytest.fixture
def lock_dir(tmp_path, monkeypatch):
    if shutil.which("flock") is None:
        pytest.skip("the run lock needs flock")
    folder = tmp_path / "run-foobar-ops"
    monkeypatch.setattr(runlock, "LOCK_DIR", str(folder))
    monkeypatch.setattr(runlock, "OUTCOMES", str(tmp_path / "outcomes"))
    return folder


def holder_in(lock_dir, host="web-01"):
    return Holder.parse((lock_dir / host / "run.holder").read_text())


def test_a_free_host_is_locked_with_who_holds_it_and_released(tmp_path, lock_dir):
    remote = ShellRemote(tmp_path)
    lock = HostLock(remote, "run-1", "foobar-ops apply web").acquire()
    try:
        assert lock.held and lock.stale is None and lock.took_over is None
        holder = holder_in(lock_dir)
        assert (holder.run, holder.command, holder.machine, holder.pid) == (
            "run-1",
            "foobar-ops apply web",
            HERE,
            os.getpid(),
        )
        assert holder.shell == remote.channels[0].proc.pid  # the holding shell's own pid
        assert oct((lock_dir / "web-01" / "run.holder").stat().st_mode & 0o777) == "0o600"
    finally:
        lock.release()
    assert not lock.held and not (lock_dir / "web-01" / "run.holder").exists()
    assert remote.channels[0].proc.returncode == 0


def test_a_secret_in_the_command_never_reaches_the_lock_details_or_a_refusal(tmp_path, lock_dir, monkeypatch):
    from foobar_ops.core.secrets import Secret

    monkeypatch.setenv("FOOBAR_TEST_LOCK_SECRET", "hunter2-Lock-Value")
    value = Secret("env:FOOBAR_TEST_LOCK_SECRET").reveal()  # revealed: known to the masking
    first = HostLock(ShellRemote(tmp_path), "run-1", f"foobar-ops run -- echo {value}").acquire()
    try:
        written = (lock_dir / "web-01" / "run.holder").read_text()
        assert value not in written and holder_in(lock_dir).command.startswith("foobar-ops run -- echo ")
        with pytest.raises(RunLocked) as refused:
            HostLock(ShellRemote(tmp_path), "run-2").acquire()
        assert value not in str(refused.value) and "run-1" in str(refused.value)
    finally:
        first.release()


def test_a_host_locked_by_another_run_refuses_naming_it_then_frees_when_it_ends(tmp_path, lock_dir):
    first = HostLock(ShellRemote(tmp_path), "run-1", "foobar-ops apply web").acquire()
    try:
        with pytest.raises(RunLocked) as refused:
            HostLock(ShellRemote(tmp_path), "run-2").acquire()
        assert refused.value.holder.run == "run-1" and refused.value.holder.pid == os.getpid()
        assert "web-01 is locked by run run-1 (foobar-ops apply web)" in str(refused.value)
    finally:
        first.release()
    second = HostLock(ShellRemote(tmp_path), "run-2").acquire()
    assert holder_in(lock_dir).run == "run-2" and second.stale is None
    second.release()


def test_a_run_may_wait_for_the_lock(tmp_path, lock_dir):
    first = HostLock(ShellRemote(tmp_path), "run-1").acquire()
    threading.Timer(0.5, first.release).start()
    started = time.monotonic()
    second = HostLock(ShellRemote(tmp_path), "run-2", wait=10).acquire()
    assert time.monotonic() - started >= 0.4 and holder_in(lock_dir).run == "run-2"
    second.release()


def held_without_details(lock_dir, host="web-01") -> subprocess.Popen:
    """A run's holding shell caught between taking the lock and writing who it is."""
    where = lock_dir / host
    where.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(["/bin/sh", "-c", f"exec 9>>{where}/run.lock; flock 9; exec sleep 30"])
    deadline = time.monotonic() + 5
    while run_lock_free(lock_dir, host) and time.monotonic() < deadline:
        time.sleep(0.01)
    return proc


def test_a_run_refused_while_the_holder_is_still_writing_its_details_names_it(tmp_path, lock_dir):
    holding = held_without_details(lock_dir)
    info = json.dumps({"run": "run-1", "machine": "ctl-9", "pid": 7, "shell": holding.pid})
    threading.Timer(0.5, lambda: (lock_dir / "web-01" / "run.holder").write_text(info + "\n")).start()
    try:
        with pytest.raises(RunLocked) as refused:
            HostLock(ShellRemote(tmp_path), "run-2").acquire()
        assert refused.value.holder is not None and refused.value.holder.run == "run-1"
        assert "web-01 is locked by run run-1" in str(refused.value)
    finally:
        holding.kill()
        holding.wait()


def test_a_lock_let_go_while_refusing_without_details_is_taken(tmp_path, lock_dir):
    holding = held_without_details(lock_dir)  # a holder that has just removed its details, ending
    threading.Timer(0.5, holding.kill).start()
    started = time.monotonic()
    lock = HostLock(ShellRemote(tmp_path), "run-2").acquire()  # no waiting asked for: it was ending
    try:
        assert 0.4 <= time.monotonic() - started < 3 and holder_in(lock_dir).run == "run-2"
    finally:
        lock.release()
        holding.wait()


def test_a_holder_that_never_writes_its_details_is_still_refused_within_seconds(tmp_path, lock_dir):
    holding = held_without_details(lock_dir)
    started = time.monotonic()
    try:
        with pytest.raises(RunLocked, match="another run \\(it left no details\\)"):
            HostLock(ShellRemote(tmp_path), "run-2").acquire()
        assert time.monotonic() - started < 5
    finally:
        holding.kill()
        holding.wait()


def test_details_left_by_a_run_that_ended_without_removing_them_are_noted(tmp_path, lock_dir):
    (lock_dir / "web-01").mkdir(parents=True)
    (lock_dir / "web-01" / "run.holder").write_text(json.dumps({"run": "run-0", "machine": "ctl-9", "pid": 7}) + "\n")
    lock = HostLock(ShellRemote(tmp_path), "run-1").acquire()
    assert lock.stale == Holder("run-0", machine="ctl-9", pid=7)
    lock.release()


def test_the_lock_of_a_run_whose_process_died_here_is_taken_over(tmp_path, lock_dir, monkeypatch):
    gone = dead_pid()
    dead = HostLock(ShellRemote(tmp_path), "run-0")
    monkeypatch.setattr(
        dead, "_info", lambda: json.dumps({"run": "run-0", "machine": HERE, "machine_id": ME, "pid": gone, "shell": 0})
    )
    dead.acquire()  # its control process died; its shell on the host still holds the lock
    shell = dead._channel.proc
    remote = ShellRemote(tmp_path)
    lock = HostLock(remote, "run-1").acquire()
    try:
        assert lock.took_over is not None and lock.took_over.run == "run-0" and lock.took_over.pid == gone
        assert shell.wait(timeout=5) != 0  # its shell was ended
        assert len(remote.commands) == 1 and f"/proc/{shell.pid}/fd" in remote.commands[0]
        assert holder_in(lock_dir).run == "run-1"
    finally:
        lock.release()
        dead._channel.closed = True


def test_the_lock_of_a_live_run_elsewhere_is_never_taken_over(tmp_path, lock_dir, monkeypatch):
    other = HostLock(ShellRemote(tmp_path), "run-0")
    monkeypatch.setattr(
        other, "_info", lambda: json.dumps({"run": "run-0", "machine": "ctl-9", "pid": dead_pid(), "shell": 0})
    )
    other.acquire()
    try:
        remote = ShellRemote(tmp_path)
        with pytest.raises(RunLocked, match="locked by run run-0"):
            HostLock(remote, "run-1").acquire()
        assert remote.commands == []  # nothing was ended
    finally:
        other.release()


def test_a_live_lock_of_a_clone_with_the_same_hostname_is_never_taken_over(tmp_path, lock_dir, monkeypatch):
    # a cloned control machine (same hostname, another machine id) holds the lock: its pid means
    # nothing here (dead here, alive there), and its holding shell is alive and holds the flock
    clone = "0f" * 16 + "/" + "1" * 8 + "-0000-0000-0000-" + "2" * 12 + "/4026531836"
    other = HostLock(ShellRemote(tmp_path), "run-0")
    info = {"run": "run-0", "machine": HERE, "machine_id": clone, "pid": dead_pid(), "shell": 0}
    monkeypatch.setattr(other, "_info", lambda: json.dumps(info))
    other.acquire()
    try:
        remote = ShellRemote(tmp_path)
        with pytest.raises(RunLocked, match=f"locked by run run-0 .* on {HERE} "):
            HostLock(remote, "run-1").acquire()
        assert remote.commands == []  # its shell was not ended
        assert other._channel.proc.poll() is None and other.held  # still held by the clone's run
        assert holder_in(lock_dir).machine_id == clone
    finally:
        other.release()


def test_the_lock_details_name_this_machine_and_its_process(tmp_path, lock_dir):
    lock = HostLock(ShellRemote(tmp_path), "run-1").acquire()
    try:
        held = holder_in(lock_dir)
        assert (held.machine, held.machine_id, held.pid) == (HERE, ME, os.getpid())
        assert held.pid_start == machine.process_start(os.getpid())
    finally:
        lock.release()


def test_leftovers_of_dead_runs_are_cleaned_while_the_lock_is_held(tmp_path, lock_dir):
    for name in (".foobar-stage-0a1b2c", ".foobar-validate.Xy12"):
        (tmp_path / name).mkdir()
    (tmp_path / "keep-me").mkdir()
    lock = HostLock(ShellRemote(tmp_path), "run-1").acquire()
    lock.release()
    assert lock.cleaned == 2
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("run-")) == ["keep-me"]


def change_left_running(lock_dir, seconds: float, monkeypatch, host="web-01") -> subprocess.Popen:
    """A change of a run that is gone, still running on the host: the engine's own change script
    (engine.wire.apply_section), with the host's folders in the test's."""
    from foobar_ops.core.engine import wire

    where = lock_dir / host
    monkeypatch.setattr(wire, "LOCK_DIR", str(where))
    monkeypatch.setattr(wire, "CHANGES_LOCK", str(where / onhost.CHANGES_LOCK_NAME))
    monkeypatch.setattr(wire, "OUTCOMES", str(where / "outcomes"))
    script = wire.HEAD + wire.apply_section("0a1b", f"sleep {seconds}; echo done >> {where}/change.out")
    proc = subprocess.Popen(["/bin/sh", "-c", script], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 5
    while not (where / "outcomes" / "apply.0a1b.started").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # its flock is taken
    return proc


def run_lock_free(lock_dir, host="web-01") -> bool:
    return subprocess.run(["flock", "-n", str(lock_dir / host / "run.lock"), "true"]).returncode == 0


def test_a_change_that_outlived_its_run_ends_before_the_next_run_takes_the_host(tmp_path, lock_dir, monkeypatch):
    change = change_left_running(lock_dir, 1.0, monkeypatch)
    (tmp_path / ".foobar-stage-0a1b2c").mkdir()  # what that change uses: not cleared under it
    started = time.monotonic()
    lock = HostLock(ShellRemote(tmp_path), "run-2").acquire()
    try:
        assert time.monotonic() - started >= 0.7  # it waited for the change ...
        assert (lock_dir / "web-01" / "change.out").read_text() == "done\n"  # ... to its end
        assert change.wait(timeout=5) == 0 and lock.cleaned == 1
    finally:
        lock.release()


def test_a_change_still_running_after_the_wait_refuses_the_run_and_frees_the_lock(tmp_path, lock_dir, monkeypatch):
    monkeypatch.setattr(runlock, "CHANGE_WAIT", 1)
    change = change_left_running(lock_dir, 4.0, monkeypatch)
    (tmp_path / ".foobar-stage-0a1b2c").mkdir()
    try:
        with pytest.raises(EarlierChangeRunning) as refused:
            HostLock(ShellRemote(tmp_path), "run-2").acquire()
        assert str(refused.value) == (
            "web-01: a change begun by an earlier run is still running after 1 s: this run changed nothing "
            "(see what runs there, and wait or end it)"
        )
        assert isinstance(refused.value, RunLocked)  # the whole run stops, as for a lock held
        assert (tmp_path / ".foobar-stage-0a1b2c").exists()  # nothing was cleared
        assert not (lock_dir / "web-01" / "run.holder").exists() and run_lock_free(lock_dir)  # free again
    finally:
        change.wait()


def test_a_change_running_is_never_a_reason_to_take_over_a_dead_holders_lock(tmp_path, monkeypatch):
    dead = Holder("run-0", machine=HERE, machine_id=ME, pid=2**22 + 7, shell=4321)
    assert dead.is_dead_here()
    lock = HostLock(ShellRemote(tmp_path), "run-2")
    ended = []
    monkeypatch.setattr(
        lock, "_acquire", lambda clean=True: (_ for _ in ()).throw(EarlierChangeRunning("web-01", dead, 60))
    )
    monkeypatch.setattr(lock, "_end_shell", ended.append)
    with pytest.raises(EarlierChangeRunning):
        lock.acquire()
    assert ended == []  # refused at once: not a second wait after ending a shell


def test_a_run_taking_its_lock_again_does_not_wait_for_its_own_change(tmp_path, lock_dir, monkeypatch):
    change = change_left_running(lock_dir, 3.0, monkeypatch)
    try:
        started = time.monotonic()
        lock = HostLock(ShellRemote(tmp_path), "run-1")._acquire(clean=False)
        assert time.monotonic() - started < 2.0 and lock.held  # its outcome is read back later
        lock.release()
    finally:
        change.wait()


def test_the_lock_is_taken_again_after_a_lost_connection_unless_another_run_took_it(tmp_path, lock_dir):
    lock = HostLock(ShellRemote(tmp_path), "run-1").acquire()
    lock._channel.close()  # the connection went, and the lock with it
    other = HostLock(ShellRemote(tmp_path), "run-2").acquire()
    with pytest.raises(ConnectionFailed, match="the connection was lost, and meanwhile web-01 is locked by run run-2"):
        lock.reacquire()
    other.release()
    lock.reacquire()
    assert lock.held and holder_in(lock_dir).run == "run-1"
    lock.release()


def test_a_lock_still_held_by_this_runs_old_connection_is_taken_again(tmp_path, lock_dir):
    lock = HostLock(ShellRemote(tmp_path), "run-1").acquire()
    old = lock._channel
    lock._channel = None  # the link went, but the host has not noticed: its shell still holds the lock
    assert old.proc.poll() is None and not run_lock_free(lock_dir)
    lock.reacquire()
    assert lock.held and lock._channel is not old and holder_in(lock_dir).run == "run-1"
    assert old.proc.wait(timeout=5) is not None  # the old holding shell was ended
    lock.release()
    assert run_lock_free(lock_dir)


def test_a_host_without_a_sudo_password_is_a_sudo_error_at_once(tmp_path, lock_dir):
    remote = SudoRefuses(tmp_path, user="ops")
    remote.host.sudo_password = None
    started = time.monotonic()
    with pytest.raises(SudoError, match="sudo needs a password but the inventory sets no sudo_password"):
        HostLock(remote, "run-1").acquire()
    assert time.monotonic() - started < 1  # not a wait for an answer that cannot come


class SudoRefuses(ShellRemote):
    def open(self):
        class Channel(ShellChannel):
            def exec_command(self, line):
                assert line.startswith("sudo -S -p '' -H -- sh -c ")
                self.proc = SimpleNamespace(poll=lambda: None)
                self.err.extend(b"Sorry, try again.\n")

            def sendall(self, data):
                self.sent = data

            def close(self):
                self.closed = True

        return SimpleNamespace(transport=SimpleNamespace(open_session=lambda timeout: Channel(self.tmp)))


def test_a_sudo_that_refuses_the_password_is_a_sudo_error(tmp_path, lock_dir):
    remote = SudoRefuses(tmp_path, user="ops")
    remote.host.sudo_password = SimpleNamespace(ref="env:SUDO_PW", reveal=lambda: "pw")
    with pytest.raises(SudoError, match="sudo refused the password from env:SUDO_PW"):
        HostLock(remote, "run-1").acquire()


class CutOff(ShellRemote):
    """The connection dies as the lock is asked for: paramiko closes the channel with no end of
    file, and recv() then gives b"" at once, every time."""

    def open(self):
        class Channel(ShellChannel):
            def exec_command(self, line):
                self.proc = SimpleNamespace(poll=lambda: None)

            def recv(self, n):
                self.calls = getattr(self, "calls", 0) + 1
                return b""

            def close(self):
                self.closed = True

        self.channel = Channel(self.tmp)
        return SimpleNamespace(transport=SimpleNamespace(open_session=lambda timeout: self.channel))


def test_a_connection_that_dies_while_the_lock_is_asked_for_ends_the_wait_at_once(tmp_path, lock_dir):
    remote = CutOff(tmp_path)
    started = time.monotonic()
    with pytest.raises(ConnectionFailed, match="web-01: the connection was lost while taking the run lock"):
        HostLock(remote, "run-1", wait=600).acquire()  # unreachable, as a lost host is, not "refused"
    assert time.monotonic() - started < 1 and remote.channel.calls == 1  # not a spin until the time limit


class Unreachable(ShellRemote):
    def open(self):
        raise ConnectionFailed(self.host.name, "No route to host")


def test_locked_takes_the_hosts_in_name_order_and_lets_all_go(tmp_path, lock_dir):
    remotes = [ShellRemote(tmp_path, "web-02"), Unreachable(tmp_path, "web-03"), ShellRemote(tmp_path, "web-01")]
    with locked(remotes, "run-1", "foobar-ops apply web", 0) as held:
        assert list(held) == ["web-01", "web-02", "web-03"]
        assert all(isinstance(held[n], HostLock) and held[n].held for n in ("web-01", "web-02"))
        assert holder_in(lock_dir, "web-02").command == "foobar-ops apply web"
        assert isinstance(held["web-03"], ConnectionFailed)  # kept as that host's outcome
        with pytest.raises(RunLocked):  # held while inside
            HostLock(ShellRemote(tmp_path, "web-01"), "run-2").acquire()
    assert not held["web-01"].held and not held["web-02"].held  # let go at the end
    HostLock(ShellRemote(tmp_path, "web-01"), "run-2").acquire().release()


def test_locked_lets_go_when_a_host_is_held_and_stops_at_it_in_name_order(tmp_path, lock_dir):
    busy = HostLock(ShellRemote(tmp_path, "web-02"), "run-0").acquire()
    later = ShellRemote(tmp_path, "web-03")
    try:
        with locked([later, ShellRemote(tmp_path, "web-02"), ShellRemote(tmp_path, "web-01")], "run-1") as held:
            # every host is tried at once first; web-02 is held, so what was taken is let go and the
            # hosts are taken again in name order, stopping at web-02: web-03 is not tried again
            assert list(held) == ["web-01", "web-02"]
            assert isinstance(held["web-02"], RunLocked) and held["web-02"].holder.run == "run-0"
            assert len(later.channels) == 1
            assert not (lock_dir / "web-03" / "run.holder").exists()  # the first try was let go
        assert not held["web-01"].held
    finally:
        busy.release()


def test_locked_turns_a_surprise_while_locking_into_that_hosts_error(tmp_path, lock_dir):
    class Surprising(ShellRemote):
        def open(self):
            def open_session(timeout):
                raise RuntimeError("surprise")

            return SimpleNamespace(transport=SimpleNamespace(open_session=open_session))

    with locked([Surprising(tmp_path, "web-04"), ShellRemote(tmp_path, "web-05")], "run-1") as held:
        assert type(held["web-04"]) is FoobarOpsError
        assert str(held["web-04"]) == "web-04: cannot take the run lock: RuntimeError: surprise"
        assert held["web-05"].held  # the others are still taken


def outcome_files(tmp_path, host="web-01"):
    folder = tmp_path / "outcomes" / host
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_an_orderly_release_removes_the_runs_change_outcomes_a_lost_connection_keeps_them(tmp_path, lock_dir):
    folder = tmp_path / "outcomes" / "web-01"
    folder.mkdir(parents=True)
    lock = HostLock(ShellRemote(tmp_path), "run-1").acquire()
    (folder / "apply.aa.rc").write_text("0\n")
    lock._channel.close()  # cut: the outcome may still have to be read back
    time.sleep(0.2)
    assert outcome_files(tmp_path) == ["apply.aa.rc"]
    lock.reacquire()  # taken again after the cut: what it is about to read back stays
    assert outcome_files(tmp_path) == ["apply.aa.rc"]
    lock.release()  # done: its outcomes go with the lock
    assert outcome_files(tmp_path) == []
    (folder / "apply.bb.rc").write_text("0\n")  # left by a run that died
    HostLock(ShellRemote(tmp_path), "run-2").acquire().release()
    assert outcome_files(tmp_path) == []


def test_a_process_is_judged_gone_only_when_it_ran_on_this_very_machine():
    started = machine.process_start(os.getpid())
    assert machine.process_gone(ME, dead_pid(), "") is True
    assert machine.process_gone(ME, os.getpid(), started) is False
    assert machine.process_gone(ME, os.getpid(), str(int(started) - 1)) is True  # a reused pid
    # cannot be told from here: another machine (a clone with this hostname), or nothing recorded
    for where, pid in (("0f" * 16 + "/boot/1", dead_pid()), ("", dead_pid()), (None, 5), (ME, None), (ME, 0)):
        assert machine.process_gone(where, pid, "") is None
    assert machine.process_gone(ME, float("nan"), None) is None  # as a DataFrame reads a missing pid


def test_the_command_that_takes_the_lock_also_gathers_the_runs_facts_and_holds_on(tmp_path, lock_dir):
    from foobar_ops.core.engine import wire

    remote = ShellRemote(tmp_path)
    script = wire.HEAD + wire.gather_script(["echo first fact", "echo second; exit 3"], owed=False)
    lock = HostLock(remote, "run-1", opening=script).acquire()
    try:
        assert remote.round_trips == 1 and len(remote.channels) == 1  # one command: the lock and the facts
        text, code = wire.unpacked_output(lock.opened)
        assert code == 0
        assert wire.sections(text) == {"f0": ("first fact\n", 0), "f1": ("second\n", 3)}
        assert lock.held and holder_in(lock_dir).run == "run-1"  # and the lock stays held after
    finally:
        lock.release()
    assert not lock.held


def test_a_lock_taken_again_after_a_cut_gathers_nothing(tmp_path, lock_dir):
    from foobar_ops.core.engine import wire

    remote = ShellRemote(tmp_path)
    lock = HostLock(remote, "run-1", opening=wire.HEAD + wire.gather_script(["echo fact"])).acquire()
    first = lock.opened
    lock._channel.close()  # the connection was cut: the lock went with it
    time.sleep(0.2)
    lock.reacquire()
    try:
        assert lock.held and lock.opened == first and remote.round_trips == 2
    finally:
        lock.release()
