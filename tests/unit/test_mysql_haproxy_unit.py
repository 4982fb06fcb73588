"""MySQL states (hash, facts, plans, validation), the HAProxy runtime API (parse; its state changes
run as the load balancer runs them, by /bin/sh with a fake socat: the refusal to take out the last
UP server, drain and its journal record, drain marks, the lock), server_result, and
verify.summary_line."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from foobar_ops import states as s
from foobar_ops.core import journal as records
from foobar_ops.core.errors import AuthError, ConnectionFailed, FactError, HostKeyError
from foobar_ops.core.facts import Account, SQLRows
from foobar_ops.core.journal import Journal
from foobar_ops.core.result import Status
from foobar_ops.core.secrets import Secret
from foobar_ops.core.ssh import CommandOutcome
from foobar_ops.core.states.base import StateError
from foobar_ops.core.states.mysql import native_hash
from foobar_ops.stack import lb as lb_mod
from foobar_ops.stack import load_inventory
from foobar_ops.stack.lb import HAProxy, LastServerUp, LBError, parse_stat, server_result
from foobar_ops.stack.topology import BACKEND, STATS_SOCKET
from foobar_ops.stack.verify import summary_line

LAB = Path(__file__).resolve().parents[2] / "inventories" / "lab.yml"
PW = "Cl3ar-Pa55word-x7"
APP_PRIVS = ("SELECT", "INSERT", "UPDATE", "DELETE")
APP_GRANT = ["DELETE", "INSERT", "SELECT", "UPDATE"]  # as the state and parse_grants list them


@pytest.fixture(autouse=True)
def _no_git(monkeypatch):
    """The journal records the project's git commit; keep these tests away from the real repo."""
    monkeypatch.setattr(records, "git_commit", lambda folder=records.CHECKOUT: "abc1234")


@pytest.fixture
def secret(monkeypatch):
    monkeypatch.setenv("TEST_MYSQL_PW", PW)
    return Secret("env:TEST_MYSQL_PW")


# --- mysql: hash and database ---------------------------------------------------------------


def test_native_hash_known_values():
    assert native_hash("password") == "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"
    assert native_hash("") == "*BE1BDEC0AA74B4DCB079943E70528096CCA985F8"
    assert len(native_hash(PW)) == 41 and native_hash(PW).startswith("*")


def rows(*names: str) -> SQLRows:
    """What the database fact parses: one row per schema found."""
    return SQLRows(tuple((n,) for n in names))


def test_database_in_state():
    db = s.mysql.database("foobar")
    plan = db.plan(rows("foobar"))
    assert not plan.needed and plan.commands == []
    assert db.id == "mysql.database:foobar"


def test_database_created():
    plan = s.mysql.database("foobar").plan(rows())
    assert plan.needed
    assert plan.changes == {"old": None, "new": "foobar"}
    argv = shlex.split(plan.commands[0])
    assert argv == ["mysql", "-e", "CREATE DATABASE IF NOT EXISTS `foobar` CHARACTER SET utf8mb4"]


def test_database_other_name_does_not_count():
    assert s.mysql.database("foobar").plan(rows("foobar2")).needed


def test_database_fact_reads_the_rows():
    fact = s.mysql.database("foobar").fact()
    assert fact.parse("foobar\nsql-exit=0\n") == rows("foobar")
    assert fact.parse("sql-exit=0\n") == rows()


@pytest.mark.parametrize(
    "output",
    [
        "ERROR 2002 (HY000): Can't connect to local server through socket '/run/mysqld/mysqld.sock' (2)\nsql-exit=1\n",
        "ERROR 2002 (HY000): Can't connect to local server through socket '/run/mysqld/mysqld.sock' (2)\n",
        "",
    ],
)
def test_database_fact_error_is_a_fact_error_not_absent(output):
    with pytest.raises(FactError, match="database foobar"):
        s.mysql.database("foobar").fact().parse(output)


def test_database_fact_quotes_the_sql():
    command = s.mysql.database("foobar").fact().command()
    query, _, rest = command.partition(" 2>&1; ")
    argv = shlex.split(query)
    assert argv[:3] == ["mysql", "--batch", "--skip-column-names"]
    assert argv[3] == "-e" and "schema_name = 'foobar'" in argv[4]
    assert rest == "echo sql-exit=$?"


# --- mysql: user ------------------------------------------------------------------------------

WHO_SQL = "'foobar'@'10.77.0.11'"


def user(secret, privileges=APP_PRIVS, **kw):
    return s.mysql.user("foobar", host="10.77.0.11", password=secret, database="foobar", privileges=privileges, **kw)


def facts(
    auth: str,
    grants: str | None = "SELECT, INSERT, UPDATE, DELETE",
    *,
    grant_option: bool = False,
    extra: tuple[str, ...] = (),
) -> Account:
    """The account fact of an existing user: its hash and SHOW GRANTS lines (USAGE, then the grant
    on the database unless grants is None, then any extra lines)."""
    lines = [f"GRANT USAGE ON *.* TO `foobar`@`10.77.0.11` IDENTIFIED BY PASSWORD '{auth}'"]
    if grants:
        line = f"GRANT {grants} ON `foobar`.* TO `foobar`@`10.77.0.11`"
        lines.append(line + (" WITH GRANT OPTION" if grant_option else ""))
    return Account(auth, tuple(lines) + extra)


