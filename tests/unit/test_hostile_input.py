"""Input is hostile until checked: inventory values that reach a shell, SQL, a unit file or a path are
typed when the inventory is loaded; YAML that would explode or loop is refused fast; host patterns,
load balancer names and load test parameters are checked before any command runs on any host. Each
bad input ends with its exit code and one line naming it, no traceback, and nothing done."""

from __future__ import annotations

import faulthandler
import time
from pathlib import Path

import pytest
import yaml

from foobar_ops.cli.main import main
from foobar_ops.core import safeyaml, ssh
from foobar_ops.core.errors import InventoryError
from foobar_ops.core.inventory import parse_inventory
from foobar_ops.stack import lb as lb_mod
from foobar_ops.stack import load_inventory, scheduled, topology
from foobar_ops.stack import loadtest as lt
from tests.unit.inventories import LAB, ROOT, lab_doc, write_doc


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    """Records in a temporary folder; main() in process; no SSH connection may even be made."""
    monkeypatch.setenv("FOOBAR_OPS_HOME", str(tmp_path / "records"))
    monkeypatch.setenv("TEST_DB_PW", "db-pw")
    monkeypatch.setenv("TEST_REPL_PW", "repl-pw")
    monkeypatch.setenv("TEST_SUDO", "sudo-pw")
    monkeypatch.setattr(faulthandler, "register", lambda *args, **kw: None)

    def no_host(*args, **kw):
        raise AssertionError("a command was about to reach a host")

    monkeypatch.setattr(ssh.Remote, "__init__", no_host)
    monkeypatch.setattr(ssh, "run_many", no_host)


def refused(capsys, argv: list[str], code: int = 2) -> str:
    """Run the CLI in process; assert it ended with code and one line on stderr; return the line."""
    assert main([str(a) for a in argv]) == code
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def nothing_recorded(tmp_path: Path) -> bool:
    return not (tmp_path / "records" / "journal.sqlite").exists()


# --- stack vars that reach commands, templates, SQL and paths: typed at load -----------------


@pytest.mark.parametrize(
    "key, value",
    [
        ("mysql", "3306; touch /tmp/pwned"),
        ("mysql", "3306\nExecStartPre=/bin/sh -c id"),
        ("app", 0),
        ("http", 65536),
        ("http", True),
        ("http", 80.0),
        ("https", 443),  # a port no role knows: a typo
    ],
)
def test_a_port_is_a_whole_number_from_1_to_65535_when_the_inventory_is_loaded(tmp_path, key, value):
    doc = lab_doc()
    doc["stack"]["ports"][key] = value
    with pytest.raises(InventoryError, match=rf"key 'stack\.ports\.{key}'") as refused_:
        load_inventory(write_doc(tmp_path, doc))
    assert "\n" not in str(refused_.value)


@pytest.mark.parametrize(
    "where, key, value",
    [
        ("stack", "domain", "foobar.com; rm -rf /"),
        ("stack", "domain", "foobar.com\n    stats socket /tmp/x level admin"),
        ("stack", "app_source", "/src/app\n"),
        ("database", "name", "foobar`; DROP DATABASE mysql; --"),
        ("database", "user", "app' IDENTIFIED BY 'x"),
        ("database", "replication_user", "repl\n"),
        ("database", "max_lag_s", 1e9),
        ("database", "max_lag_s", 0),
        ("database", "max_lag_s", 10**400),  # too large for a float: refused, never an OverflowError
        ("vars", "haproxy_timeout_client", "30s\n    stats socket /tmp/admin.sock level admin"),
        ("vars", "haproxy_check_interval", "1s fastinter 1ms"),
        ("vars", "haproxy_check_fall", "2 rise 1"),
        ("vars", "mysql_max_connections", "200\ninit_file=/tmp/evil.sql"),
        ("vars", "mysql_binlog_days", "7\nplugin_load=x"),
        ("vars", "app_build", "../../../etc"),
        ("vars", "app_workers", "2 --bind 0.0.0.0:9"),
        ("vars", "haproxy_weight", "1 backup"),
        ("vars", "mysql_server_id", "7"),
        ("vars", "mysql_role", "master"),
        ("vars", "mysql_read_weight", -1),
        ("vars", "mysql_read_pool", "no"),
    ],
)
def test_every_value_that_reaches_a_command_is_typed_at_load(tmp_path, where, key, value):
    doc = lab_doc()
    if where == "stack":
        doc["stack"][key] = value
        named = f"stack.{key}"
    elif where == "database":
        doc["stack"]["database"] = {key: value}
        named = f"stack.database.{key}"
    else:
        doc["hosts"]["web-02"]["vars"][key] = value
        named = f"vars.{key}"
    path = write_doc(tmp_path, doc)
    with pytest.raises(InventoryError) as refused_:
        load_inventory(path)
    message = str(refused_.value)  # one line naming the file, the key and the value
    assert "\n" not in message and str(path) in message and f"key '{named}'" in message
    assert repr(value)[:40] in message


