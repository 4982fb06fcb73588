"""Facts without a host: each fact's command output (fixtures/facts/<fact>/<case>.json) parsed into
its typed value, or refused with FactError; and every command quoting its arguments.

The fixtures' outputs are the real commands' outputs on Debian 12 where they can run here, and
systemctl / mysql outputs written in their exact format where they cannot (see each fixture's
"note" and fixtures/facts/make_fixtures.py, which regenerates them).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import inspect
import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from foobar_ops.core import facts
from foobar_ops.core.errors import FactError
from foobar_ops.core.facts import (
    Account,
    AccountFact,
    FileFact,
    GroupFact,
    Guards,
    GuardsFact,
    LineFact,
    LineInfo,
    PackagesFact,
    Peer,
    ReplicationFact,
    ReplicationInfo,
    ServiceFact,
    ServiceInfo,
    SQLFact,
    SQLRows,
    UserFact,
    UserInfo,
    keyvals,
)

FIXTURES = Path(__file__).parent / "fixtures" / "facts"
FOLDERS = {
    "file": "FileFact",
    "line": "LineFact",
    "packages": "PackagesFact",
    "service": "ServiceFact",
    "group": "GroupFact",
    "user": "UserFact",
    "guards": "GuardsFact",
    "sql": "SQLFact",
    "account": "AccountFact",
    "replication": "ReplicationFact",
}
FACT_CLASSES = sorted(
    name
    for name, obj in vars(facts).items()
    if inspect.isclass(obj) and issubclass(obj, facts.Fact) and obj is not facts.Fact
)
CASES = sorted(FIXTURES.glob("*/*.json"))


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def plain(value: object) -> object:
    """The value as JSON holds it: dataclasses as dicts, tuples as lists, bytes as base64 text."""
    if dataclasses.is_dataclass(value):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def build(case: dict) -> facts.Fact:
    args = dict(case["args"])
    if "peers" in args:  # JSON holds each peer as a dict
        args["peers"] = tuple(Peer(**p) for p in args["peers"])
    return getattr(facts, case["fact"])(**args)


# --- the fixtures -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", CASES, ids=[f"{p.parent.name}/{p.stem}" for p in CASES])
def test_fact_parses_its_command_output(path):
    case = load(path)
    assert set(case) <= {"fact", "args", "output", "value", "error", "note"}
    assert ("value" in case) != ("error" in case), "a fixture holds a value or an error"
    assert case["fact"] == FOLDERS[path.parent.name], "a fixture lies in its fact's folder"
    fact = build(case)
    if "error" in case:
        with pytest.raises(FactError) as info:
            fact.parse(case["output"])
        assert case["error"] in str(info.value)
    else:
        assert plain(fact.parse(case["output"])) == case["value"]


def test_every_fact_has_fixtures_that_parse_and_fixtures_that_are_refused():
    values = {load(p)["fact"] for p in CASES if "value" in load(p)}
    errors = {load(p)["fact"] for p in CASES if "error" in load(p)}
    assert sorted(FOLDERS.values()) == FACT_CLASSES
    assert sorted(values) == FACT_CLASSES
    assert sorted(errors) == FACT_CLASSES


def test_fetched_content_hashes_to_the_reported_sha256():
    """The content that comes back is the file whose live hash the fact reports."""
    case = load(FIXTURES / "file" / "regular_text_file_differs.json")
    value = build(case).parse(case["output"])
    assert value.content == b"port=80\n"
    assert value.sha256 == hashlib.sha256(value.content).hexdigest() != case["args"]["want_sha256"]


# --- keyvals ----------------------------------------------------------------------------------


def test_keyvals_reads_several_pairs_per_line_and_the_whole_line_of_given_keys():
    output = (
        "type=file\nowner=root group=root mode=0644 size=8\n"
        f"content={base64.b64encode(b'x=1 y=2').decode()}\ntarget=/opt/My App/a=b c\nparent=yes\n"
    )
    f = keyvals(output, whole=("target", "content"))
    assert f["type"] == "file" and f["owner"] == "root" and f["mode"] == "0644" and f["size"] == "8"
    assert base64.b64decode(f["content"]) == b"x=1 y=2"
    assert f["target"] == "/opt/My App/a=b c"
    assert f["parent"] == "yes"
    assert "App/a" not in f and "c" not in f


def test_keyvals_without_whole_splits_on_spaces_and_ignores_words_without_equals():
    assert keyvals("a=1 b= noise c=x=y\n\nd=4 ") == {"a": "1", "b": "", "c": "x=y", "d": "4"}


# --- running commands -----------------------------------------------------------------------


def run_with(stub: str, fact: facts.Fact) -> str:
    """Run fact.command() under sh, as the engine does (stderr with stdout), after stub (shell code)."""
    done = subprocess.run(
        ["sh", "-c", stub + "\n" + fact.command()],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=30,
    )
    return done.stdout


# --- quoting ----------------------------------------------------------------------------------

ODD_DIR = '/srv/it\'s "my" app'
ODD = ODD_DIR + "/$HOME `id`; rm -rf x.conf"
ODD_LINE = "-e it's $HOME `id` | true"
ODD_SQL = "SELECT 'it''s' AS `a b`; -- $HOME"

QUOTING = {
    "FileFact": (FileFact(ODD, hashlib.sha256(b"x").hexdigest()), [ODD, ODD_DIR]),
    "LineFact": (LineFact(ODD, ODD_LINE), [ODD, ODD_LINE]),
    "PackagesFact": (PackagesFact(["it's", "a b;c"]), ["it's", "a b;c"]),
    "ServiceFact": (ServiceFact("my app's.service"), ["my app's.service"]),
    "GroupFact": (GroupFact("o'brien x"), ["o'brien x"]),
    "UserFact": (UserFact("o'brien x"), ["o'brien x"]),
    "GuardsFact": (GuardsFact(creates=ODD), [ODD]),
    "SQLFact": (SQLFact(ODD_SQL), [ODD_SQL]),
    "AccountFact": (
        AccountFact("foobar", "10.77.0.%"),
        [
            "SELECT CONCAT('=', authentication_string) FROM mysql.user WHERE User = 'foobar' AND Host = '10.77.0.%'",
            "SHOW GRANTS FOR 'foobar'@'10.77.0.%'",
        ],
    ),
    "ReplicationFact": (
        ReplicationFact(ODD, (Peer("it's b", "db'02 $(id)", 3307),)),
        [f"--defaults-extra-file={ODD}", ODD, "it's b", "db'02 $(id)"],
    ),
}


def words(command: str) -> list[str]:
    """The shell words of a command line (as a POSIX shell splits and unquotes them).

    shlex does not know that quotes start afresh inside "$( )", so such a substitution is
    unwrapped first (LineFact's end-of-file check; its quoting is also run for real below).
    """
    command = re.sub(r'"\$\((.*?)\)"', r"$( \1 )", command)
    return list(shlex.shlex(command, posix=True, punctuation_chars=True))


def test_quoting_covers_every_fact():
    assert sorted(QUOTING) == FACT_CLASSES


@pytest.mark.parametrize("name", sorted(QUOTING))
def test_fact_command_passes_odd_arguments_as_single_shell_words(name):
    fact, args = QUOTING[name]
    command = fact.command()
    syntax = subprocess.run(["sh", "-n", "-c", command], capture_output=True, text=True)
    assert syntax.returncode == 0, f"not a valid shell command ({syntax.stderr.strip()}): {command}"
    for arg in args:
        assert arg in words(command), f"{arg!r} is not one shell word of {command}"
        # every occurrence is quoted: the raw text never appears where the shell would read it
        assert words(command).count(arg) == command.count(shlex.quote(arg)) >= 1
        if "'" in arg:
            assert arg not in command


@pytest.mark.parametrize(
    "content, present",
    [(b"a\n" + ODD_LINE.encode() + b"\n", True), (ODD_LINE.encode() + b"x", False), (b"a\n" + ODD_LINE.encode(), True)],
)
def test_line_command_runs_with_an_odd_path_and_line(tmp_path, content, present):
    """A real run (sh, grep, tail, od, tr): the path and line reach the tools intact."""
    path = tmp_path / 'it\'s "my" app' / "$HOME `id`; x.conf"
    path.parent.mkdir()
    path.write_bytes(content)
    fact = LineFact(str(path), ODD_LINE)
    assert fact.parse(run_with("", fact)) == LineInfo(True, present, content.endswith(b"\n"))
    path.unlink()
    assert fact.parse(run_with("", fact)) == LineInfo(False)


def test_guards_command_runs_with_an_odd_creates_path(tmp_path):
    path = tmp_path / 'it\'s "my" app; $HOME `id`'
    fact = GuardsFact(creates=str(path))
    assert fact.parse(run_with("", fact)) == Guards(creates=False)
    path.mkdir()
    assert fact.parse(run_with("", fact)) == Guards(creates=True)


def test_guards_run_the_unless_and_onlyif_command_lines_as_shell_code():
    command = GuardsFact(unless="apache2ctl -M | grep -q ssl", onlyif="test -d /run/systemd/system").command()
    assert "( apache2ctl -M | grep -q ssl ) >/dev/null 2>&1 && echo unless=yes || echo unless=no" in command
    assert "( test -d /run/systemd/system ) >/dev/null 2>&1 && echo onlyif=yes || echo onlyif=no" in command
    assert GuardsFact().command() == "true"


# --- commands run against stubs --------------------------------------------------------------
# Commands that cannot run here (systemctl, mysql), or a user this machine lacks (getent, id), are
# shell functions printing what the real ones print; the fact's own pipeline (tr, sed, the
# sql-exit line) runs for real, so these check the shell structure of command().

HASH = "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"
GRANTS = (
    "GRANT USAGE ON *.* TO `foobar`@`10.77.0.11` IDENTIFIED BY PASSWORD '" + HASH + "'",
    "GRANT SELECT, INSERT ON `foobar`.* TO `foobar`@`10.77.0.11`",
)


def test_service_command_joins_systemctl_show_into_one_line():
    stub = (
        'systemctl() { [ "$*" = \'show -p LoadState -p ActiveState -p UnitFileState -p CanReload '
        'haproxy.service\' ] || { echo "unexpected: $*"; return 1; }; '
        "printf 'LoadState=loaded\\nActiveState=active\\nUnitFileState=enabled\\nCanReload=yes\\n'; }"
    )
    fact = ServiceFact("haproxy.service")
    output = run_with(stub, fact)
    assert output == "LoadState=loaded ActiveState=active UnitFileState=enabled CanReload=yes \n"
    assert fact.parse(output) == ServiceInfo("loaded", "active", "enabled", True)


def mysql_stub(select: str, show: str) -> str:
    """A mysql function answering the auth query (-e 'SELECT ...') and SHOW GRANTS with shell code."""
    return (
        f"mysql() {{ [ \"$1 $2 $3\" = '--batch --skip-column-names -e' ] || return 9; "
        f'case "$4" in SELECT*) {select};; SHOW*) {show};; *) return 9;; esac; }}'
    )


def test_sql_command_reports_rows_then_the_exit_code():
    fact = SQLFact("SELECT schema_name FROM information_schema.schemata", "databases")
    output = run_with(mysql_stub("printf 'foobar\\nmysql\\n'", "return 9"), fact)
    assert output == "foobar\nmysql\nsql-exit=0\n"
    assert fact.parse(output) == SQLRows((("foobar",), ("mysql",)))


def test_sql_command_keeps_the_error_and_its_exit_code():
    error = "ERROR 2002 (HY000): Can't connect to local server through socket '/run/mysqld/mysqld.sock' (2)"
    fact = SQLFact("SELECT 1", "database foobar")
    output = run_with(mysql_stub(f"echo {shlex.quote(error)} >&2; return 1", "return 9"), fact)
    assert output == f"{error}\nsql-exit=1\n"
    with pytest.raises(FactError, match="cannot query the database server: ERROR 2002"):
        fact.parse(output)


def test_user_groups_are_its_supplementary_groups_not_its_primary_group():
    """www's primary group is users: usermod --groups cannot remove it, so it is no extra group."""
    stub = (
        "getent() { case \"$1 $2\" in 'passwd www') echo 'www:x:1500:100:Web Site,,,:/srv/www:/bin/sh';; "
        "'group users'|'group 100') echo 'users:x:100:';; 'group adm'|'group 4') echo 'adm:x:4:www';; "
        "*) return 2;; esac; }\n"
        "id() { case \"$*\" in '-Gn www'|'-nG www'|'-G -n www') echo 'users adm';; "
        "'-gn www'|'-ng www'|'-g -n www') echo users;; '-G www') echo '100 4';; '-g www') echo 100;; "
        "'-u www') echo 1500;; "
        '*) echo "unexpected: id $*" >&2; return 1;; esac; }'
    )
    fact = UserFact("www")
    assert fact.parse(run_with(stub, fact)) == UserInfo(True, 1500, "/srv/www", "/bin/sh", ("adm",), False)


def test_account_command_reads_an_existing_account_and_its_grants():
    fact = AccountFact("foobar", "10.77.0.11")
    grants = "printf '%s\\n' " + " ".join(shlex.quote(g) for g in GRANTS)
    output = run_with(mysql_stub(f"printf '=%s\\n' {shlex.quote(HASH)}", grants), fact)
    assert fact.parse(output) == Account(HASH, GRANTS), output


def test_account_command_reads_a_missing_account_as_none():
    no_grant = "ERROR 1141 (42000) at line 1: There is no such grant defined for user 'foobar' on host '10.77.0.11'"
    fact = AccountFact("foobar", "10.77.0.11")
    output = run_with(mysql_stub("true", f"echo {shlex.quote(no_grant)} >&2; return 1"), fact)
    assert fact.parse(output) is None


def test_account_command_reports_an_unreachable_server():
    error = "ERROR 2002 (HY000): Can't connect to local server through socket '/run/mysqld/mysqld.sock' (2)"
    fact = AccountFact("foobar", "10.77.0.11")
    fail = f"echo {shlex.quote(error)} >&2; return 1"
    with pytest.raises(FactError, match="cannot query the database server: ERROR 2002"):
        fact.parse(run_with(mysql_stub(fail, fail), fact))


def vertical(row: dict[str, str]) -> str:
    """One row as mysql's vertical format (a query ending in \\G) prints it."""
    width = max(map(len, row))
    return "*" * 27 + " 1. row " + "*" * 27 + "\n" + "".join(f"{k:>{width}}: {v}\n" for k, v in row.items())


LOCAL = {"server_id": "12", "read_only": "1", "version": "10.11.6-MariaDB-0+deb12u1-log", "gtid_binlog_state": ""}
PEER = {"server_id": "11", "read_only": "0", "gtid_binlog_pos": "0-11-42", "gtid_binlog_state": "0-11-42"}


def replication_stub(cnf: str) -> str:
    """A mysql function answering the node's own query, SHOW SLAVE STATUS (no row: not a replica),
    and the peer query asked with the option file: 10.77.0.11:3306 answers, any other peer is down."""
    q = shlex.quote
    return (
        "mysql() {\n"
        f'  if [ $# = 2 ] && [ "$1" = -e ] && [ "$2" = {q(facts.LOCAL_SQL + chr(92) + "G")} ]; then '
        f"printf '%s' {q(vertical(LOCAL))}; return 0; fi\n"
        f'  if [ $# = 2 ] && [ "$1" = -e ] && [ "$2" = {q("SHOW SLAVE STATUS" + chr(92) + "G")} ]; then return 0; fi\n'
        f'  if [ $# = 8 ] && [ "$1" = {q("--defaults-extra-file=" + cnf)} ] '
        f'&& [ "$2 $4 $6 $7" = "-h -P --connect-timeout=3 -e" ] '
        f'&& [ "$8" = {q(facts.PEER_SQL + chr(92) + "G")} ]; then\n'
        f"    if [ \"$3:$5\" = 10.77.0.11:3306 ]; then printf '%s' {q(vertical(PEER))}; return 0; fi\n"
        "    echo \"ERROR 2002 (HY000): Can't connect to server on '$3' (115)\" >&2; return 1\n"
        "  fi\n"
        '  echo "unexpected: mysql $*" >&2; return 9\n'
        "}"
    )


def test_replication_command_asks_the_node_then_each_peer_with_the_option_file(tmp_path):
    cnf = tmp_path / "the replication $HOME.cnf"
    cnf.write_text("[client]\n")
    fact = ReplicationFact(str(cnf), (Peer("web-01", "10.77.0.11"), Peer("web-03", "10.77.0.13", 3307)))
    info = fact.parse(run_with(replication_stub(str(cnf)), fact))
    down = "web-03 (10.77.0.13): ERROR 2002 (HY000): Can't connect to server on '10.77.0.13' (115)"
    assert info == ReplicationInfo(LOCAL, {}, {"web-01": PEER, "web-03": down})
    assert info.read_only and info.mariadb() == (10, 11, 6)


def test_replication_command_without_the_option_file_says_so_for_each_peer(tmp_path):
    cnf = tmp_path / "it's not there $HOME.cnf"
    fact = ReplicationFact(str(cnf), (Peer("web-01", "10.77.0.11"),))
    info = fact.parse(run_with(replication_stub(str(cnf)), fact))
    assert info.local == LOCAL
    assert info.peers == {"web-01": f"web-01 (10.77.0.11): no client option file {cnf}"}
