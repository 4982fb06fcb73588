"""A fake ssh.Remote for the engine, and the fact answers it gives, as a host would print them.

The fake never runs a script. It reads the `@@FBO` sections the engine wrote (see
engine.host.section and engine.host.apply_section), answers every fact section with what the test
chose for that state's fact command, and answers `apply` and `react` sections with a chosen output
and exit code, printing exactly what the scripts' printf lines would print. It keeps what a host
keeps between scripts (a change's outcome until it is acknowledged, owed-reload markers), and can
cut one call's connection while later ones are answered again.

An answer is the fact command's output (text), `Answer(text, code)` for a command that exits
non-zero, MISSING for a section that never comes back, or a function of the Fact (a host's answer
that depends on what was asked, such as a file's content only when its hash differs).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import re
import shlex
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from foobar_ops.core.engine.host import is_packed, section
from foobar_ops.core.errors import ConnectionFailed, FoobarOpsError
from foobar_ops.core.facts import Fact, FileFact
from foobar_ops.core.runlock import HostLock

# A section as section() writes it: printf BEGIN, ( body ) with stdout+stderr, printf END.
SECTION_IN_SCRIPT = re.compile(
    r"printf '\\n@@FBO %s BEGIN\\n' (\S+)\n\( (.*?)\n\) 2>&1 </dev/null\n"
    r"printf '\\n@@FBO %s END %d\\n' \1 \$\?\n",
    re.S,
)
#: every script starts so: it survives a cut connection; then removes the outcomes already read
HEAD = "trap '' HUP PIPE\n"
OUT = r"/var/lib/foobar-ops/outcomes"
ACKS = re.compile(r"rm -f ((?:" + OUT + r"/apply\.[0-9a-f]+\.\* ?)+)\n")
#: a change (engine.host.apply_section): marked as begun, run holding the changes lock (shared),
#: its output and exit code kept on the host in files named by one token, then printed in the
#: usual framing
APPLY_IN_SCRIPT = re.compile(
    r"printf '\\n@@FBO %s BEGIN\\n' apply\nmkdir -p -m 0700 " + OUT + r" /run/foobar-ops; "
    r"echo \$\$ >" + OUT + r"/apply\.(?P<token>[0-9a-f]+)\.started\n"
    r"\( flock -s 8; \( (?P<body>.*?)\n\) 8>&-; rc=\$\?; exit \$rc \) 8>>/run/foobar-ops/changes\.lock "
    r">" + OUT + r"/apply\.(?P=token)\.out 2>&1 </dev/null; "
    r"echo \$\? >" + OUT + r"/apply\.(?P=token)\.rc\.new; "
    r"mv -f " + OUT + r"/apply\.(?P=token)\.rc\.new " + OUT + r"/apply\.(?P=token)\.rc\n"
    r"cat " + OUT + r"/apply\.(?P=token)\.out\n"
    r"printf '\\n@@FBO %s END %d\\n' apply \"\$\(cat " + OUT + r"/apply\.(?P=token)\.rc\)\"\n",
    re.S,
)
#: reading back a change's outcome after the connection was cut: NOT-STARTED when it never began,
#: else wait (while its shell lives) for its exit code, then print it (rc) and its output (out)
READ_BACK = re.compile(
    r"\[ -f " + OUT + r"/apply\.(?P<token>[0-9a-f]+)\.started \] \|\| \{ echo NOT-STARTED; exit 0; \}\n"
    r"p=\$\(cat " + OUT + r"/apply\.(?P=token)\.started\); i=0\n"
    r"while \[ ! -f " + OUT + r"/apply\.(?P=token)\.rc \] && \[ \$i -lt \d+ \] && kill -0 \"\$p\" 2>/dev/null; "
    r"do sleep 1; i=\$\(\(i\+1\)\); done\n"
    r"\[ -f " + OUT + r"/apply\.(?P=token)\.rc \] \|\| ! kill -0 \"\$p\" 2>/dev/null \|\| "
    r"echo \"STILL-RUNNING \$p \$i\"\nsleep 0\.2\n"
)
#: what an apply body does to the owed-reload markers (engine.host.owed_marker)
OWED_DIR = "/var/lib/foobar-ops/owed"
OWE = re.compile(r"^mkdir -p /var/lib/foobar-ops/owed; touch ((?:/var/lib/foobar-ops/owed/[0-9a-f]+ ?)+)$", re.M)
PAY = re.compile(r"^rm -f /var/lib/foobar-ops/owed/([0-9a-f]+)$", re.M)


@dataclass
class Parsed:
    """An engine script, split: its (tag, body) parts in order, the outcome tokens it acknowledges,
    the token of the change it reads back (if it does), and the token of its change (if any)."""

    parts: list[tuple[str, str]]
    acks: list[str]
    reading: str | None
    token: str | None


def parse(script: str) -> Parsed:
    """Split an engine script into its parts; asserts nothing is left unparsed."""
    assert script.startswith(HEAD), script[:80]
    rest = script[len(HEAD) :]
    acks: list[str] = []
    m = ACKS.match(rest)
    if m:
        files = m.group(1).split()
        acks = sorted({re.search(r"apply\.([0-9a-f]+)\.", f).group(1) for f in files})
        assert sorted(files) == sorted(f"{OUT}/apply.{t}.*" for t in acks)
        rest = rest[m.end() :]
    parts: list[tuple[str, str]] = []
    reading = token = None
    m = READ_BACK.match(rest)
    if m:
        reading, rest = m.group("token"), rest[m.end() :]
    m = APPLY_IN_SCRIPT.match(rest)
    if m:
        parts.append(("apply", m.group("body")))
        token, rest = m.group("token"), rest[m.end() :]
    found = SECTION_IN_SCRIPT.findall(rest)
    assert "".join(section(tag, body) for tag, body in found) == rest, "unparsed script text"
    return Parsed(parts + found, acks, reading, token)


def printed(tag: str, output: str, code: int) -> str:
    """What a section prints: the two printf lines around the body's output."""
    return f"\n@@FBO {tag} BEGIN\n{output}\n@@FBO {tag} END {code}\n"


