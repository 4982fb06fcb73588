"""A fake ssh.Remote for the engine, and the fact answers it gives, as a host would print them.

The fake never runs a script. It reads the `@@FBO` sections the engine wrote (see
engine.host.section), answers every fact section with what the test chose for that state's fact
command, and answers `apply` and `react` sections with a chosen output and exit code, printing
exactly what section()'s printf lines would print.

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
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from foobar_ops.core.engine.host import section
from foobar_ops.core.errors import ConnectionFailed
from foobar_ops.core.facts import Fact, FileFact

# A section as section() writes it: printf BEGIN, ( body ) with stdout+stderr, printf END.
SECTION_IN_SCRIPT = re.compile(
    r"printf '\\n@@FBO %s BEGIN\\n' (\S+)\n\( (.*?)\n\) 2>&1 </dev/null\n"
    r"printf '\\n@@FBO %s END %d\\n' \1 \$\?\n",
    re.S,
)


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

    def open(self, path: str, mode: str) -> FakeFile:
        assert mode == "wb"
        return FakeFile(self.remote, path)


class FakeRemote:
    """Stands for ssh.Remote: answers the engine's scripts from canned facts.

    facts: {state: answer} -- a fact section is answered by the answer of the state whose fact
        command it runs.
    apply, react: (output, exit code) for `apply` and `react` sections.
    breaks_at: the call to run() (1 is the first) from which the host stops answering: that call
        and every later one (and opening a connection) raise `breaks_with`.
    breaks_with: what a broken host raises (default: ConnectionFailed, connection reset).
    upload_error: raised while a staged file is written over SFTP.
    log: a list shared by several fakes: (host, body) of every apply section, in order.
    """

    def __init__(
        self,
        facts: dict[Any, AnswerLike] | None = None,
        *,
        apply: tuple[str, int] = ("", 0),
        react: tuple[str, int] = ("", 0),
        breaks_at: int | None = None,
        breaks_with: Exception | None = None,
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

    @property
    def down(self) -> bool:
        return self.breaks_at is not None and self.calls >= self.breaks_at

    # --- what the engine calls ---
    def run(self, command: str, sudo: bool = False) -> FakeOutcome:
        self.calls += 1
        if self.down:
            raise self.breaks_with
        self.round_trips += 1
        self.sudo.append(sudo)
        script = unpacked(command)
        self.scripts.append(script)
        if self.broken:
            return self.broken
        found = SECTION_IN_SCRIPT.findall(script)
        assert "".join(section(tag, body) for tag, body in found) == script, "unparsed script text"
        return FakeOutcome("".join(self.answer(tag, body) for tag, body in found))

    def answer(self, tag: str, body: str) -> str:
        if tag == "apply":
            self.log.append((self.host, body))
            return printed(tag, *self.apply)
        if tag == "react":
            return printed(tag, *self.react)
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

    def open(self) -> SimpleNamespace:
        if self.down:
            raise self.breaks_with
        return SimpleNamespace(sftp=lambda: FakeSFTP(self))

    def close(self) -> None:
        self.closed += 1

    # --- what the tests look at ---
    def tags(self, script: str) -> list[str]:
        return [tag for tag, _ in SECTION_IN_SCRIPT.findall(script)]

    def bodies(self, tag: str) -> list[str]:
        return [body for script in self.scripts for t, body in SECTION_IN_SCRIPT.findall(script) if t == tag]


def unpacked(command: str) -> str:
    """Return the script a command line from engine.packed() runs (plain `sh -c` or gzipped)."""
    args = shlex.split(command)
    assert args[:2] == ["sh", "-c"] and len(args) == 3, command
    m = re.fullmatch(r"echo ([A-Za-z0-9+/=]+) \| base64 -d \| gzip -dc \| sh", args[2])
    if m:
        return gzip.decompress(base64.b64decode(m.group(1))).decode()
    return args[2]
