"""Facts: what a host is like, each a shell command plus a pure parser that returns a typed value.

A state names the fact it needs; the engine runs every state's fact command in one SSH round trip
and hands each state the parsed value. A parser never guesses: output it cannot read raises
FactError (a missing fact is an error, never "absent"). Large content is compared by hash on the
host: a file's content comes back only when its hash differs from the wanted one.
"""

from __future__ import annotations

import base64
import posixpath
import re
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from .errors import FactError
from .shell import cmd

T = TypeVar("T")

#: Files up to this size come back whole when they differ from the wanted content (for a diff).
FETCH_LIMIT = 256 * 1024


class Fact(Generic[T]):
    """A command run as root whose output parse() turns into a typed value (pure, no host needed)."""

    def command(self) -> str:
        """Return the shell snippet whose output is this fact."""
        raise NotImplementedError

    def parse(self, output: str) -> T:
        """Return the typed value of the command's output; raise FactError when it cannot be read.

        output: what command() printed (stdout and stderr).
        """
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<fact {type(self).__name__}>"


def keyvals(output: str, whole: tuple[str, ...] = ()) -> dict[str, str]:
    """Parse `key=value` pairs, several per line separated by spaces.

    output: the text.
    whole: keys whose value is the rest of the line (it may hold spaces).
    """
    out: dict[str, str] = {}
    for line in output.splitlines():
        key, sep, rest = line.partition("=")
        if sep and key in whole:
            out[key] = rest
            continue
        for token in line.split():
            key, sep, value = token.partition("=")
            if sep:
                out[key] = value
    return out


def _need(values: dict[str, str], keys: tuple[str, ...], fact: str, output: str) -> None:
    missing = [k for k in keys if k not in values]
    if missing:
        raise FactError(f"{fact}: cannot read {', '.join(missing)} from {output.strip()[-300:]!r}")


# ---- files ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileInfo:
    """What is at a path.

    kind: file, dir, link, other or absent.
    owner, group, mode: for files and directories ("0644").
    size, sha256: for regular files (sha256 only when the fact hashes).
    content: the file's bytes, only when fetched (it differed from the wanted content).
    target: for links.
    parent_exists: whether the parent directory exists.
    """

    kind: str
    owner: str | None = None
    group: str | None = None
    mode: str | None = None
    size: int | None = None
    sha256: str | None = None
    content: bytes | None = None
    target: str | None = None
    parent_exists: bool = True


class FileFact(Fact[FileInfo]):
    """What is at a path: its kind, ownership, mode; for a file its size and hash, and its content
    when that differs from the wanted hash and is at most fetch_limit bytes.

    path: absolute path.
    want_sha256: the wanted content's hash (None: do not hash, do not fetch).
    fetch_limit: largest content fetched for a diff (0: never fetch).
    """

    def __init__(self, path: str, want_sha256: str | None = None, fetch_limit: int = FETCH_LIMIT) -> None:
        self.path, self.want_sha256, self.fetch_limit = path, want_sha256, fetch_limit

    def command(self) -> str:
        p = cmd(self.path)
        stat = f"stat -c 'owner=%U group=%G mode=%04a size=%s' {p}"
        body = stat
        if self.want_sha256 is not None:
            body += f"; h=$(sha256sum < {p}); h=${{h%% *}}; echo sha256=$h"
            if self.fetch_limit:
                body += (
                    f'; if [ "$h" != {self.want_sha256} ] && [ $(stat -c %s {p}) -le {self.fetch_limit} ];'
                    f" then printf 'content='; base64 -w0 {p}; echo; fi"
                )
        parent = cmd(posixpath.dirname(self.path) or "/")
        return (
            f"if [ -L {p} ]; then echo type=link; printf 'target='; readlink {p}; "
            f"elif [ -f {p} ]; then echo type=file; {body}; "
            f"elif [ -d {p} ]; then echo type=dir; {stat}; "
            f"elif [ -e {p} ]; then echo type=other; else echo type=absent; fi; "
            f"[ -d {parent} ] && echo parent=yes || echo parent=no"
        )

    def parse(self, output: str) -> FileInfo:
        f = keyvals(output, whole=("target", "content"))
        _need(f, ("type", "parent"), f"file {self.path}", output)
        kind, parent = f["type"], f["parent"] == "yes"
        if kind == "link":
            return FileInfo("link", target=f.get("target", ""), parent_exists=parent)
        if kind in ("absent", "other"):
            return FileInfo(kind, parent_exists=parent)
        if kind not in ("file", "dir"):
            raise FactError(f"file {self.path}: unknown kind {kind!r}")
        _need(f, ("owner", "group", "mode"), f"file {self.path}", output)
        content = None
        if "content" in f:
            try:
                content = base64.b64decode(f["content"], validate=True)
            except ValueError:
                raise FactError(f"file {self.path}: its content did not come back as base64") from None
        if kind == "file" and self.want_sha256 is not None:
            _need(f, ("sha256", "size"), f"file {self.path}", output)
        return FileInfo(
            kind,
            f["owner"],
            f["group"],
            f["mode"],
            int(f["size"]) if "size" in f else None,
            f.get("sha256"),
            content,
            parent_exists=parent,
        )