def sql_of(plan) -> list[str]:
    assert plan.commands == ['mysql < "$FOOBAR_STAGE"/sql']
    return [x.strip() for x in plan.uploads["sql"].decode().split(";\n") if x.strip()]


def assert_no_clear_password(plan):
    text = json.dumps(
        {
            "changes": plan.changes,
            "commands": plan.commands,
            "comment": plan.comment,
            "diff": plan.diff,
            "error": plan.error,
        },
        default=str,
    )
    assert PW not in text
    for data in plan.uploads.values():
        assert PW.encode() not in data
    assert PW not in repr(plan)


def test_missing_user_is_created_with_the_hash_only(secret):
    plan = user(secret).plan(None)
    assert plan.needed
    stmts = sql_of(plan)
    assert stmts == [
        f"CREATE USER {WHO_SQL} IDENTIFIED BY PASSWORD '{native_hash(PW)}'",
        f"GRANT DELETE, INSERT, SELECT, UPDATE ON `foobar`.* TO {WHO_SQL}",
    ]
    assert plan.changes == {"old": None, "new": {"grants": {"`foobar`.*": ["DELETE", "INSERT", "SELECT", "UPDATE"]}}}
    assert "created" in plan.comment
    assert_no_clear_password(plan)


def test_wrong_hash_is_altered(secret):
    plan = user(secret).plan(facts(native_hash("old-password")))
    assert plan.needed
    assert sql_of(plan) == [f"ALTER USER {WHO_SQL} IDENTIFIED BY PASSWORD '{native_hash(PW)}'"]
    assert plan.changes == {"old": {"password": "(other)"}, "new": {"password": "(from the secret)"}}
    assert_no_clear_password(plan)
    assert "old-password" not in repr(plan)


def test_different_grants_are_revoked_and_granted(secret):
    plan = user(secret).plan(facts(native_hash(PW), "ALL PRIVILEGES"))
    assert sql_of(plan) == [
        f"REVOKE ALL PRIVILEGES, GRANT OPTION FROM {WHO_SQL}",
        f"GRANT DELETE, INSERT, SELECT, UPDATE ON `foobar`.* TO {WHO_SQL}",
    ]
    assert plan.changes == {
        "old": {"grants": {"`foobar`.*": ["ALL PRIVILEGES"]}},
        "new": {"grants": {"`foobar`.*": ["DELETE", "INSERT", "SELECT", "UPDATE"]}},
    }
    assert_no_clear_password(plan)


def test_fewer_grants_are_regranted(secret):
    plan = user(secret).plan(facts(native_hash(PW), "SELECT"))
    stmts = sql_of(plan)
    assert stmts == [
        f"REVOKE ALL PRIVILEGES, GRANT OPTION FROM {WHO_SQL}",
        f"GRANT DELETE, INSERT, SELECT, UPDATE ON `foobar`.* TO {WHO_SQL}",
    ]


def test_existing_user_without_grants_gets_the_grant_and_keeps_its_password(secret):
    plan = user(secret).plan(facts(native_hash(PW), None))
    assert sql_of(plan) == [
        f"REVOKE ALL PRIVILEGES, GRANT OPTION FROM {WHO_SQL}",
        f"GRANT DELETE, INSERT, SELECT, UPDATE ON `foobar`.* TO {WHO_SQL}",
    ]
    assert plan.changes == {"old": {"grants": {}}, "new": {"grants": {"`foobar`.*": APP_GRANT}}}


def test_wrong_hash_and_grants_together(secret):
    plan = user(secret).plan(facts("*0000000000000000000000000000000000000000", "SELECT, INSERT"))
    stmts = sql_of(plan)
    assert [st.split()[0] for st in stmts] == ["ALTER", "REVOKE", "GRANT"]
    assert set(plan.changes["new"]) == {"password", "grants"}
    assert_no_clear_password(plan)


def test_user_in_state(secret):
    plan = user(secret).plan(facts(native_hash(PW), "SELECT, INSERT, UPDATE, DELETE"))
    assert not plan.needed
    assert plan.changes == {} and plan.commands == [] and plan.uploads == {}
    assert "wanted state" in plan.comment


def test_user_in_state_whatever_the_grant_order(secret):
    plan = user(secret).plan(facts(native_hash(PW), "DELETE, UPDATE, SELECT, INSERT"))
    assert not plan.needed


def test_grants_on_another_database_do_not_count_and_are_revoked(secret):
    account = facts(
        native_hash(PW),
        None,
        extra=("GRANT SELECT, INSERT, UPDATE, DELETE ON `foobar_old`.* TO `foobar`@`10.77.0.11`",),
    )
    plan = user(secret).plan(account)
    assert sql_of(plan) == [
        f"REVOKE ALL PRIVILEGES, GRANT OPTION FROM {WHO_SQL}",
        f"GRANT DELETE, INSERT, SELECT, UPDATE ON `foobar`.* TO {WHO_SQL}",
    ]
    assert plan.changes["old"] == {"grants": {"`foobar_old`.*": APP_GRANT}}