@dataclass(frozen=True)
class Answer:
    """A fact command's output and exit code."""

    output: str
    code: int = 0


MISSING = object()  # the section never comes back (the script was cut short)

AnswerLike = str | Answer | Callable[[Fact[Any]], str] | object


# ---- what the fact commands print (see core/facts.py) -----------------------------------------


def a_file(
    content: bytes, *, owner: str = "root", group: str = "root", mode: str = "0644", parent: bool = True
) -> Callable[[FileFact], str]:
    """A regular file, as FileFact's command prints it: the stat line, the sha256 when asked, and
    the content (base64) only when its hash differs from the wanted one and it may be fetched."""

    def answer(fact: FileFact) -> str:
        lines = ["type=file", f"owner={owner} group={group} mode={mode} size={len(content)}"]
        if fact.want_sha256 is not None:
            sha = hashlib.sha256(content).hexdigest()
            lines.append(f"sha256={sha}")
            if fact.fetch_limit and sha != fact.want_sha256 and len(content) <= fact.fetch_limit:
                lines.append("content=" + base64.b64encode(content).decode())
        return "\n".join(lines + [f"parent={'yes' if parent else 'no'}"]) + "\n"

    return answer


def a_dir(owner: str = "root", group: str = "root", mode: str = "0755") -> str:
    """A directory, as FileFact's command prints it."""
    return f"type=dir\nowner={owner} group={group} mode={mode} size=4096\nparent=yes\n"


def nothing_at(parent: bool = True) -> str:
    """Nothing at the path, as FileFact's command prints it."""
    return f"type=absent\nparent={'yes' if parent else 'no'}\n"


def packages(**versions: str) -> str:
    """Installed packages, as PackagesFact's dpkg-query prints them (none: empty output)."""
    return "".join(f"pkg={name} status=ii  version={v}\n" for name, v in versions.items())


def unit(active: str = "active", enabled: str = "enabled", can_reload: str = "yes", load: str = "loaded") -> str:
    """A systemd unit, as ServiceFact's `systemctl show` prints it (joined on one line)."""
    return f"LoadState={load} ActiveState={active} UnitFileState={enabled} CanReload={can_reload} \n"


def guards(**held: bool) -> str:
    """The outcome of a command's guards, as GuardsFact prints them: guards(unless=False)."""
    return "".join(f"{name}={'yes' if ok else 'no'}\n" for name, ok in held.items())


# ---- the fake remote --------------------------------------------------------------------------


@dataclass
class FakeOutcome:
    stdout: str
    stderr: str = ""
    exit_code: int | None = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.error is None


class FakeFile:
    def __init__(self, remote: "FakeRemote", path: str) -> None:
        self.remote, self.path = remote, path

    def __enter__(self) -> "FakeFile":
        return self

    def __exit__(self, *exc: object) -> bool:
        return False

    def chmod(self, mode: int) -> None:
        self.remote.modes[self.path] = mode

    def write(self, data: bytes) -> None:
        if self.remote.upload_error is not None:
            raise self.remote.upload_error
        self.remote.uploads[self.path] = self.remote.uploads.get(self.path, b"") + bytes(data)


