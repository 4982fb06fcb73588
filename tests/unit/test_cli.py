"""The command line without hosts: inventory errors reach the user as one clear line, exit 2; in
process, how a command ends on SIGTERM or Ctrl-C, the lock wait, and a journal that refused records."""

from __future__ import annotations

import faulthandler
import os
import signal
import time
from types import SimpleNamespace

import pytest

from foobar_ops.core.errors import FoobarOpsError
from foobar_ops.core.report import Report
from tests.conftest import run_cli

GOOD_HOST = "hosts:\n  web-01:\n    address: 10.77.0.11\n    roles: [nginx]\n"


def write(tmp_path, text):
    path = tmp_path / "inv.yml"
    path.write_text(text)
    return path


def test_hosts_lists_a_valid_inventory(tmp_path):
    done = run_cli("hosts", "-i", write(tmp_path, GOOD_HOST), "--json")
    assert done.code == 0
    assert done.json()["hosts"][0]["name"] == "web-01"


def test_inventory_typo_is_one_clear_error_naming_file_host_and_key(tmp_path):
    path = write(tmp_path, GOOD_HOST.replace("address:", "adress:"))
    for command in (["hosts"], ["ping"], ["apply", "--test"]):
        done = run_cli(*command, "-i", path)
        assert done.code == 2, done
        assert str(path) in done.err and "web-01" in done.err and "adress" in done.err
        assert "Traceback" not in done.err


def test_unknown_role_and_literal_secret_are_refused(tmp_path):
    done = run_cli("hosts", "-i", write(tmp_path, GOOD_HOST.replace("[nginx]", "[nginxx]")))
    assert done.code == 2 and "nginxx" in done.err and "does not exist" in done.err
    secret = GOOD_HOST + "    vars:\n      db_password: hunter2-literal\n"
    done = run_cli("hosts", "-i", write(tmp_path, secret))
    assert done.code == 2 and "db_password" in done.err and "hunter2-literal" not in done.err


def test_unknown_role_on_the_command_line_is_refused(tmp_path):
    done = run_cli("apply", "-i", write(tmp_path, GOOD_HOST), "nginxx", "--test")
    assert done.code == 2 and "unknown role 'nginxx'" in done.err


def test_missing_inventory_file_is_named(tmp_path):
    done = run_cli("ping", "-i", tmp_path / "nope.yml")
    assert done.code == 2 and "nope.yml" in done.err


# --- in process: how a run ends, what the journal could not take, the lock wait -------------


@pytest.fixture(autouse=True)
def _in_process(monkeypatch):
    """main() registers a traceback dump on SIGUSR1 to the real stderr, which the captured stderr of
    a test has not."""
    monkeypatch.setattr(faulthandler, "register", lambda *args, **kw: None)


def test_sigterm_ends_a_command_as_an_interrupt_with_its_own_code(monkeypatch, capsys):
    from foobar_ops.cli import commands
    from foobar_ops.cli.main import main

    reached = []

    def stopped(args):
        os.kill(os.getpid(), signal.SIGTERM)  # a cancelled CI job, systemd stopping the unit
        time.sleep(5)
        reached.append("after")  # never: the signal unwinds the command
        return 0

    monkeypatch.setitem(commands.HANDLERS, "hosts", stopped)
    before = signal.getsignal(signal.SIGTERM)
    assert main(["hosts", "-i", "inv.yml"]) == 143
    assert capsys.readouterr().err == "foobar-ops: terminated\n" and reached == []
    assert signal.getsignal(signal.SIGTERM) is before  # given back once the command ended


def test_ctrl_c_stays_an_interrupt(monkeypatch, capsys):
    from foobar_ops.cli import commands
    from foobar_ops.cli.main import main

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setitem(commands.HANDLERS, "hosts", interrupted)
    assert main(["hosts", "-i", "inv.yml"]) == 130
    assert capsys.readouterr().err == "foobar-ops: interrupted\n"


class _Stop(FoobarOpsError):
    """Raised by a stand-in operation once it has seen its arguments."""