def test_grant_option_is_not_least_privilege(secret):
    plan = user(secret).plan(facts(native_hash(PW), "SELECT, INSERT, UPDATE, DELETE", grant_option=True))
    assert plan.needed
    assert any("GRANT OPTION" in st and st.startswith("REVOKE") for st in sql_of(plan))


def test_user_fact_never_holds_the_password(secret):
    command = user(secret).fact().command()
    assert PW not in command and native_hash(PW) not in command
    words = list(shlex.shlex(command, posix=True, punctuation_chars=True))
    assert any("User = 'foobar' AND Host = '10.77.0.11'" in w for w in words)
    assert "SHOW GRANTS FOR 'foobar'@'10.77.0.11'" in words


def host_output(auth: list[str], grants: list[str]) -> str:
    """What the account fact's command prints: each query's lines (ending with sql-exit=N), prefixed."""
    return "".join(f"auth: {ln}\n" for ln in auth) + "".join(f"grant: {ln}\n" for ln in grants)


def test_user_fact_reads_the_hash_and_the_grants(secret):
    usage = f"GRANT USAGE ON *.* TO `foobar`@`10.77.0.11` IDENTIFIED BY PASSWORD '{native_hash(PW)}'"
    on_db = "GRANT SELECT, INSERT ON `foobar`.* TO `foobar`@`10.77.0.11`"
    account = (
        user(secret).fact().parse(host_output([f"={native_hash(PW)}", "sql-exit=0"], [usage, on_db, "sql-exit=0"]))
    )
    assert account == Account(native_hash(PW), (usage, on_db))


def test_user_fact_of_a_missing_user_is_none(secret):
    output = host_output(
        ["sql-exit=0"],
        [
            "ERROR 1141 (42000) at line 1: There is no such grant defined for user 'foobar' on host '10.77.0.11'",
            "sql-exit=1",
        ],
    )
    assert user(secret).fact().parse(output) is None


@pytest.mark.parametrize(
    "output",
    [
        host_output(
            ["ERROR 2002 (HY000): Can't connect to local server through socket", "sql-exit=1"],
            ["ERROR 2002 (HY000): Can't connect to local server through socket", "sql-exit=1"],
        ),
        host_output([f"={'*' + '0' * 40}", "sql-exit=0"], ["ERROR 1045 (28000): Access denied", "sql-exit=1"]),
        host_output([f"={'*' + '0' * 40}"], []),
        "",
    ],
)
def test_user_fact_that_cannot_be_read_is_a_fact_error_not_a_missing_user(secret, output):
    with pytest.raises(FactError, match="foobar@10.77.0.11"):
        user(secret).fact().parse(output)


def test_user_id_and_privileges_normalised(secret):
    u = s.mysql.user(
        "foobar", host="10.77.0.%", password=secret, database="foobar", privileges=["select", "Insert", "SELECT"]
    )
    assert u.id == "mysql.user:foobar@10.77.0.%"
    assert u.privileges == ["INSERT", "SELECT"]


@pytest.mark.parametrize("name", ["foo-bar", "foo bar", "x'; DROP USER root; --", "", "a" * 65, "fo`o"])
def test_invalid_user_names(secret, name):
    with pytest.raises(StateError):
        s.mysql.user(name, host="10.77.0.11", password=secret, database="foobar")


@pytest.mark.parametrize("host", ["", "10.77.0.11'", "10.77.0.11' OR '1'='1", "a b", "host;rm", "h`x", "x" * 256, None])
def test_invalid_host_patterns(secret, host):
    with pytest.raises(StateError):
        s.mysql.user("foobar", host=host, password=secret, database="foobar")


@pytest.mark.parametrize("host", ["10.77.0.11", "10.77.0.%", "%", "localhost", "fe80::1", "web_01.lab"])
def test_valid_host_patterns(secret, host):
    assert s.mysql.user("foobar", host=host, password=secret, database="foobar").host == host


@pytest.mark.parametrize("database", ["foo-bar", "foobar`; DROP DATABASE x; --", "", "a.b"])
def test_invalid_database_names(secret, database):
    with pytest.raises(StateError):
        s.mysql.user("foobar", host="10.77.0.11", password=secret, database=database)
    with pytest.raises(StateError):
        s.mysql.database(database)


@pytest.mark.parametrize(
    "privs", [["SUPER"], ["SELECT", "FILE"], ["SELECT ON *.* TO x"], ["GRANT OPTION"], ["SELECT; DROP TABLE items"]]
)
def test_invalid_privileges(secret, privs):
    with pytest.raises(StateError, match="privilege"):
        user(secret, privileges=privs)


# --- haproxy: parse_stat ----------------------------------------------------------------------

SHOW_STAT = """\
# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,
fe_foobar,FRONTEND,,,3,12,262124,1523,412345,2345678,0,0,7,,,,,OPEN,,,,,,,,,1,2,0,,,,0,2,0,15,,,,0,1480,0,36,7,0,,2,15,1523,,,
bk_web,web-01,0,0,1,5,,760,205000,1170000,,0,,0,0,0,0,UP,1,1,0,0,0,3600,0,,1,3,1,,760,,2,1,,8,L7OK,200,2,0,740,0,18,2,0,,,,,0,0,
bk_web,web-02,0,0,2,6,,761,205100,1171000,,0,,0,0,0,0,UP,1,1,0,1,0,3590,2,,1,3,2,,760,,2,1,,7,L7OK,200,3,0,740,0,18,5,0,,,,,0,0,
bk_web,BACKEND,0,0,3,9,26213,1521,410100,2341000,0,0,,0,0,0,0,UP,2,2,0,,0,3600,0,,1,3,0,,1520,,1,2,,15,,,,0,1480,0,36,7,0,,,,1521,0,0,

"""