@dataclass(frozen=True)
class LineInfo:
    """Whether a file holds a line.

    exists: the file exists.
    present: the exact line is in it.
    ends_with_newline: the file is empty or ends with a newline.
    """

    exists: bool
    present: bool = False
    ends_with_newline: bool = True


class LineFact(Fact[LineInfo]):
    """Whether a file exists and holds an exact line.

    path: the file.
    line: the line (no newline).
    """

    def __init__(self, path: str, line: str) -> None:
        self.path, self.line = path, line

    def command(self) -> str:
        p = cmd(self.path)
        return (
            f"if [ -f {p} ]; then echo exists=yes; grep -qxF -- {cmd(self.line)} {p} && echo present=yes "
            f"|| echo present=no; [ -s {p} ] && [ \"$(tail -c1 {p} | od -An -c | tr -d ' ')\" != '\\n' ]"
            f" && echo eol=no || echo eol=yes; else echo exists=no; fi"
        )

    def parse(self, output: str) -> LineInfo:
        f = keyvals(output)
        _need(f, ("exists",), f"file {self.path}", output)
        if f["exists"] != "yes":
            return LineInfo(False)
        _need(f, ("present", "eol"), f"file {self.path}", output)
        return LineInfo(True, f["present"] == "yes", f["eol"] == "yes")


# ---- packages, services, users ----------------------------------------------------------------


class PackagesFact(Fact[dict[str, str]]):
    """The installed versions of some Debian packages (packages not installed are left out).

    names: package names.
    """

    def __init__(self, names: list[str]) -> None:
        self.names = list(names)

    def command(self) -> str:
        return (
            "command -v dpkg-query >/dev/null || { echo 'dpkg-query: not found'; exit 127; }; "
            "dpkg-query -W -f='pkg=${Package} status=${db:Status-Abbrev} version=${Version}\\n' "
            + " ".join(cmd(p) for p in self.names)
            + " 2>/dev/null; true"
        )

    def parse(self, output: str) -> dict[str, str]:
        found: dict[str, str] = {}
        for line in output.splitlines():
            if not line.strip():
                continue
            f = keyvals(line)
            if "pkg" not in f or "status" not in f:
                raise FactError(f"packages: cannot read dpkg-query line {line!r}")
            if f["status"][1:2] == "i":  # installed, whatever is wanted (held, marked for removal)
                found[f["pkg"]] = f.get("version", "")
        return found


@dataclass(frozen=True)
class ServiceInfo:
    """A systemd unit's state.

    load_state: loaded, not-found, masked, ...
    active_state: active, inactive, failed, activating, ...
    unit_file_state: enabled, disabled, static, ...
    can_reload: the unit supports reload.
    """

    load_state: str
    active_state: str
    unit_file_state: str
    can_reload: bool


class ServiceFact(Fact[ServiceInfo]):
    """A systemd unit's load, active and enabled state.

    unit: the unit name (foo.service).
    """

    def __init__(self, unit: str) -> None:
        self.unit = unit

    def command(self) -> str:
        return (
            f"systemctl show -p LoadState -p ActiveState -p UnitFileState -p CanReload {cmd(self.unit)} "
            "| tr '\\n' ' '; echo"
        )

    def parse(self, output: str) -> ServiceInfo:
        f = keyvals(output)
        _need(f, ("LoadState", "ActiveState"), f"service {self.unit}", output)
        return ServiceInfo(f["LoadState"], f["ActiveState"], f.get("UnitFileState", ""), f.get("CanReload") == "yes")


@dataclass(frozen=True)
class GroupInfo:
    """A local group.

    gid: its id.
    """

    gid: int