def _seen_by(monkeypatch, target, name, seen):
    def operation(*args, **kw):
        seen.append(kw.get("lock_wait"))
        raise _Stop("seen")

    monkeypatch.setattr(target, name, operation)


def test_wait_is_given_to_the_operation_as_its_lock_wait_for_that_command_only(monkeypatch):
    from foobar_ops import ops
    from foobar_ops.cli.main import main

    seen = []
    _seen_by(monkeypatch, ops, "deploy", seen)
    before = dict(os.environ)
    assert main(["apply", "-i", "inv.yml", "--test"]) == 2
    assert main(["apply", "-i", "inv.yml", "--wait", "90"]) == 2
    assert main(["apply", "-i", "inv.yml"]) == 2
    assert seen == [None, 90.0, None]
    assert dict(os.environ) == before  # nothing travels through the environment


@pytest.mark.parametrize(
    "argv, where, name",
    [
        (["rollback", "-i", "inv.yml", "--wait", "12"], "ops", "rollback"),
        (["runbook", "records", "-i", "inv.yml", "--wait", "12"], "runner", "run"),
        (["db", "switchover", "-i", "inv.yml", "--wait", "12"], "ops", "db_switchover"),
        (["db", "failover", "-i", "inv.yml", "--wait", "12"], "ops", "db_failover"),
        (["db", "unfence", "-i", "inv.yml", "--peer-gone", "web-02", "--wait", "12"], "ops", "db_unfence"),
        (["apply", "-i", "inv.yml", "--plan", "p.json", "--wait", "12"], "ops", "apply_plan"),
        (["apply", "-i", "inv.yml", "--states", "s.py", "--wait", "12"], "ops", "apply_states"),
    ],
    ids=["rollback", "runbook", "switchover", "failover", "unfence", "plan", "states"],
)
def test_every_command_whose_runs_take_locks_gives_its_operation_the_wait(monkeypatch, argv, where, name):
    from foobar_ops import ops
    from foobar_ops.cli.main import main
    from foobar_ops.runbooks import runner

    seen = []
    _seen_by(monkeypatch, {"ops": ops, "runner": runner}[where], name, seen)
    assert main(argv) == 2
    assert seen == [12.0]


@pytest.mark.parametrize(
    "argv",
    [["ping", "-i", "inv.yml", "--wait", "5"], ["run", "-i", "inv.yml", "--wait", "5", "--", "true"]],
    ids=["ping", "run"],
)
def test_commands_that_take_no_lock_refuse_a_wait_instead_of_ignoring_it(capsys, argv):
    from foobar_ops.cli.main import main

    with pytest.raises(SystemExit) as ended:
        main(argv)
    assert ended.value.code == 2 and "unrecognized arguments: --wait" in capsys.readouterr().err


def test_verifys_wait_for_servers_up_is_not_a_lock_wait(monkeypatch):
    from foobar_ops.cli import commands
    from foobar_ops.cli.main import main

    seen = []
    monkeypatch.setitem(
        commands.HANDLERS, "verify", lambda args: seen.append((args.wait, getattr(args, "lock_wait", None)))
    )
    main(["verify", "-i", "inv.yml", "--wait", "7"])
    assert seen == [(7.0, None)]


@pytest.mark.parametrize("ok", [True, False])
def test_a_run_whose_journal_refused_records_fails_and_says_where_they_wait(capsys, ok):
    from foobar_ops.cli.commands import _print_report

    report = Report("r1", False, [], {}, hosts=[])
    if ok:
        assert _print_report(report, SimpleNamespace(json=False)) == 0
    report.journal_errors = [f"journal j.sqlite: cannot write: disk full; kept in j.spool ({n})" for n in range(5)]
    assert _print_report(report, SimpleNamespace(json=False)) == 1
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"foobar-ops: journal: journal j.sqlite: cannot write: disk full; kept in j.spool ({n})" for n in range(3)
    ]


# --- the version ---------------------------------------------------------------------------------


def test_version_prints_the_program_and_its_version():
    from foobar_ops.core.version import __version__

    done = run_cli("--version")
    assert done.code == 0, done
    assert done.out == f"foobar-ops {__version__}\n" and done.err == ""