class FakeSFTP:
    def __init__(self, remote: "FakeRemote") -> None:
        self.remote = remote

    def mkdir(self, path: str, mode: int) -> None:
        self.remote.modes[path] = mode

    def stat(self, path: str) -> SimpleNamespace:
        return SimpleNamespace(st_mode=self.remote.modes[path])

    def open(self, path: str, mode: str) -> FakeFile:
        assert mode == "wbx"  # a new file, never one that exists
        return FakeFile(self.remote, path)


class FakeRemote:
    """Stands for ssh.Remote: answers the engine's scripts from canned facts.

    facts: {state: answer} -- a fact section is answered by the answer of the state whose fact
        command it runs.
    apply, react: (output, exit code) for `apply` and `react` sections.
    breaks_at: the call to run() (1 is the first) from which the host stops answering: that call
        and every later one (and opening a connection) raise `breaks_with`; the host never sees
        those scripts.
    breaks_with: what a broken host raises (default: ConnectionFailed, connection reset).
    cut_calls: calls to run() whose connection is cut after the host got the script: the host runs
        it (a change runs to its end, its outcome kept), the caller gets ConnectionFailed; later
        calls are answered again.
    after_cut: called with the fake when a cut comes, to change what the host keeps (e.g. a
        reboot that loses the outcomes, a change that goes on past the read-back's wait).
    upload_error: raised while a staged file is written over SFTP.
    log: a list shared by several fakes: (host, body) of every apply section, in order.

    What the host keeps between calls (as its files would): `kept`, the outcome of every change
    (token -> (output, exit code)) until the engine acknowledges it; `owed`, the names of the
    owed-reload markers (a change that succeeds touches those its body names, a react or apply
    that succeeds removes the one it names).
    """

    def __init__(
        self,
        facts: dict[Any, AnswerLike] | None = None,
        *,
        apply: tuple[str, int] = ("", 0),
        react: tuple[str, int] = ("", 0),
        breaks_at: int | None = None,
        breaks_with: Exception | None = None,
        cut_calls: set[int] | None = None,
        after_cut: Callable[["FakeRemote"], None] | None = None,
        upload_error: Exception | None = None,
        host: str = "web-01",
        log: list[tuple[str, str]] | None = None,
    ) -> None:
        self.answers: dict[str, tuple[Fact[Any], AnswerLike]] = {}
        for st, answer in (facts or {}).items():
            fact = st.fact()
            self.answers[fact.command()] = (fact, answer)
        self.apply, self.react = apply, react
        self.breaks_at = breaks_at
        self.breaks_with = breaks_with or ConnectionFailed(host, "Connection reset by peer")
        self.cut_calls = set(cut_calls or ())
        self.after_cut = after_cut
        self.upload_error = upload_error
        self.host, self.log = host, log if log is not None else []
        self.round_trips = 0
        self.calls = 0
        self.scripts: list[str] = []
        self.sudo: list[bool] = []
        self.uploads: dict[str, bytes] = {}
        self.modes: dict[str, int] = {}
        self.closed = 0
        self.broken: FakeOutcome | None = None  # the whole script's outcome, sections or not
        self.owed: list[str] = []  # names of owed-reload markers on the host
        self.acks: list[str] = []  # outcome tokens the engine said it had read
        self.kept: dict[str, tuple[str, int]] = {}  # token -> what a change left on the host
        self.started: set[str] = set()  # tokens of the changes that began on the host
        self.read_back: list[str] = []  # tokens whose outcome was asked for after a cut
        self.running: set[str] = set()  # tokens of changes still running when read back (pid 4242)
        self.relock = None
        self.ssh_bytes = None  # not measured
        self.read_answers: dict[str, str] = {}  # a hook's read command -> what the host prints
        self.reads_asked: list[str] = []

    @property
    def down(self) -> bool:
        return self.breaks_at is not None and self.calls >= self.breaks_at

    # --- what the engine calls ---
    def run(self, command: str, sudo: bool = False, mask: bool = True, timeout: float | None = None) -> FakeOutcome:
        out = self._call(unpacked(command), sudo)
        return packed_output(out) if is_packed(command) else out

    def opening(self, script: str) -> str:
        """The opening gather, run by the holding shell of the run lock (one more call, like run()):
        what comes back on the lock's channel, packed; a host that is down or cut raises."""
        return packed_output(self._call(script, False)).stdout

    def _call(self, script: str, sudo: bool) -> FakeOutcome:
        """One command on the host: counted; refused when the host is down; answered; cut after
        the host ran it when the test says so."""
        self.calls += 1
        if self.down:
            raise self.breaks_with
        self.round_trips += 1
        self.sudo.append(sudo)
        self.scripts.append(script)
        out = self._answer(script)
        if self.calls in self.cut_calls:
            if self.after_cut is not None:
                self.after_cut(self)
            raise ConnectionFailed(self.host, "Connection reset by peer")
        return out

    def _answer(self, script: str) -> FakeOutcome:
        if self.broken:
            return self.broken
        parsed = parse(script)
        for token in parsed.acks:
            self.acks.append(token)
            self.kept.pop(token, None)  # the host removes the files
        if parsed.reading is not None:
            out = self._read_back(parsed)
        else:
            out = FakeOutcome("".join(self.answer(tag, body, parsed.token) for tag, body in parsed.parts))
        return out

    def _read_back(self, parsed: Parsed) -> FakeOutcome:
        token = parsed.reading
        assert token is not None
        files = f"{OUT}/apply.{token}"
        assert parsed.parts == [("rc", f"cat {files}.rc"), ("out", f"cat {files}.out")], parsed.parts
        self.read_back.append(token)
        if token not in self.started:  # the cut came before the change began
            return FakeOutcome("NOT-STARTED\n")
        kept = self.kept.get(token)
        if token in self.running:  # it outlasted the wait: no exit code yet, no output to speak of
            return FakeOutcome(
                "STILL-RUNNING 4242 600\n"
                + printed("rc", f"cat: {files}.rc: No such file or directory", 1)
                + printed("out", "", 0)
            )
        if kept is None:
            return FakeOutcome(
                printed("rc", f"cat: {files}.rc: No such file or directory", 1)
                + printed("out", f"cat: {files}.out: No such file or directory", 1)
            )
        return FakeOutcome(printed("rc", f"{kept[1]}\n", 0) + printed("out", kept[0], 0))

    def answer(self, tag: str, body: str, token: str | None = None) -> str:
        if tag == "apply":
            assert token is not None
            self.log.append((self.host, body))
            self.started.add(token)
            self.kept[token] = self.apply
            if self.apply[1] == 0:
                self._markers(body)
            return printed(tag, *self.apply)
        if tag == "owed":
            assert body == f"ls -1 {OWED_DIR} 2>/dev/null; true", body
            return printed(tag, "".join(f"{name}\n" for name in self.owed), 0)
        if tag == "react":
            if self.react[1] == 0:
                self._markers(body)
            return printed(tag, *self.react)
        if re.fullmatch(r"r\d+", tag):  # what a phase's hook reads (Phase.reads): nothing to say by default
            self.reads_asked.append(body)
            return printed(tag, self.read_answers.get(body, ""), 0)
        assert re.fullmatch(r"f\d+", tag), tag
        assert body in self.answers, f"no answer for fact command {body!r}"
        fact, answer = self.answers[body]
        if answer is MISSING:
            return ""
        if callable(answer):
            answer = answer(fact)
        if isinstance(answer, Answer):
            return printed(tag, answer.output, answer.code)
        assert isinstance(answer, str), answer
        return printed(tag, answer, 0)

    def _markers(self, body: str) -> None:
        """What a body that ran to its end did to the owed-reload markers."""
        for m in OWE.finditer(body):
            for path in m.group(1).split():
                name = path.rsplit("/", 1)[1]
                if name not in self.owed:
                    self.owed.append(name)
        for m in PAY.finditer(body):
            if m.group(1) in self.owed:
                self.owed.remove(m.group(1))

    def open(self) -> SimpleNamespace:
        if self.down:
            raise self.breaks_with
        return SimpleNamespace(sftp=lambda: FakeSFTP(self))

    def close(self) -> None:
        self.closed += 1

    # --- what the tests look at ---
    @property
    def changed_nothing(self) -> bool:
        """No script sent here carried a change (the run's opening gather of facts at most)."""
        return all("apply" not in self.tags(script) and "react" not in self.tags(script) for script in self.scripts)

    def tags(self, script: str) -> list[str]:
        return [tag for tag, _ in parse(script).parts]

    def bodies(self, tag: str) -> list[str]:
        return [body for script in self.scripts for t, body in parse(script).parts if t == tag]