@pytest.mark.parametrize("command", [["apply", "--test"], ["apply", "mysql"], ["db", "status"], ["hosts"]])
def test_a_command_given_a_port_with_a_command_in_it_stops_at_load(tmp_path, capsys, command):
    doc = lab_doc()
    doc["stack"]["ports"]["mysql"] = "3306; touch /tmp/pwned"
    path = write_doc(tmp_path, doc)
    line = refused(capsys, [*command, "-i", path])
    assert line == (
        f"foobar-ops: error: {path}: key 'stack.ports.mysql': must be a whole number from 1 to 65535, "
        "not '3306; touch /tmp/pwned'"
    )
    assert nothing_recorded(tmp_path)


def test_an_inventory_built_in_python_is_checked_where_its_ports_are_read(tmp_path):
    inv = parse_inventory(yaml.safe_dump(lab_doc()), tmp_path / "x.yml")  # the core loader: no stack types
    bad = type(inv)(**{**inv.__dict__, "stack": {"ports": {"mysql": "3306; id"}}})
    with pytest.raises(topology.TopologyError, match=r"key 'stack\.ports\.mysql': must be a whole number"):
        topology.ports(bad)


def test_the_lab_inventory_loads_with_its_types():
    inv = load_inventory(LAB)
    assert topology.ports(inv) == {"http": 80, "app": 8000, "mysql": 3306}


# --- YAML that would explode, nest without end or hold non-numbers --------------------------


def alias_bomb(levels: int = 9) -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, levels + 1)]
    return "stack:\n  bomb:\n" + "".join(f"    {line}\n" for line in lines) + "hosts:\n  h1: {address: 10.0.0.1}\n"


def test_an_alias_bomb_in_an_inventory_is_refused_fast(tmp_path, capsys):
    path = write_doc(tmp_path, alias_bomb())
    started = time.perf_counter()
    line = refused(capsys, ["hosts", "-i", path])
    assert time.perf_counter() - started < 2
    assert str(path) in line and "aliases expand to more than 100,000 values" in line


def test_deep_nesting_is_refused(tmp_path, capsys):
    path = write_doc(tmp_path, "stack:\n  deep: " + "[" * 5000 + "]" * 5000 + "\nhosts:\n  h1: {address: 10.0.0.1}\n")
    line = refused(capsys, ["hosts", "-i", path])
    assert str(path) in line and "nested deeper than 64 levels" in line


def test_a_recursive_alias_is_refused(tmp_path, capsys):
    path = write_doc(tmp_path, "stack:\n  loop: &a [*a]\nhosts:\n  h1: {address: 10.0.0.1}\n")
    assert "an alias refers to a value that contains it" in refused(capsys, ["hosts", "-i", path])


@pytest.mark.parametrize("value", [".nan", ".NaN", ".inf", "-.inf", "1.0e+999"])
def test_a_number_that_is_not_finite_is_refused(tmp_path, capsys, value):
    doc = yaml.safe_dump(lab_doc()).replace("mysql: 3306", "mysql: 3306\n  database:\n    max_lag_s: " + value)
    path = write_doc(tmp_path, doc)
    line = refused(capsys, ["hosts", "-i", path])
    assert "is not a finite number" in line and "line" in line