def test_parse_stat_rows_by_field_name():
    rows = parse_stat(SHOW_STAT)
    assert [(r["pxname"], r["svname"]) for r in rows] == [
        ("fe_foobar", "FRONTEND"),
        ("bk_web", "web-01"),
        ("bk_web", "web-02"),
        ("bk_web", "BACKEND"),
    ]
    web01 = rows[1]
    assert web01["status"] == "UP" and web01["check_status"] == "L7OK"
    assert web01["scur"] == 1 and isinstance(web01["scur"], int)
    assert web01["stot"] == 760 and web01["bout"] == 1170000 and web01["check_code"] == 200
    assert web01["slim"] is None and web01["qlimit"] is None
    assert rows[0]["status"] == "OPEN" and rows[0]["scur"] == 3 and rows[0]["qcur"] is None
    assert rows[2]["chkfail"] == 1 and rows[3]["act"] == 2


def test_parse_stat_has_no_empty_field_from_the_trailing_comma():
    for row in parse_stat(SHOW_STAT):
        assert "" not in row and None not in row
        assert len(row) == 51
        assert "# pxname" not in row and "pxname" in row


def test_parse_stat_as_dataframe():
    frame = pd.DataFrame(parse_stat(SHOW_STAT))
    servers = frame[~frame["svname"].isin(["FRONTEND", "BACKEND"])]
    assert list(servers["svname"]) == ["web-01", "web-02"]
    assert int(servers["scur"].sum()) == 3


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n\n",
        "Unknown command. Please enter one of the following commands only :\n",
        "pxname,svname,scur\nbk_web,web-01,0\n",
        "<html>oops</html>",
    ],
)
def test_parse_stat_garbage(text):
    with pytest.raises(LBError, match="unexpected"):
        parse_stat(text)


def test_parse_stat_header_only():
    assert parse_stat("# pxname,svname,scur,\n") == []


# --- haproxy: the runtime API, its scripts run by a real /bin/sh -------------------------------
#
# HAProxy's state changes are one shell script on the load balancer (lb._state_script: under a
# lock, `show stat` through socat, awk decides, then `set server`). Here that script runs in a
# local /bin/sh with `socat` replaced by a fake on PATH: it answers `show stat` from the servers'
# state (a JSON file) and applies or refuses `set server` lines, recording every line it got. The
# lock and the drain marks live in the test's folder (lb.STATE_LOCK, lb.MARKS).

HEADER = SHOW_STAT.splitlines()[0]
FRONTEND = SHOW_STAT.splitlines()[1]
SERVER_LINE = (
    "{backend},{name},0,0,{scur},5,,760,205000,1170000,,0,,0,0,0,0,{status},1,1,0,0,0,3600,0,,1,3,1,,"
    "760,,2,1,,8,L7OK,200,2,0,740,0,18,2,0,,,,,0,0,"
)


def server_line(name: str, status: str, scur: int, backend: str = "bk_web") -> str:
    return SERVER_LINE.format(backend=backend, name=name, status=status, scur=scur)


FAKE_SOCAT = r"""
import json, os, sys

path = os.environ["FAKE_HAPROXY"]
with open(path) as f:
    state = json.load(f)
line = sys.stdin.read().strip()
state["calls"].append({"argv": sys.argv[1:], "line": line})


def done(out="", err="", code=0):
    with open(path, "w") as f:
        json.dump(state, f)
    sys.stdout.write(out)
    sys.stderr.write(err)
    sys.exit(code)


if state["down"] is True or (state["down"] == "set" and line.startswith("set ")):
    done(err="2024/01/01 00:00:00 socat[4242] E connect(): Connection refused\n", code=1)
if line == "show stat":
    rows = [state["header"], state["frontend"]]
    for name, status in state["status"].items():
        values = state["scur"].get(name) or [0]
        now = values.pop(0) if len(values) > 1 else values[0]
        rows.append(state["template"].format(backend="bk_web", name=name, status=status, scur=now))
    rows += state["others"]
    rows.append(state["template"].format(backend="bk_web", name="BACKEND", status="UP", scur=0))
    done("\n".join(rows) + "\n\n")
if line.startswith("set server "):
    target, _, wanted = line[len("set server "):].partition(" state ")
    if state["answer"].strip():
        done(state["answer"])
    state["status"][target.split("/", 1)[1]] = {"drain": "DRAIN", "maint": "MAINT", "ready": "UP"}[wanted]
    done("\n")
done("Unknown command.\n")
"""