def packed_output(out: FakeOutcome) -> FakeOutcome:
    """What a packed script's output looks like on the wire: its exit status appended, gzipped,
    then base64 on one line (the command itself exits 0); a command that timed out or was cut
    short sends no exit status."""
    ended = out.error is None or out.error.startswith("exit code")
    text = out.stdout + (f"\n@@FBO-EXIT {out.exit_code or 0}\n" if ended else "")
    wire = base64.b64encode(gzip.compress(text.encode(), 1)).decode()
    return FakeOutcome(wire, out.stderr, 0, None) if ended else FakeOutcome(wire, out.stderr, out.exit_code, out.error)


def unpacked(command: str) -> str:
    """Return the script a command line from engine.packed() runs (plain `sh -c` or gzipped)."""
    args = shlex.split(command)
    assert args[:2] == ["sh", "-c"] and len(args) == 3, command
    m = re.fullmatch(
        r"echo ([A-Za-z0-9+/=]+) \| base64 -d \| gzip -dc \| "
        r"\{ sh; printf '\\n@@FBO-EXIT %d\\n' \$\?; \} \| gzip -1 \| base64 -w 0",
        args[2],
    )
    if m:
        return gzip.decompress(base64.b64decode(m.group(1))).decode()
    return args[2]


# ---- the run locks (core.runlock.locked, as engine.phases uses it) -----------------------------


