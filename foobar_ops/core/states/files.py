"""File states: file.managed (with validate), file.directory, file.absent, file.symlink, file.line."""

from __future__ import annotations

import difflib
import hashlib
import posixpath
from pathlib import Path
from typing import Any

from ..facts import FETCH_LIMIT, FileFact, FileInfo, LineFact, LineInfo
from ..secrets import Secret, encoded, holds_known
from ..shell import Word, cmd, staged
from ..templating import render
from .base import Plan, State, StateError, norm_mode

BACKUP_DIR = "/var/backups/foobar-ops"
TMP = Word('"$tmp"')  # the candidate's path, chosen on the host (mktemp)
BACKUPS_KEPT = 5


def _meta_commands(
    path: str, info: FileInfo, owner: str | None, group: str | None, mode: str | None
) -> tuple[list[str], dict[str, Any], dict[str, Any]]:
    """Return chown/chmod commands and old/new for ownership and mode differences."""
    commands: list[str] = []
    old: dict[str, Any] = {}
    new: dict[str, Any] = {}
    for key, have, want in (("owner", info.owner, owner), ("group", info.group, group)):
        if want is not None and have != str(want):
            old[key], new[key] = have, str(want)
    if "owner" in new or "group" in new:
        commands.append(cmd("chown", f"{owner or info.owner}:{group or info.group}", path))
    if mode is not None and info.mode != mode:
        old["mode"], new["mode"] = info.mode, mode
        commands.append(cmd("chmod", mode, path))
    return commands, old, new


def _diff(path: str, old: bytes | None, new: bytes) -> str:
    try:
        a = [] if old is None else old.decode().splitlines(keepends=True)
        b = new.decode().splitlines(keepends=True)
    except UnicodeDecodeError:
        return f"Binary content of {path} differs\n"
    lines = difflib.unified_diff(a, b, "/dev/null" if old is None else f"{path} (live)", f"{path} (wanted)")
    return "".join(ln if ln.endswith("\n") else ln + "\n\\ No newline at end of file\n" for ln in lines)