class FakeRemote:
    """The load balancer: runs every command line (`sh -c SCRIPT`) in a local /bin/sh whose `socat`
    is the fake above. servers: name -> status; scur: name -> values for successive `show stat`s;
    answer: what HAProxy answers a `set server` (an empty line: done)."""

    def __init__(self, root: Path, servers: dict[str, str], scur=None, answer: str = "\n", others=()) -> None:
        self.root = root
        self.state = root / "haproxy.json"
        bin_dir = root / "bin"
        bin_dir.mkdir(parents=True, exist_ok=True)
        (root / "fake_socat.py").write_text(FAKE_SOCAT)
        socat = bin_dir / "socat"
        socat.write_text(
            f'#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(root / "fake_socat.py"))} "$@"\n'
        )
        socat.chmod(0o755)
        self.env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", FAKE_HAPROXY=str(self.state))
        self._save(
            {
                "status": dict(servers),
                "scur": {n: list(v) for n, v in (scur or {}).items()},
                "answer": answer,
                "others": list(others),
                "down": False,
                "calls": [],
                "header": HEADER,
                "frontend": FRONTEND,
                "template": SERVER_LINE,
            }
        )
        self.commands: list[str] = []
        self.sudo: list[bool] = []

    def _load(self) -> dict:
        return json.loads(self.state.read_text())

    def _save(self, state: dict) -> None:
        self.state.write_text(json.dumps(state))

    def run(self, command: str, *, sudo: bool = False, timeout=None):
        argv = shlex.split(command)
        assert argv[:2] == ["sh", "-c"] and len(argv) == 3, command
        self.commands.append(argv[2])
        self.sudo.append(sudo)
        done = subprocess.run(["/bin/sh", "-c", argv[2]], capture_output=True, text=True, env=self.env, timeout=60)
        code = done.returncode
        return CommandOutcome(
            "lb-01",
            "ok" if code == 0 else "failed",
            code,
            done.stdout,
            done.stderr,
            None if code == 0 else f"exit code {code}",
        )

    def close(self):
        pass

    # --- what the tests look at / set ---
    @property
    def status(self) -> dict[str, str]:
        return self._load()["status"]

    @property
    def lines(self) -> list[str]:
        return [c["line"] for c in self._load()["calls"]]

    @property
    def sets(self) -> list[str]:
        return [ln for ln in self.lines if ln.startswith("set server")]

    @property
    def argvs(self) -> list[list[str]]:
        return [c["argv"] for c in self._load()["calls"]]

    def socat_down(self, how: bool | str = True) -> None:
        """socat cannot reach HAProxy's socket (True), or only for `set server` ("set")."""
        state = self._load()
        state["down"] = how
        self._save(state)


@pytest.fixture
def lb_files(tmp_path, monkeypatch):
    """The load balancer's lock and drain marks, in the test's folder."""
    files = SimpleNamespace(lock=tmp_path / "lb" / "run" / "lb-state.lock", marks=tmp_path / "lb" / "drains")
    monkeypatch.setattr(lb_mod, "STATE_LOCK", str(files.lock))
    monkeypatch.setattr(lb_mod, "MARKS", str(files.marks))
    return files


@pytest.fixture
def haproxy(tmp_path, lb_files):
    """haproxy(servers, scur=..., answer=..., others=...) -> (HAProxy, its FakeRemote)."""

    def make(servers: dict[str, str], **kw) -> tuple[HAProxy, FakeRemote]:
        remote = FakeRemote(tmp_path / "lb", servers, **kw)
        return make_lb(tmp_path, remote), remote

    if shutil.which("flock") is None or shutil.which("awk") is None:
        pytest.skip("the load balancer's script needs flock and awk")
    return make


def make_lb(tmp_path, remote) -> HAProxy:
    lb = HAProxy.__new__(HAProxy)
    lb.host = SimpleNamespace(name="lb-01", user="ops", address="10.77.0.10")
    lb.remote = remote
    lb.socket = STATS_SOCKET
    lb.inventory = SimpleNamespace(path=tmp_path / "lab.yml", sha256="0" * 64, hosts={})
    lb._journal = Journal(tmp_path / "j.sqlite")
    lb.origin = "pytest: HAProxy"
    lb.record = True
    return lb


def test_servers_of_the_backend(haproxy):
    lb, remote = haproxy({"web-01": "UP", "web-02": "DOWN"})
    servers = lb.servers()
    assert list(servers) == ["web-01", "web-02"]
    assert servers["web-02"]["status"] == "DOWN"
    assert lb.remote.sudo == [True]  # the login user is not root
    assert list(lb.stat()["svname"]) == ["FRONTEND", "web-01", "web-02", "BACKEND"]
    assert remote.argvs[0] == ["-t", "5", "stdio", f"unix-connect:{STATS_SOCKET}"]


@pytest.mark.parametrize("other", ["DOWN", "MAINT", "DRAIN", "NOLB"])
def test_maint_of_the_last_up_server_is_refused(haproxy, other):
    lb, remote = haproxy({"web-01": "UP", "web-02": other})
    with pytest.raises(LastServerUp, match="refusing to maint bk_web/web-01: it is the last server that is UP"):
        lb.maint("web-01")
    assert remote.sets == [] and remote.status == {"web-01": "UP", "web-02": other}
    assert lb._journal.runs().empty


def test_drain_of_the_last_up_server_is_refused(haproxy, lb_files):
    lb, remote = haproxy({"web-01": "DOWN", "web-02": "UP"})
    with pytest.raises(LastServerUp, match="refusing to drain bk_web/web-02"):
        lb.drain("web-02", timeout=0.05, poll=0.01, mark="20260101-090000-abc123")
    assert remote.sets == []
    assert not lb_files.marks.exists()  # refused: nothing marked


