"""The Fabric tasks: the ones SREs expect, each documented, each taking the inventory option, each
calling an operation; bad input is one line and exit 2, as with foobar-ops."""

from __future__ import annotations

import inspect
import subprocess
from pathlib import Path

from foobar_ops.cli import fabtasks

FAB = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "fab"
PROJECT = Path(__file__).resolve().parents[2]
WANTED = {
    "deploy",
    "plan",
    "rollback",
    "verify",
    "lb.drain",
    "lb.ready",
    "lb.status",
    "db.status",
    "db.switchover",
    "runbook",
    "loadtest",
}


def fab(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(FAB), *args], cwd=PROJECT, capture_output=True, text=True, timeout=120)


def test_fab_lists_every_task_with_its_help():
    listed = fab("--list")
    assert listed.returncode == 0, listed.stderr
    names = {line.split()[0] for line in listed.stdout.splitlines()[1:] if line.startswith("  ") and line.split()}
    assert WANTED <= names, names
    for name in WANTED:
        shown = fab("--help", name)
        assert shown.returncode == 0 and "--inventory" in shown.stdout, (name, shown.stdout)


def test_every_task_documents_each_of_its_arguments_and_calls_an_operation():
    for name in WANTED:
        found = fabtasks.ns[name]
        assert (found.__doc__ or "").strip(), name
        params = [p for p in inspect.signature(found.body).parameters if p != "c"]
        assert "inventory" in params, name
        assert set(params) <= set(found.help), (name, set(params) - set(found.help))
        assert "ops." in inspect.getsource(found.body) or "runner.run" in inspect.getsource(found.body), name


def test_a_bad_input_is_one_line_and_exit_2_before_any_host_is_asked(tmp_path):
    missing = fab("lb.drain", "web-01", "-i", str(tmp_path / "nope.yml"))
    assert missing.returncode == 2 and "nope.yml" in missing.stderr and "Traceback" not in missing.stderr
    bad = fab("runbook", "lb_maintenance", "-p", "server")
    assert bad.returncode == 2 and "give NAME=VALUE" in bad.stderr


def test_a_bad_number_is_one_line_not_a_traceback(tmp_path):
    for args, flag in (
        (("verify", "--requests", "abc"), "--requests 'abc'"),
        (("lb.drain", "web-01", "--timeout", "soon"), "--timeout 'soon'"),
        (("lb.drain", "web-01", "--timeout", "nan"), "drain timeout nan"),
        (("loadtest", "--users", "many"), "--users 'many'"),
    ):
        done = fab(*args, "-i", str(PROJECT / "inventories" / "lab.yml"))
        assert done.returncode == 2 and flag in done.stderr and "Traceback" not in done.stderr, (args, done.stderr)