@pytest.mark.parametrize(
    "value, named",
    [("2026-13-45", "'2026-13-45' is a date out of range"), ("9" * 5000, "is a whole number out of range")],
)
def test_a_number_or_date_that_cannot_be_built_is_one_line_not_a_traceback(tmp_path, capsys, value, named):
    path = write_doc(tmp_path, f"stack:\n  when: {value}\nhosts:\n  h1: {{address: 10.0.0.1}}\n")
    line = refused(capsys, ["hosts", "-i", path])
    assert str(path) in line and named in line and "at line 2, column 9" in line
    line = refused(capsys, ["runbook", "lb_maintenance", "-i", LAB, "-y", f"{{when: {value}}}"])
    assert named in line
    assert nothing_recorded(tmp_path)


def test_aliases_that_stay_small_still_load():
    assert safeyaml.load("a: &a {x: 1}\nb: *a\nc: [*a, *a]") == {"a": {"x": 1}, "b": {"x": 1}, "c": [{"x": 1}] * 2}


# --- host patterns ----------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", ["", ",", " , ", "web-01,"])
def test_run_with_an_empty_host_pattern_runs_nothing_anywhere(tmp_path, capsys, pattern):
    line = refused(capsys, ["run", "-i", write_doc(tmp_path, lab_doc()), "--hosts", pattern, "--", "reboot"])
    assert "host pattern" in line and "empty" in line
    assert nothing_recorded(tmp_path)


@pytest.mark.parametrize("command", [["apply", "--test"], ["ping"], ["hosts"]])
def test_every_command_refuses_an_empty_host_pattern(tmp_path, capsys, command):
    line = refused(capsys, [*command, "-i", write_doc(tmp_path, lab_doc()), "--hosts", ""])
    assert "host pattern '' is empty" in line


# --- the load balancer's names ---------------------------------------------------------------


@pytest.mark.parametrize(
    "action, server, backend, named",
    [
        ("ready", "web-01", "../../..", "backend '../../..'"),
        ("maint", "web-01", "bk_api", "no backend 'bk_api'"),
        ("drain", "../../../etc/passwd", "bk_web", "server '../../../etc/passwd'"),
        ("ready", "web-09", "bk_web", "no server 'web-09'"),
        ("maint", "lb-01", "bk_web", "no server 'lb-01'"),
        ("ready", "web-01;id", "bk_web", "server 'web-01;id'"),
    ],
)
def test_lb_refuses_names_its_configuration_does_not_have_before_any_command(
    tmp_path, capsys, action, server, backend, named
):
    line = refused(capsys, ["lb", action, server, "--backend", backend, "-i", write_doc(tmp_path, lab_doc())])
    assert named in line and "nothing was done" in line
    assert nothing_recorded(tmp_path)


def test_the_load_balancer_itself_refuses_a_path_for_a_name():
    lb = lb_mod.HAProxy.__new__(lb_mod.HAProxy)  # no inventory check: a name read from a mark file
    with pytest.raises(lb_mod.LBError, match="is not a name"):
        lb.set_state("bk_web", "../x", "ready")
    with pytest.raises(lb_mod.LBError, match="is not a name"):
        lb.marks("../..")


# --- load tests: one check for now and for later, and a unit file that takes no new line -----


SCHEDULE = ["loadtest", "schedule", "nightly"]