def test_a_server_of_another_backend_does_not_count_as_up(haproxy):
    lb, remote = haproxy({"web-01": "UP", "web-02": "DOWN"}, others=[server_line("web-02", "UP", 0, "bk_api")])
    with pytest.raises(LastServerUp, match="last server that is UP"):
        lb.drain("web-01", timeout=0.05, poll=0.01)
    assert remote.sets == []


def test_maint_with_another_up_server(haproxy):
    lb, remote = haproxy({"web-01": "UP", "web-02": "UP 1/2"})  # UP while its checks settle: serving
    lb.maint("web-01")
    # how many times it is sent: test_a_state_change_is_one_step_on_the_load_balancer
    assert set(remote.sets) == {"set server bk_web/web-01 state maint"}
    assert remote.status["web-01"] == "MAINT"


def test_unknown_server(haproxy):
    lb, remote = haproxy({"web-01": "UP", "web-02": "UP"})
    with pytest.raises(LBError, match=r"backend bk_web has no server 'web-09' \(servers: web-01, web-02\)"):
        lb.ready("web-09")
    assert remote.sets == []


@pytest.mark.parametrize("others", ["DOWN", "MAINT"])
def test_ready_is_never_refused(haproxy, others):
    lb, remote = haproxy({"web-01": "MAINT", "web-02": others})
    lb.ready("web-01")
    assert set(remote.sets) == {"set server bk_web/web-01 state ready"}
    assert remote.status["web-01"] == "UP"


def test_drain_waits_until_sessions_reach_zero_and_records_the_run(haproxy):
    lb, remote = haproxy({"web-01": "UP", "web-02": "UP"}, scur={"web-01": [4, 2, 1, 0]})
    waited = lb.drain("web-01", timeout=5, poll=0.001)
    assert waited >= 0
    assert set(remote.sets) == {"set server bk_web/web-01 state drain"}
    assert remote.status["web-01"] == "DRAIN"
    # one show stat for the refusal check, then polls until scur was 0
    assert remote.lines.count("show stat") == 4
    runs = lb._journal.runs()
    assert len(runs) == 1
    run = runs.iloc[0]
    assert run["command"] == "pytest: HAProxy drain bk_web/web-01"
    assert run["status"] == "ok"
    assert json.loads(run["parameters"]) == {"backend": "bk_web", "server": "web-01", "state": "drain"}
    assert run["inventory"] == str(lb.inventory.path)
    results = lb._journal.results(run["run_id"])
    assert len(results) == 1
    res = results.iloc[0]
    assert res["host"] == "lb-01"
    assert res["state_id"] == "haproxy.server:bk_web/web-01:drain"  # one id form with the rolling guard
    assert res["state"] == "haproxy.server"
    assert res["status"] == "changed" and res["result"] == 1 and res["changed"] == 1
    # the status before it: test_a_state_change_is_one_step_on_the_load_balancer
    assert json.loads(res["changes"])["new"] == "drain"


def test_drain_times_out_when_sessions_stay(haproxy):
    lb, remote = haproxy({"web-01": "UP", "web-02": "UP"}, scur={"web-01": [3]})
    with pytest.raises(LBError, match="web-01 still has 3 sessions after 0.3 s of draining"):
        lb.drain("web-01", timeout=0.3, poll=0.005)
    assert set(remote.sets) == {"set server bk_web/web-01 state drain"}
    assert remote.lines.count("show stat") >= 3
    assert len(lb._journal.runs()) == 1  # the state change itself was made and recorded


def test_haproxy_refusal_is_an_error_and_a_failed_run(haproxy, lb_files):
    lb, remote = haproxy({"web-01": "UP", "web-02": "UP"}, answer="No such server.\n")
    with pytest.raises(LBError, match="HAProxy refused `set server bk_web/web-01 state drain`: No such server"):
        lb.drain("web-01", timeout=1, poll=0.01, mark="20260101-090000-abc123")
    runs = lb._journal.runs()
    assert list(runs["status"]) == ["failed"]
    res = lb._journal.results(runs.iloc[0]["run_id"]).iloc[0]
    assert res["status"] == "failed" and res["result"] == 0 and res["changed"] == 0
    assert "No such server" in res["comment"]
    assert remote.status["web-01"] == "UP" and not lb_files.marks.exists()  # refused: not marked


def test_failed_command_is_an_lberror(tmp_path):
    class Broken:
        def run(self, command, *, sudo=False, timeout=None):
            return CommandOutcome(
                "lb-01", "failed", 1, "", "2024/01/01 socat[1] E connect(): No such file or directory"
            )

    lb = make_lb(tmp_path, Broken())
    with pytest.raises(LBError, match="`show stat` failed.*No such file"):
        lb.servers()
    with pytest.raises(LBError, match="lb-01: .*No such file"):
        lb.ready("web-01")


# --- haproxy: the state script's verdicts, its lock, and the drain marks ----------------------