class FakeHostLock(HostLock):
    """A runlock.HostLock held on one host without SSH: counts its releases and re-takes."""

    def __init__(self, remote: Any, run_id: str, command: str = "", wait: float = 0.0, **notes: Any) -> None:
        super().__init__(remote, run_id, command, wait, stale=notes.get("stale"), took_over=notes.get("took_over"))
        self.released = 0
        self.reacquired = 0

    @property
    def host(self) -> str:
        return str(getattr(self.remote.host, "name", self.remote.host))

    def acquire(self) -> "FakeHostLock":
        return self

    def reacquire(self) -> None:
        self.reacquired += 1

    def release(self) -> None:
        self.released += 1


class RunLocks:
    """Stands for runlock.locked in engine.phases (see the run_locks fixture): takes every host's
    lock at once, or gives the error set for it in `refuse`, and records what was asked.

    refuse: host -> the error its lock gives (RunLocked, ConnectionFailed, SudoError, ...).
    notes: host -> {"stale": Holder} or {"took_over": Holder}: a lock a dead run had held.
    calls: (hosts in the order given, run id, command, wait) of every use.
    held: host -> FakeHostLock of every lock handed out; `open` counts locks not yet let go.
    """

    def __init__(self) -> None:
        self.refuse: dict[str, BaseException] = {}
        self.notes: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[list[str], str, str, float]] = []
        self.held: dict[str, FakeHostLock] = {}
        self.openings: list[dict[str, str]] = []  # host -> the opening gather script, per use
        self.open = 0

    @property
    def hosts(self) -> list[str]:
        """The hosts locked (or tried) by the only run that took locks."""
        assert len(self.calls) == 1, self.calls
        return self.calls[0][0]

    @contextmanager
    def locked(
        self,
        remotes: Any,
        run_id: str,
        command: str = "",
        wait: float = 0.0,
        opening: dict[str, str] | None = None,
        parallel: int = 10,
    ) -> Iterator[dict[str, Any]]:
        remotes = list(remotes)
        names = [str(getattr(r.host, "name", r.host)) for r in remotes]
        self.calls.append((names, run_id, command, wait))
        self.openings.append(dict(opening or {}))
        out: dict[str, Any] = {}
        for name, remote in zip(names, remotes, strict=True):
            if name in self.refuse:
                out[name] = self.refuse[name]
                continue
            lock = FakeHostLock(remote, run_id, command, wait, **self.notes.get(name, {}))
            script = (opening or {}).get(name)
            if script is not None and hasattr(remote, "opening"):
                try:  # the holding shell gathers the run's facts once the lock is held
                    lock.opened = remote.opening(script)
                except FoobarOpsError as err:  # unreachable, or sudo refused: that host's outcome
                    out[name] = err
                    continue
                except Exception as err:  # noqa: BLE001 - a surprise: as core.runlock.locked reports it
                    out[name] = FoobarOpsError(f"{name}: cannot take the run lock: {type(err).__name__}: {err}")
                    continue
            out[name] = self.held[name] = lock
        self.open += 1
        try:
            yield out
        finally:
            self.open -= 1
            for lock in out.values():
                if isinstance(lock, FakeHostLock):
                    lock.release()