@pytest.mark.parametrize(
    "option, value, named",
    [
        ("--run-time", "20s\nExecStartPre=/bin/sh -c 'id > /tmp/pwned'", "run time"),
        ("--run-time", "20s --host http://203.0.113.9", "run time"),
        ("--run-time", "0s", "run time"),
        ("--run-time", "²s", "run time"),
        ("--users", "0", "users 0"),
        ("--spawn-rate", "nan", "spawn rate nan"),
        ("--spawn-rate", "inf", "spawn rate inf"),
        ("--spawn-rate", "-1", "spawn rate -1"),
        ("--every", "1h\nExecStartPre=/bin/id", "--every"),
    ],
)
def test_loadtest_schedule_checks_its_load_before_any_host(tmp_path, capsys, option, value, named):
    line = refused(capsys, [*SCHEDULE, "-i", write_doc(tmp_path, lab_doc()), f"{option}={value}"])
    assert named in line
    assert nothing_recorded(tmp_path)


@pytest.mark.parametrize(
    "option, value, named",
    [("--run-time", "20s\nx", "run time"), ("--spawn-rate", "nan", "spawn rate"), ("--users", "0", "users")],
)
def test_loadtest_now_checks_the_same(tmp_path, capsys, option, value, named):
    line = refused(capsys, ["loadtest", "round-robin", "-i", write_doc(tmp_path, lab_doc()), f"{option}={value}"])
    assert named in line


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\x00b", "50%n", "$HOME", "a\x1bb"])
def test_the_unit_renderer_refuses_a_value_with_a_control_character(value):
    with pytest.raises(lt.LoadTestError, match="site"):
        scheduled.unit_values({"users": 16, "site": value})


def test_a_good_schedule_renders_one_exec_line(tmp_path):
    inv = load_inventory(write_doc(tmp_path, lab_doc()))
    states = scheduled.schedule_states(inv, "nightly", "round-robin", "1h", 16, 2.5, "5m")(None, inv)
    service = next(s for s in states if s.id == "schedule:service")
    text = service.content.decode() if isinstance(service.content, bytes) else str(service.content)
    assert [ln for ln in text.splitlines() if ln.startswith("Exec")] == [
        "ExecStart=/opt/foobar-loadgen/run-loadtest --name nightly --kind round-robin --users 16 --spawn-rate 2.5 "
        "--run-time 5m --host http://10.77.0.50:80 --site foobar.com"
    ]
    doc = lab_doc(tls=True)  # with https, the site's URL; the load generator gets the CA to verify it
    doc["secrets"].update(tls_cert="env:TEST_TLS_CERT", tls_key="env:TEST_TLS_KEY")
    inv = load_inventory(write_doc(tmp_path, doc, "https.yml"))
    states = scheduled.schedule_states(inv, "nightly", "round-robin", "1h", 16, 2.5, "5m")(None, inv)
    service = next(s for s in states if s.id == "schedule:service")
    assert "--host https://10.77.0.50:443 --site foobar.com" in service.content.decode()


# --- runbook parameters and the catalog ------------------------------------------------------


@pytest.mark.parametrize(
    "given, named",
    [
        (["-y", "a: b: c"], "-y 'a: b: c': invalid YAML at line 1, column 5: mapping values are not allowed here"),
        (["-f", "/missing"], "-f /missing: no such file"),
        (["-y", "{nap: &a [*a]}"], "-y '{nap: &a [*a]}': refused: an alias refers to a value that contains it"),
        (["-y", "{x: .nan}"], "is not a finite number"),
        (["-y", "[1, 2]"], "must be a YAML mapping"),
        (["-y", "{x: " + "[" * 5000 + "]" * 5000 + "}"], "nested deeper than 64 levels"),
    ],
)
def test_runbook_parameters_that_cannot_be_read_are_one_line(tmp_path, capsys, given, named):
    line = refused(capsys, ["runbook", "lb_maintenance", "-i", LAB, *given])
    assert named in line
    assert nothing_recorded(tmp_path)


def test_runbook_yaml_alias_bomb_is_refused_fast(tmp_path, capsys):
    path = write_doc(tmp_path, alias_bomb().replace("stack:\n  bomb:\n", "bomb:\n").split("hosts:")[0], "p.yml")
    started = time.perf_counter()
    line = refused(capsys, ["runbook", "lb_maintenance", "-i", LAB, "-f", path])
    assert time.perf_counter() - started < 2
    assert line.startswith(f"foobar-ops: error: -f {path}: refused: its aliases expand to more than 100,000 values")


