"""What a scheduler host is given, without hosts: the files the inventory names, each secret one
private (0600) and never shown in a diff or a change; an env: secret, which cannot travel, refused
by name (the lab test proves a second schedule changes nothing)."""

from __future__ import annotations

import json

import pytest

from foobar_ops.core.errors import ScheduleError
from foobar_ops.core.facts import FileInfo
from foobar_ops.stack import load_inventory, scheduler
from foobar_ops.stack.build import AppBuild

from .inventories import lab_doc, write_doc

VALUE = "db-pw-never-shown-7f3a"


@pytest.fixture
def inv(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_SUDO", "a-long-enough-sudo-secret")
    secret = tmp_path / "db.pw"
    secret.write_text(VALUE + "\n")
    doc = lab_doc()
    doc["secrets"] = {"mysql_app_password": f"file:{secret}", "mysql_repl_password": f"file:{secret}"}
    doc["defaults"]["sudo_password"] = f"file:{secret}"
    doc["defaults"].setdefault("ssh", {}).pop("identity", None)
    doc["stack"]["scheduler"] = "loadgen-01"
    return load_inventory(write_doc(tmp_path, doc)), secret


def test_secret_files_go_private_and_are_never_shown(inv, tmp_path):
    inventory, secret = inv
    wheel = tmp_path / "foobar_ops-0.0.0-py3-none-any.whl"
    wheel.write_bytes(b"wheel")
    states = scheduler.runner_states(inventory, AppBuild("0.0.0", "foobar_ops-0.0.0-x", (wheel,)), {"a.py": "x"})
    [carried] = [st for st in states if st.id == f"runner:carried:{secret}"]
    assert carried.mode == "0600" and carried.sensitive
    for live in (FileInfo("absent"), FileInfo("file", "root", "root", "0600", 3, "0" * 64, b"old")):
        plan = carried.plan(live)
        assert VALUE not in json.dumps(plan.changes) + (plan.diff or "")
        assert "sha256" not in json.dumps(plan.changes)


def test_an_env_secret_cannot_travel_to_the_scheduler_and_is_named(inv, monkeypatch):
    inventory, _ = inv
    monkeypatch.setenv("TEST_DB_PW", "a-long-enough-db-secret")
    inventory.secrets["mysql_app_password"] = type(inventory.secrets["mysql_app_password"])("env:TEST_DB_PW")
    with pytest.raises(ScheduleError, match="secret mysql_app_password is env:TEST_DB_PW"):
        scheduler.carried(inventory)