@pytest.mark.parametrize(
    "servers, server, state, answer, verdict, sets",
    [
        ({"web-01": "UP", "web-02": "UP"}, "web-01", "drain", "\n", "OK\tUP", True),
        ({"web-01": "UP 1/2", "web-02": "UP"}, "web-01", "drain", "\n", "OK\tUP 1/2", True),
        ({"web-01": "DOWN 1/2", "web-02": "DOWN"}, "web-01", "ready", "\n", "OK\tDOWN 1/2", True),
        ({"web-01": "UP", "web-02": "UP 1/2"}, "web-01", "maint", "\n", "OK\tUP", True),
        ({"web-01": "UP", "web-02": "DOWN"}, "web-01", "drain", "\n", "LAST", False),
        ({"web-01": "UP", "web-02": "NOLB"}, "web-01", "maint", "\n", "LAST", False),
        ({"web-01": "UP", "web-02": "UP"}, "web-09", "ready", "\n", "UNKNOWN web-01 web-02", False),
        (
            {"web-01": "UP", "web-02": "UP"},
            "web-01",
            "drain",
            "No such server.\n",
            "REFUSED\tUP\tNo such server.",
            True,
        ),
    ],
    ids=["drain", "status-with-a-space", "ready-the-last", "maint", "last-up", "nolb-is-not-up", "unknown", "refused"],
)
def test_the_state_script_decides_on_the_load_balancer(haproxy, servers, server, state, answer, verdict, sets):
    lb, remote = haproxy(servers, answer=answer)
    out = lb.command_script(lb_mod._state_script(STATS_SOCKET, "bk_web", server, state, None))
    assert out.splitlines() == [verdict]
    assert remote.sets == ([f"set server bk_web/{server} state {state}"] if sets else [])
    assert remote.lines[0] == "show stat" and len(remote.commands) == 1