def test_a_float_parameter_must_be_finite():
    from foobar_ops.runbooks.parameters import Param, RunbookParameterError

    with pytest.raises(RunbookParameterError, match="'ratio' must be a finite number"):
        Param("ratio", "float").check(float("nan"))


def test_one_broken_runbook_is_named_and_the_others_listed(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "runbooks"
    folder.mkdir()
    for name in ("records", "rollback"):
        (folder / f"{name}.py").write_text((ROOT / "runbooks" / f"{name}.py").read_text())
    (folder / "broken.py").write_text('# %% [markdown]\n# Broken\n\n# %% tags=["parameters"]\nx = 1\n')
    (folder / "garbled.ipynb").write_text("{not json")
    monkeypatch.setenv("FOOBAR_OPS_RUNBOOKS", str(folder))
    assert main(["runbook", "list"]) == 1
    out, err = capsys.readouterr()
    assert "records " in out and "rollback " in out and "Traceback" not in err
    assert "runbook broken cannot be read: broken.py: parameter x has no type" in err
    assert "runbook garbled cannot be read: garbled.ipynb" in err
    assert len(err.strip().splitlines()) == 2


@pytest.mark.parametrize(
    "key, value",
    [("haproxy_timeout_client", "30s\n    stats socket /tmp/a level admin"), ("haproxy_check_fall", "2 rise 1")],
)
def test_the_haproxy_role_checks_its_settings_where_it_reads_them(tmp_path, key, value):
    from foobar_ops.stack.roles import haproxy

    doc = lab_doc()
    doc["hosts"]["lb-01"]["vars"] = {key: value}
    inv = parse_inventory(yaml.safe_dump(doc), tmp_path / "x.yml")  # the core loader: no stack types
    with pytest.raises(topology.TopologyError, match=rf"^host 'lb-01': key 'vars\.{key}': must be"):
        haproxy.context(inv.host("lb-01"), inv)


@pytest.mark.parametrize(
    "argv, named",
    [
        (["loadtest", "history", "../../etc"], "schedule name '../../etc'"),
        (["loadtest", "baseline", "../..", "x"], "schedule name '../..'"),
        (["loadtest", "baseline", "nightly", "../../../etc/passwd"], "run '../../../etc/passwd'"),
        (["loadtest", "unschedule", "../../etc/x", "-i", LAB], "schedule name '../../etc/x'"),
    ],
)
def test_schedule_names_and_run_ids_are_names_never_paths(tmp_path, capsys, argv, named):
    assert named in refused(capsys, argv)
    assert nothing_recorded(tmp_path)


def test_a_null_stack_value_is_its_default_never_none(tmp_path):
    doc = lab_doc()
    doc["stack"]["ports"]["mysql"] = None
    doc["stack"]["domain"] = None
    doc["stack"]["database"] = {"name": None, "user": None, "max_lag_s": None}
    inv = load_inventory(write_doc(tmp_path, doc))
    assert topology.ports(inv)["mysql"] == 3306 and topology.domain(inv) == "foobar.com"
    db = topology.db_settings(inv)
    assert (db["name"], db["user"], db["max_lag_s"]) == ("foobar", "foobar", 5.0)


@pytest.mark.parametrize(
    "key, value",
    [("mysql_max_connections", "200\ninit_file=/tmp/evil.sql"), ("mysql_binlog_days", "7\nplugin_load=x")],
)
def test_the_mysql_role_checks_its_settings_where_it_reads_them(tmp_path, key, value):
    from foobar_ops.stack.roles import mysql

    doc = lab_doc()
    doc["hosts"]["web-01"].setdefault("vars", {})[key] = value
    inv = parse_inventory(yaml.safe_dump(doc), tmp_path / "x.yml")  # the core loader: no stack types
    with pytest.raises(topology.TopologyError, match=rf"^host 'web-01': key 'vars\.{key}': must be"):
        mysql.states(inv.host("web-01"), inv)