def _holds_secret(value: object) -> bool:
    """Return True when a template context holds a Secret anywhere."""
    if isinstance(value, Secret):
        return True
    if isinstance(value, dict):
        return any(_holds_secret(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds_secret(v) for v in value)
    return False


def _absolute(state: State[Any]) -> None:
    """Refuse a relative path (a file state must never act relative to a working directory)."""
    if not state.name.startswith("/"):
        raise StateError(f"{state.id}: path {state.name!r} must be absolute")


class Managed(State[FileInfo]):
    """file.managed: a file with this content, owner, group and mode.

    path: absolute path on the host.
    content: the content (str or bytes), or
    template: a Jinja2 template: the path of a template file, or the text itself with inline=True,
    context: the template's variables (Secret values are revealed into the file, masked elsewhere).
    owner, group, mode: wanted ownership and mode ("0644").
    validate: a command run on the candidate before it replaces the live file; {} is its path.
    validate_in_context: run validate with the candidate in place of the live file, seen only
        by the validator (a private mount namespace), for tools that read a whole config tree.
    makedirs: create missing parent directories.
    sensitive: never show content in diffs (default: True when the context holds a Secret, since
        the live file may hold an old secret value that no mask knows).
    """

    kind = "file.managed"

    def __init__(
        self,
        path: str,
        content: str | bytes | None = None,
        *,
        template: str | Path | None = None,
        context: dict[str, Any] | None = None,
        inline: bool = False,
        owner: str = "root",
        group: str = "root",
        mode: str | int = "0644",
        validate: str | None = None,
        validate_in_context: bool = False,
        makedirs: bool = False,
        sensitive: bool | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(path, **kw)
        _absolute(self)
        if (content is None) == (template is None):
            raise StateError(f"{self.id}: give exactly one of content= or template=")
        if content is None:
            assert template is not None
            content = render(template, context or {}, inline=inline, where=self.id)
        self.content = encoded(content) if isinstance(content, str) else bytes(content)  # a secret's odd byte too
        self.sha256 = hashlib.sha256(self.content).hexdigest()
        try:
            self.content.decode()
            self.text = True
        except UnicodeDecodeError:
            self.text = False
        if sensitive is None:  # a secret in the context, or a revealed one in the content itself
            sensitive = _holds_secret(context) or holds_known(self.content)
        self.sensitive = sensitive
        self.owner, self.group, self.mode = owner, group, norm_mode(mode)
        self.validate, self.validate_in_context, self.makedirs = validate, validate_in_context, makedirs

    def fact(self) -> FileFact:
        # binary content is compared by hash alone: there is no diff to show
        return FileFact(self.name, self.sha256, FETCH_LIMIT if self.text else 0)

    def plan(self, fact: FileInfo) -> Plan:
        kind = fact.kind
        if kind not in ("file", "absent"):
            return Plan(error=f"{self.name} exists and is a {kind}, not a regular file")
        # a file that holds secrets: its hash is left out of the changes (journaled, shown): a short
        # secret file's sha256 could be guessed offline
        new = {"size": len(self.content)} if self.sensitive else {"sha256": self.sha256, "size": len(self.content)}
        if kind == "absent" and not fact.parent_exists and not self.makedirs:
            return Plan(
                {"old": None, "new": new},
                diff=self._diff(None),
                error=f"parent directory of {self.name} does not exist (add a file.directory state or makedirs=True)",
            )
        if kind == "file" and fact.sha256 == self.sha256:
            commands, old_meta, new_meta = _meta_commands(self.name, fact, self.owner, self.group, self.mode)
            if not commands:
                return Plan(comment=f"{self.name} is in the wanted state")
            return Plan(
                {"old": old_meta, "new": new_meta},
                commands,
                comment=f"{self.name}: ownership/mode {'/'.join(new_meta)} updated",
            )
        if kind == "file" and fact.content is None:  # not fetched: binary, or too large to diff
            why = "binary" if not self.text else f"larger than {FETCH_LIMIT} bytes"
            diff = f"{self.name}: content differs (compared by sha256; {why}, so no diff)\n"
        else:
            diff = self._diff(fact.content if kind == "file" else None)
        was = {"size": fact.size} if self.sensitive else {"size": fact.size, "sha256": fact.sha256}
        changes = {"old": None if kind == "absent" else was, "new": new}
        verb = "created" if kind == "absent" else "updated"
        return Plan(
            changes,
            self._replace_commands(kind == "file"),
            diff,
            f"{self.name} {verb}",
            uploads={"content": self.content},
        )

    def _diff(self, old: bytes | None) -> str:
        """Return the unified diff, or for a sensitive file a line that counts changes only."""
        if not self.sensitive:
            return _diff(self.name, old, self.content)
        a = [] if old is None else old.decode(errors="replace").splitlines()
        b = self.content.decode(errors="replace").splitlines()
        changed = sum(1 for ln in difflib.ndiff(a, b) if ln[:1] in "+-")
        return (
            f"{self.name}: {'new file' if old is None else 'content differs'} ({changed} lines "
            "added or removed); not shown: the file holds secrets\n"
        )

    def _replace_commands(self, exists: bool) -> list[str]:
        """Install the staged content next to the live file under a name of this run's own,
        validate it, back up the live file, rename the candidate over it (atomic)."""
        path, parent = self.name, posixpath.dirname(self.name)
        candidate = posixpath.join(parent, "." + posixpath.basename(path) + ".foobar-new.XXXXXX")
        lines = [cmd("mkdir", "-p", parent)] if self.makedirs else []
        lines.append(f"tmp=$(mktemp {cmd(candidate)}); export tmp")  # unique: two runs never share it
        steps = [cmd("install", "-o", self.owner, "-g", self.group, "-m", self.mode, staged("content"), TMP)]
        steps += _backup_lines(path) if exists else []
        steps.append(cmd("mv", "-f", TMP, path))
        # every step after mktemp takes the candidate with it when it fails: nothing is left behind
        guarded = [f'{{ {step}; }} || {{ rc=$?; rm -f "$tmp"; exit $rc; }}' for step in steps]
        if self.validate:
            guarded.insert(1, self._validate_line())
        return lines + guarded

    def _validate_line(self) -> str:
        """Run the validator on the candidate; on failure remove it and fail with its output (exit 97)."""
        validate = self.validate or "true"
        if self.validate_in_context:
            parent, base = posixpath.dirname(self.name), posixpath.basename(self.name)
            inner = (
                f'd=$(mktemp -d /tmp/.foobar-validate.XXXXXX) || exit 1; cp -a {cmd(parent)}/. "$d"/; '
                f'rm -f "$d"/"$(basename "$tmp")"; cp "$tmp" "$d"/{cmd(base)}; '
                f'mount --bind "$d" {cmd(parent)} || {{ rm -rf "$d"; exit 1; }}; '
                f'{validate.replace("{}", cmd(self.name))}; rc=$?; cd /; umount {cmd(parent)}; rm -rf "$d"; exit $rc'
            )
            check = cmd("unshare", "--mount", "--propagation", "private", "sh", "-c", inner)
        else:
            check = validate.replace("{}", TMP)
        return (
            f'out=$({check} 2>&1) || {{ rc=$?; rm -f "$tmp"; '
            f'printf \'validation failed (exit %s): %s\\n\' "$rc" "$out" >&2; exit 97; }}'
        )


def _backup_lines(path: str) -> list[str]:
    """Keep the previous version under BACKUP_DIR (the newest BACKUPS_KEPT of each file)."""
    stem = BACKUP_DIR + "/" + path.strip("/").replace("/", "%")
    return [
        cmd("mkdir", "-p", "-m", "0700", BACKUP_DIR),
        f"cp -p {cmd(path)} {cmd(stem)}.$(date +%Y%m%dT%H%M%S%N)",
        f"ls -1t {cmd(stem)}.* | tail -n +{BACKUPS_KEPT + 1} | xargs -r -d '\\n' rm -f --",
    ]


class Directory(State[FileInfo]):
    """file.directory: a directory with this owner, group and mode (parents made as needed).

    path: absolute path.
    owner, group, mode: wanted ownership and mode.
    """

    kind = "file.directory"

    def __init__(
        self, path: str, *, owner: str = "root", group: str = "root", mode: str | int = "0755", **kw: Any
    ) -> None:
        super().__init__(path, **kw)
        _absolute(self)
        self.owner, self.group, self.mode = owner, group, norm_mode(mode)

    def fact(self) -> FileFact:
        return FileFact(self.name)

    def plan(self, fact: FileInfo) -> Plan:
        if fact.kind == "absent":
            return Plan(
                {"old": None, "new": {"owner": self.owner, "group": self.group, "mode": self.mode}},
                [cmd("install", "-d", "-o", self.owner, "-g", self.group, "-m", self.mode, self.name)],
                comment=f"directory {self.name} created",
            )
        if fact.kind != "dir":
            return Plan(error=f"{self.name} exists and is a {fact.kind}, not a directory")
        commands, old, new = _meta_commands(self.name, fact, self.owner, self.group, self.mode)
        if not commands:
            return Plan(comment=f"directory {self.name} is in the wanted state")
        return Plan({"old": old, "new": new}, commands, comment=f"directory {self.name} updated")


_PROTECTED = ("/", "/etc", "/usr", "/var", "/home", "/root", "/boot", "/bin", "/sbin", "/lib", "/srv", "/opt")


class Absent(State[FileInfo]):
    """file.absent: nothing at this path.

    path: absolute path (a file, link or directory tree is removed).
    """

    kind = "file.absent"

    def __init__(self, path: str, **kw: Any) -> None:
        super().__init__(path, **kw)
        _absolute(self)

    def fact(self) -> FileFact:
        return FileFact(self.name)

    def plan(self, fact: FileInfo) -> Plan:
        if fact.kind == "absent":
            return Plan(comment=f"{self.name} is absent")
        if "/" + posixpath.normpath(self.name).lstrip("/") in _PROTECTED:
            return Plan(error=f"refusing to remove {self.name}")
        return Plan(
            {"old": fact.kind, "new": None}, [cmd("rm", "-rf", "--", self.name)], comment=f"{self.name} removed"
        )


class Symlink(State[FileInfo]):
    """file.symlink: a symbolic link at path pointing at target, replaced atomically.

    path: the link.
    target: what it points at.
    force: replace a regular file in the way (a directory is never replaced).
    """

    kind = "file.symlink"

    def __init__(self, path: str, target: str, *, force: bool = False, **kw: Any) -> None:
        super().__init__(path, **kw)
        _absolute(self)
        self.target, self.force = str(target), force

    def fact(self) -> FileFact:
        return FileFact(self.name)

    def plan(self, fact: FileInfo) -> Plan:
        kind = fact.kind
        if kind == "link" and fact.target == self.target:
            return Plan(comment=f"{self.name} -> {self.target}")
        if kind == "dir" or (kind in ("file", "other") and not self.force):
            return Plan(error=f"{self.name} exists and is a {kind}; not replacing it with a link")
        link = self.name.rstrip("/")
        hidden = posixpath.join(posixpath.dirname(link), "." + posixpath.basename(link) + ".foobar-link.")
        tmp = Word(cmd(hidden) + "$$")  # this script's own name, hidden from `include dir/*`
        old = fact.target if kind == "link" else (kind if kind != "absent" else None)
        return Plan(
            {"old": old, "new": self.target},
            [
                cmd("ln", "-sfn", self.target, tmp),
                f"{{ {cmd('mv', '-Tf', tmp, self.name)}; }} || {{ rc=$?; rm -f {tmp}; exit $rc; }}",
            ],
            comment=f"{self.name} now points at {self.target}",
        )


class Line(State[LineInfo]):
    """file.line: this exact line is present in a file (appended when missing).

    path: the file (must exist).
    line: the line, without newline.
    """

    kind = "file.line"

    def __init__(self, path: str, line: str, **kw: Any) -> None:
        super().__init__(path, id=kw.pop("id", None) or f"file.line:{path}:{line}", **kw)
        _absolute(self)
        if "\n" in line:
            raise StateError(f"{self.id}: line must not contain a newline")
        self.line = line

    def fact(self) -> LineFact:
        return LineFact(self.name, self.line)

    def plan(self, fact: LineInfo) -> Plan:
        if not fact.exists:
            return Plan(error=f"{self.name} does not exist")
        if fact.present:
            return Plan(comment=f"line present in {self.name}")
        prefix = "" if fact.ends_with_newline else "\n"
        return Plan(
            {"old": None, "new": self.line},
            [f"printf '%s%s\\n' {cmd(prefix)} {cmd(self.line)} >> {cmd(self.name)}"],
            diff=f"--- {self.name} (live)\n+++ {self.name} (wanted)\n@@ end @@\n+{self.line}\n",
            comment=f"line added to {self.name}",
        )