def test_a_drain_by_a_run_is_marked_and_ready_removes_the_mark(haproxy, lb_files):
    lb, remote = haproxy({"web-01": "UP", "web-02": "UP"})
    lb.drain("web-01", timeout=1, poll=0.01, mark="20260101-090000-abc123")
    mark = json.loads((lb_files.marks / "bk_web.web-01").read_text())
    assert {k: mark[k] for k in ("backend", "server", "state", "run")} == {
        "backend": "bk_web",
        "server": "web-01",
        "state": "drain",
        "run": "20260101-090000-abc123",
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", mark["at"])
    assert lb.marks() == {"web-01": mark}
    lb.ready("web-01")
    assert not (lb_files.marks / "bk_web.web-01").exists() and lb.marks() == {}


@pytest.mark.parametrize(
    "errors, tries, fails",
    [
        ([ConnectionFailed("lb-01", "Connection reset by peer")], 2, False),  # cut once: sent again
        ([ConnectionFailed("lb-01", "reset"), ConnectionFailed("lb-01", "No route to host")], 2, True),
        ([AuthError("lb-01", "the host refused the login")], 1, True),  # trying again changes nothing
        ([HostKeyError("lb-01", "the host key changed")], 1, True),
    ],
)
def test_a_runtime_step_cut_off_is_sent_once_more_and_only_then(haproxy, errors, tries, fails):
    lb, remote = haproxy({"web-01": "DRAIN", "web-02": "UP"})
    pending, real_run, sent = list(errors), remote.run, []

    def run(command, **kw):
        sent.append(command)
        if pending:
            raise pending.pop(0)
        return real_run(command, **kw)

    remote.run = run
    if fails:
        with pytest.raises(ConnectionFailed):
            lb.ready("web-01")
        assert remote.status["web-01"] == "DRAIN"
    else:
        lb.ready("web-01")
        assert remote.status["web-01"] == "UP"
    assert len(sent) == tries


def test_a_drain_without_a_mark_is_an_operators_and_leaves_none(haproxy, lb_files):
    lb, remote = haproxy({"web-01": "UP", "web-02": "UP"})
    lb.drain("web-01", timeout=1, poll=0.01)
    assert remote.status["web-01"] == "DRAIN" and lb.marks() == {}


@pytest.mark.parametrize("how", ["maint", "drain"])
def test_an_operators_change_after_a_dead_runs_drain_makes_the_state_the_operators(haproxy, lb_files, how):
    lb, remote = haproxy({"web-01": "UP", "web-02": "UP"})
    lb.drain("web-01", timeout=1, poll=0.01, mark="20260101-090000-dead01")  # the run then died
    assert set(lb.marks()) == {"web-01"}
    remote.status["web-01"] = "UP"  # (any state: the operator now takes the server out by hand)
    if how == "maint":
        lb.maint("web-01")
    else:
        lb.drain("web-01", timeout=1, poll=0.01)
    assert lb.marks() == {}  # the next run will not put it back over the operator's choice


def test_a_mark_for_a_server_the_backend_no_longer_has_goes_when_asked_for(haproxy, lb_files):
    lb, remote = haproxy({"web-01": "UP", "web-02": "UP"})
    lb_files.marks.mkdir(parents=True)
    gone = {"backend": "bk_web", "server": "web-09", "state": "drain", "run": "r1", "at": "2026-01-01T09:00:00Z"}
    (lb_files.marks / "bk_web.web-09").write_text(json.dumps(gone) + "\n")
    with pytest.raises(LBError, match="has no server 'web-09'"):
        lb.ready("web-09")
    assert lb.marks() == {} and remote.sets == []  # reported once, never again


def test_marks_lists_this_backends_marks_only(haproxy, lb_files):
    lb, _ = haproxy({"web-01": "UP"})
    assert lb.marks() == {}  # no folder yet
    lb_files.marks.mkdir(parents=True)
    web = {"backend": "bk_web", "server": "web-02", "state": "drain", "run": "r1", "at": "2026-01-01T09:00:00Z"}
    (lb_files.marks / "bk_web.web-02").write_text(json.dumps(web) + "\n")
    (lb_files.marks / "bk_web.web-03").write_text("half a line {\n")
    (lb_files.marks / "bk_api.api-01").write_text(json.dumps(dict(web, backend="bk_api", server="api-01")) + "\n")
    assert lb.marks() == {"web-02": web}
    assert set(lb.marks("bk_api")) == {"api-01"}


def test_a_state_change_waits_for_another_on_the_load_balancer(haproxy, lb_files):
    lb, remote = haproxy({"web-01": "MAINT", "web-02": "UP"})
    lb_files.lock.parent.mkdir(parents=True)
    with open(lb_files.lock, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another run is checking and changing a server
        releaser = threading.Timer(0.6, lambda: fcntl.flock(held, fcntl.LOCK_UN))
        releaser.start()
        started = time.monotonic()
        lb.ready("web-01")
        waited = time.monotonic() - started
        releaser.join()
    assert waited >= 0.6 and remote.status["web-01"] == "UP"


def test_a_state_change_is_one_step_on_the_load_balancer(haproxy):
    lb, remote = haproxy({"web-01": "UP 1/2", "web-02": "UP"})
    lb.drain("web-01", timeout=1, poll=0.01, mark="20260101-090000-abc123")
    assert sum("flock -w 20 8" in c for c in remote.commands) == 1  # the state script ran once
    assert remote.sets == ["set server bk_web/web-01 state drain"]
    res = lb._journal.results(lb._journal.runs().iloc[0]["run_id"]).iloc[0]
    assert json.loads(res["changes"]) == {"old": "UP 1/2", "new": "drain"}  # the status reported intact


def test_a_runtime_api_that_cannot_be_reached_is_not_taken_for_an_unknown_server(haproxy):
    lb, remote = haproxy({"web-01": "UP", "web-02": "UP"})
    remote.socat_down()
    with pytest.raises(LBError) as raised:
        lb.drain("web-01", timeout=1, poll=0.01)
    assert "no server" not in str(raised.value)


def test_a_set_server_that_could_not_be_sent_is_an_error(haproxy, lb_files):
    lb, remote = haproxy({"web-01": "UP", "web-02": "UP"})
    remote.socat_down("set")
    with pytest.raises(LBError):
        lb.drain("web-01", timeout=1, poll=0.01, mark="20260101-090000-abc123")
    assert not (lb_files.marks / "bk_web.web-01").exists()


# --- haproxy: server_result --------------------------------------------------------------------


def test_server_result_of_a_change():
    r = server_result("lb-01", BACKEND, "web-01", "drain", True, "bk_web/web-01: UP -> drain", 0.25, "UP")
    assert (r.host, r.id, r.name, r.state) == (
        "lb-01",
        "haproxy.server:bk_web/web-01:drain",
        "bk_web/web-01",
        "haproxy.server",
    )
    assert r.status is Status.CHANGED and r.result is True and r.changed
    assert r.changes == {"old": "UP", "new": "drain"}
    assert r.duration_ms == 250.0


def test_server_result_when_nothing_changed_is_ok():
    r = server_result("lb-01", BACKEND, "web-01", "as-is", True, "already UP", 0.0, "UP", changed=False)
    assert r.status is Status.OK and r.result is True and not r.changed
    assert r.changes == {}


def test_server_result_of_a_refusal_is_failed_and_changes_nothing():
    r = server_result("lb-01", BACKEND, "web-01", "maint", False, "No such server.", 0.01, "UP")
    assert r.status is Status.FAILED and r.result is False and r.failed and not r.changed
    assert r.changes == {} and r.comment == "No such server."


# --- verify.summary_line ----------------------------------------------------------------------


def test_summary_line():
    inv = load_inventory(LAB)
    frame = pd.DataFrame(
        [
            {"status": 200, "served_by": "web-02", "db_node": "web-01", "release": "r", "ms": 3.0, "error": None},
            {"status": 200, "served_by": "web-01", "db_node": "web-01", "release": "r", "ms": 2.0, "error": None},
            {"status": 503, "served_by": "web-01", "db_node": None, "release": "r", "ms": 1.0, "error": None},
            {"status": None, "served_by": None, "db_node": None, "release": None, "ms": 5000.0, "error": "timed out"},
            {"status": 200, "served_by": "web-01", "db_node": "web-01", "release": "r", "ms": 2.5, "error": None},
        ]
    )
    assert summary_line(inv, frame) == (
        "foobar.com via the floating address 10.77.0.50 over https: 3/5 answered 200; served by web-01 2, web-02 1"
    )


def test_summary_line_when_nothing_answered():
    inv = load_inventory(LAB)
    frame = pd.DataFrame([{"status": None, "served_by": None, "error": "connection refused"}] * 2)
    assert (
        summary_line(inv, frame)
        == "foobar.com via the floating address 10.77.0.50 over https: 0/2 answered 200; served by none"
    )