class GroupFact(Fact["GroupInfo | None"]):
    """A local group (None when it does not exist).

    name: the group.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def command(self) -> str:
        return f"getent group {cmd(self.name)} || true"

    def parse(self, output: str) -> GroupInfo | None:
        line = output.strip()
        if not line:
            return None
        parts = line.split(":")
        if len(parts) < 3 or not parts[2].isdigit():
            raise FactError(f"group {self.name}: cannot read getent line {line!r}")
        return GroupInfo(int(parts[2]))


@dataclass(frozen=True)
class UserInfo:
    """A local user (exists False: none; then group_exists says whether its name is a group's).

    exists: the user exists.
    uid, home, shell: from passwd.
    groups: its supplementary groups (not its primary group), sorted.
    group_exists: a group with the user's name exists.
    """

    exists: bool
    uid: int | None = None
    home: str | None = None
    shell: str | None = None
    groups: tuple[str, ...] = ()
    group_exists: bool = False


class UserFact(Fact[UserInfo]):
    """A local user's uid, home, shell and groups.

    name: the user.
    """

    def __init__(self, name: str) -> None:
        self.name = name

    def command(self) -> str:
        n = cmd(self.name)
        return (
            f"getent group {n} >/dev/null && echo samegroup=yes || echo samegroup=no; "
            f"if pw=$(getent passwd {n}); then echo \"pw=$pw\"; echo groups=$(id -Gn {n} | tr ' ' ','); "
            f"echo primary=$(id -gn {n}); fi; true"
        )

    def parse(self, output: str) -> UserInfo:
        f = keyvals(output, whole=("pw",))
        _need(f, ("samegroup",), f"user {self.name}", output)
        same = f["samegroup"] == "yes"
        if "pw" not in f:
            return UserInfo(False, group_exists=same)
        fields = f["pw"].split(":")
        if len(fields) != 7 or not fields[2].isdigit():
            raise FactError(f"user {self.name}: cannot read passwd line {f['pw']!r}")
        primary = f.get("primary", self.name)
        groups = tuple(sorted(set(f.get("groups", "").split(",")) - {primary, ""}))
        return UserInfo(True, int(fields[2]), fields[5], fields[6], groups, same)


# ---- commands ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Guards:
    """The outcome of a command's guards (None where the guard is not set).

    creates: the path exists.
    unless: the unless command succeeded.
    onlyif: the onlyif command succeeded.
    """

    creates: bool | None = None
    unless: bool | None = None
    onlyif: bool | None = None


class GuardsFact(Fact[Guards]):
    """Whether a command's guards hold: a path that exists, commands that succeed.

    creates: a path.
    unless, onlyif: shell command lines.
    """

    def __init__(self, creates: str | None = None, unless: str | None = None, onlyif: str | None = None) -> None:
        self.creates, self.unless, self.onlyif = creates, unless, onlyif

    def command(self) -> str:
        parts = []
        if self.creates:
            parts.append(f"[ -e {cmd(self.creates)} ] && echo creates=yes || echo creates=no")
        if self.unless:
            parts.append(f"( {self.unless} ) >/dev/null 2>&1 && echo unless=yes || echo unless=no")
        if self.onlyif:
            parts.append(f"( {self.onlyif} ) >/dev/null 2>&1 && echo onlyif=yes || echo onlyif=no")
        return "; ".join(parts) or "true"

    def parse(self, output: str) -> Guards:
        f = keyvals(output)
        wanted = tuple(k for k in ("creates", "unless", "onlyif") if getattr(self, k))
        _need(f, wanted, "command guards", output)
        return Guards(*((f[k] == "yes") if k in wanted else None for k in ("creates", "unless", "onlyif")))


# ---- MariaDB ----------------------------------------------------------------------------------


def sql_command(sql: str) -> str:
    """Return a shell snippet that runs read-only SQL as the admin and prints tab-separated rows,
    then `sql-exit=CODE` so that a parser can tell a failed query from an empty answer.

    sql: the query (built from validated identifiers only).
    """
    return f"mysql --batch --skip-column-names -e {cmd(sql)} 2>&1; echo sql-exit=$?"


@dataclass(frozen=True)
class SQLRows:
    """Rows of a query: tab-separated fields per row."""

    rows: tuple[tuple[str, ...], ...] = field(default_factory=tuple)


def parse_sql(output: str, what: str) -> SQLRows:
    """Parse sql_command() output; raise FactError when the query failed.

    output: the snippet's output.
    what: what was asked, for the message.
    """
    lines = output.rstrip("\n").split("\n")
    if not lines or not lines[-1].startswith("sql-exit="):
        raise FactError(f"{what}: the query's output was cut off: {output.strip()[-300:]!r}")
    code, body = lines[-1][len("sql-exit=") :], lines[:-1]
    if code != "0":
        raise FactError(f"{what}: cannot query the database server: {' '.join(body).strip()[-300:]}")
    return SQLRows(tuple(tuple(line.split("\t")) for line in body if line))


class SQLFact(Fact[SQLRows]):
    """The rows of a read-only query run as the database admin (unix socket).

    sql: the query.
    what: what it asks, for messages.
    missing_table_is_empty: a table or database that does not exist yet reads as no rows.
    """

    def __init__(self, sql: str, what: str = "query", missing_table_is_empty: bool = False) -> None:
        self.sql, self.what, self.missing_table_is_empty = sql, what, missing_table_is_empty

    def command(self) -> str:
        return sql_command(self.sql)

    def parse(self, output: str) -> SQLRows:
        if self.missing_table_is_empty and re.search(r"^ERROR (1146|1049) ", output, re.M):
            return SQLRows()
        return parse_sql(output, self.what)


@dataclass(frozen=True)
class Account:
    """A database account: its password hash and its grant statements.

    auth: the authentication string (a hash).
    grants: SHOW GRANTS lines.
    """

    auth: str
    grants: tuple[str, ...]


class AccountFact(Fact["Account | None"]):
    """A database account's password hash and grants (None when it does not exist).

    user, host: the account (validated identifiers).
    """

    def __init__(self, user: str, host: str) -> None:
        self.user, self.host = user, host

    def command(self) -> str:
        who = f"'{self.user}'@'{self.host}'"
        auth = sql_command(
            f"SELECT CONCAT('=', authentication_string) FROM mysql.user "
            f"WHERE User = '{self.user}' AND Host = '{self.host}'"
        )
        grants = sql_command(f"SHOW GRANTS FOR {who}")
        return f"{{ {auth}; }} | sed 's/^/auth: /'; {{ {grants}; }} | sed 's/^/grant: /'"

    def parse(self, output: str) -> Account | None:
        auth = "\n".join(ln[6:] for ln in output.splitlines() if ln.startswith("auth: "))
        rows = parse_sql(auth + "\n", f"account {self.user}@{self.host}").rows
        if not rows:
            return None
        grants = "\n".join(ln[7:] for ln in output.splitlines() if ln.startswith("grant: "))
        granted = parse_sql(grants + "\n", f"grants of {self.user}@{self.host}").rows
        return Account(rows[0][0][1:], tuple("\t".join(r) for r in granted))


# ---- MariaDB replication -------------------------------------------------------------------------

_VERTICAL = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*): ?(.*)$")

#: What a node says of itself.
LOCAL_SQL = (
    "SELECT @@server_id AS server_id, @@read_only AS read_only, @@version AS version, "
    "@@gtid_binlog_pos AS gtid_binlog_pos, @@gtid_binlog_state AS gtid_binlog_state, "
    "@@gtid_slave_pos AS gtid_slave_pos, @@gtid_current_pos AS gtid_current_pos, @@log_bin AS log_bin, "
    "(SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name NOT IN "
    "('mysql', 'information_schema', 'performance_schema', 'sys')) AS user_schemas"
)
#: What a peer says of itself when asked over the network (the replication account sees this much).
PEER_SQL = (
    "SELECT @@server_id AS server_id, @@read_only AS read_only, @@gtid_binlog_pos AS gtid_binlog_pos, "
    "@@gtid_binlog_state AS gtid_binlog_state"
)


def parse_vertical(output: str, what: str) -> list[dict[str, str]]:
    """Parse `mysql -e '...\\G'` output then `sql-exit=N` into rows of column -> value.

    output: the snippet's output.
    what: what was asked, for the message.
    """
    lines = output.rstrip("\n").split("\n")
    if not lines or not lines[-1].startswith("sql-exit="):
        raise FactError(f"{what}: the answer was cut off: {output.strip()[-300:]!r}")
    if lines[-1] != "sql-exit=0":
        raise FactError(f"{what}: {' '.join(lines[:-1]).strip()[-300:] or lines[-1]}")
    rows: list[dict[str, str]] = []
    for line in lines[:-1]:
        if line.startswith("*****"):
            rows.append({})
            continue
        m = _VERTICAL.match(line)
        if m and rows:
            rows[-1][m.group(1)] = m.group(2).strip()
    return rows


@dataclass(frozen=True)
class Peer:
    """Another database node, as a fact can reach it.

    name: its inventory name.
    host, port: where it listens.
    """

    name: str
    host: str
    port: int = 3306


#: the replica status columns that say how replication is set up and whether it runs (not where it is)
_STEADY_REPLICA = (
    "Master_Host",
    "Master_Port",
    "Master_User",
    "Using_Gtid",
    "Slave_IO_Running",
    "Slave_SQL_Running",
    "Last_SQL_Errno",
    "Last_SQL_Error",
)


@dataclass(frozen=True)
class ReplicationInfo:
    """What a MariaDB node says of itself, its replication, and its peers.

    local: server_id, read_only, version, gtid_* positions, log_bin, user_schemas.
    replica: SHOW SLAVE STATUS by column name ({} when it replicates from nobody).
    peers: peer name -> its PEER_SQL answer, or the error text when it cannot be asked.
    """

    local: dict[str, str]
    replica: dict[str, str]
    peers: dict[str, dict[str, str] | str] = field(default_factory=dict)

    @property
    def read_only(self) -> bool:
        return self.local.get("read_only") == "1"

    def steady(self, *, peers: bool = False) -> dict[str, Any]:
        """Return what of this node does not move while nothing changes it: its settings and
        replication setup, without GTID positions, lag or log coordinates (a primary that takes
        writes moves them every moment); with peers, whether each peer answers and is writable.

        peers: include the peers' writability.
        """
        local: dict[str, Any] = {k: v for k, v in self.local.items() if not k.startswith("gtid_")}
        local["has_binlog_history"] = bool(self.local.get("gtid_binlog_state"))
        replica = {k: self.replica[k] for k in _STEADY_REPLICA if k in self.replica}
        out: dict[str, Any] = {"local": local, "replica": replica}
        if peers:
            out["peers"] = {
                name: peer.get("read_only") if isinstance(peer, dict) else "no answer"
                for name, peer in sorted(self.peers.items())
            }
        return out

    def mariadb(self) -> tuple[int, ...] | None:
        """Return the MariaDB version as numbers, or None when the server is not MariaDB."""
        version = self.local.get("version", "")
        m = re.match(r"^(\d+)\.(\d+)\.(\d+)", version)
        return tuple(int(x) for x in m.groups()) if m and "mariadb" in version.lower() else None


class ReplicationFact(Fact[ReplicationInfo]):
    """A MariaDB node's own state (as the admin), its replica status, and what each peer says of
    itself (asked over the network with the client option file, e.g. the replication account).

    client_cnf: the option file (user and password) used to ask peers.
    peers: the nodes to ask.
    """

    def __init__(self, client_cnf: str | None = None, peers: tuple[Peer, ...] = ()) -> None:
        self.client_cnf, self.peers = client_cnf, peers

    def command(self) -> str:
        parts = [
            f"echo @@local; mysql -e {cmd(LOCAL_SQL + chr(92) + 'G')} 2>&1; echo sql-exit=$?",
            f"echo @@replica; mysql -e {cmd('SHOW SLAVE STATUS' + chr(92) + 'G')} 2>&1; echo sql-exit=$?",
        ]
        for peer in self.peers:
            cnf = cmd(f"--defaults-extra-file={self.client_cnf}")
            ask = (
                f"mysql {cnf} -h {cmd(peer.host)} -P {cmd(peer.port)} --connect-timeout=3 "
                f"-e {cmd(PEER_SQL + chr(92) + 'G')} 2>&1; echo sql-exit=$?"
            )
            parts.append(
                f"echo @@peer {cmd(peer.name)}; if [ -r {cmd(self.client_cnf or '')} ]; then {ask}; "
                f"else echo {cmd('no client option file ' + (self.client_cnf or ''))}; echo sql-exit=2; fi"
            )
        return "; ".join(parts)

    def parse(self, output: str) -> ReplicationInfo:
        blocks: dict[str, str] = {}
        key = None
        for line in output.splitlines(keepends=True):
            if line.startswith("@@"):
                key = line[2:].strip()
                blocks[key] = ""
            elif key is not None:
                blocks[key] += line
        if "local" not in blocks or "replica" not in blocks:
            raise FactError(f"replication: cannot read {output.strip()[-300:]!r}")
        local = parse_vertical(blocks["local"], "MariaDB")
        if not local:
            raise FactError("MariaDB: its variables did not come back")
        replica = parse_vertical(blocks["replica"], "replica status")
        peers: dict[str, dict[str, str] | str] = {}
        for peer in self.peers:
            try:
                rows = parse_vertical(blocks.get(f"peer {peer.name}", ""), f"{peer.name} ({peer.host})")
                peers[peer.name] = rows[0] if rows else f"{peer.name}: no answer"
            except FactError as err:
                peers[peer.name] = str(err)
        return ReplicationInfo(local[0], replica[0] if replica else {}, peers)
