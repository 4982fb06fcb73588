"""The command line without hosts: inventory errors reach the user as one clear line, exit 2."""

from __future__ import annotations

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
