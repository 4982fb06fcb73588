"""The foundation on real hosts: the lab, strict SSH, ping, sudo, unreachable and re-keyed hosts.

Tests that break a host put it back before they end.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import yaml

from foobar_ops.core import ssh
from foobar_ops.core.inventory import load_inventory
from foobar_ops.lab import KNOWN_HOSTS, PASSWORD_PATH
from tests.conftest import LAB_INVENTORY, run_cli

HOSTS = ["lb-01", "lb-02", "web-01", "web-02", "loadgen-01", "loadgen-02", "mon-01"]


def lab_copy(tmp_path: Path, edit, name: str = "lab-copy.yml") -> Path:
    """Write a copy of the lab inventory changed by edit(data); return its path."""
    data = yaml.safe_load(LAB_INVENTORY.read_text())
    edit(data)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_ping_all_hosts_ok_with_strict_host_keys(lab, lab_inventory):
    assert all(not h.ssh.trust_new_keys for h in lab_inventory.hosts.values())
    done = run_cli("ping", "-i", LAB_INVENTORY, "--json")
    assert done.code == 0, done
    rows = done.json()["hosts"]
    assert [r["host"] for r in rows] == HOSTS
    for row in rows:
        assert row["outcome"] == "ok" and row["error"] is None, row
        assert row["kernel"] == os.uname().release  # containers share the control machine's kernel
        assert row["rtt_ms"] > 0


def test_ping_table_and_targeting(lab):
    done = run_cli("ping", "-i", LAB_INVENTORY, "--hosts", "group:web")
    assert done.code == 0, done
    lines = done.out.splitlines()
    assert lines[0].split()[:4] == ["HOST", "OUTCOME", "RTT_MS", "KERNEL"]
    assert [ln.split()[0] for ln in lines[1:]] == ["web-01", "web-02"]


def test_hosts_lists_roles(lab):
    done = run_cli("hosts", "-i", LAB_INVENTORY, "--json")
    assert done.code == 0, done
    hosts = {h["name"]: h for h in done.json()["hosts"]}
    assert hosts["lb-01"]["roles"] == hosts["lb-02"]["roles"] == ["haproxy", "keepalived"]
    assert "nginx" in hosts["web-02"]["roles"] and "app" in hosts["web-02"]["roles"]


def test_sudo_uses_the_password_from_its_reference(lab):
    done = run_cli("ping", "-i", LAB_INVENTORY, "--sudo", "--json")
    assert done.code == 0, done
    assert all(r["outcome"] == "ok" for r in done.json()["hosts"])
    outcomes = ssh.run_many(load_inventory(LAB_INVENTORY).select("web-01"), "id -u", sudo=True)
    assert outcomes[0].stdout.strip() == "0"  # the admin user really became root


def test_wrong_sudo_password_is_a_clear_error_without_the_secret(lab, tmp_path, monkeypatch):
    monkeypatch.setenv("FOOBAR_TEST_BAD_SUDO", "definitely-not-the-password-4711")
    inv = lab_copy(tmp_path, lambda d: d["defaults"].update(sudo_password="env:FOOBAR_TEST_BAD_SUDO"))
    done = run_cli("ping", "-i", inv, "--sudo", "--hosts", "web-01", "--json")
    assert done.code != 0
    row = done.json()["hosts"][0]
    assert row["outcome"] == "failed"
    assert "sudo refused the password" in row["error"] and "env:FOOBAR_TEST_BAD_SUDO" in row["error"]
    everything = done.out + done.err
    assert "definitely-not-the-password-4711" not in everything
    assert PASSWORD_PATH.read_text().strip() not in everything


def test_unknown_host_key_is_refused(lab, tmp_path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    inv = lab_copy(tmp_path, lambda d: d["defaults"]["ssh"].update(known_hosts=str(empty)))
    done = run_cli("ping", "-i", inv, "--json")
    assert done.code != 0
    for row in done.json()["hosts"]:
        assert row["outcome"] == "failed"
        assert "is not known" in row["error"] and str(empty) in row["error"]
    assert empty.read_text() == ""  # nothing was silently trusted


def test_trusting_new_keys_is_explicit(lab, tmp_path):
    store = tmp_path / "known_hosts"
    inv = lab_copy(tmp_path, lambda d: d["defaults"]["ssh"].update(known_hosts=str(store), trust_new_keys=True))
    done = run_cli("ping", "-i", inv, "--json")
    assert done.code == 0, done
    recorded = store.read_text()
    for host in load_inventory(LAB_INVENTORY).hosts.values():
        assert host.address in recorded


def test_lab_ssh_runs_as_root_and_passes_the_exit_status(lab):
    done = run_cli("lab", "ssh", "web-01", "--", "sh", "-c", "id -un; hostname; exit 3")
    assert done.code == 3, done
    assert done.out.split() == ["root", "web-01"]


def test_lab_hosts_have_no_route_out(lab):
    for name in HOSTS:
        done = lab.run(name, ["ip", "-4", "route", "show", "default"])
        assert done.returncode == 0 and done.stdout.strip() == "", (name, done.stdout)


def test_offline_apt_install_works_from_the_image_cache(lab):
    done = lab.run(
        "lb-01",
        ["sh", "-c", "DEBIAN_FRONTEND=noninteractive apt-get install -y -q socat >/dev/null && socat -V | head -n 2"],
    )
    assert done.returncode == 0, done.stderr
    assert "socat" in done.stdout


def test_output_lines_are_prefixed_with_the_host(lab, lab_inventory, capsys):
    outcomes = ssh.run_many(lab_inventory.select("web-*"), "printf 'one\\ntwo\\n'", stream=True)
    assert all(o.ok for o in outcomes)
    out = capsys.readouterr().out.splitlines()
    for name in ("web-01", "web-02"):
        assert f"{name} | one" in out and f"{name} | two" in out


def test_proxyjump_from_ssh_config(lab, tmp_path):
    config = tmp_path / "ssh_config"
    config.write_text("Host 10.77.0.11\n    ProxyJump ops@10.77.0.10\n")
    inv_path = lab_copy(tmp_path, lambda d: d["defaults"]["ssh"].update(config=str(config)))
    inv = load_inventory(inv_path)
    # the jump host is an admin source of web-01's firewall for this test (a bastion), then not
    sources = ["10.77.0.1", "10.77.0.10"]
    bastion = lab_copy(tmp_path, lambda d: d["stack"]["firewall"].update(admin_sources=sources), "bastion.yml")
    assert run_cli("apply", "-i", bastion, "firewall", "--hosts", "web-01").code == 0
    try:
        [out] = ssh.run_many(inv.select("web-01"), "echo $SSH_CONNECTION", inventory=inv)
    finally:
        assert run_cli("apply", "-i", LAB_INVENTORY, "firewall", "--hosts", "web-01").code == 0
    assert out.ok, out
    assert out.stdout.split()[0] == "10.77.0.10"  # the session arrived from the jump host


def test_lab_up_again_leaves_running_hosts_alone(lab):
    before = {r["host"]: r["uptime_s"] for r in run_cli("lab", "status", "--json").json()["hosts"]}
    done = run_cli("lab", "up")
    assert done.code == 0, done
    assert done.err.count("already running") == len(HOSTS)
    after = {r["host"]: r["uptime_s"] for r in run_cli("lab", "status", "--json").json()["hosts"]}
    for name in HOSTS:
        assert after[name] >= before[name]  # same boot: uptime kept growing


def test_powered_off_host_is_unreachable_and_others_still_answer(lab, lab_inventory):
    assert run_cli("lab", "down", "web-02").code == 0
    try:
        started = time.monotonic()
        done = run_cli("ping", "-i", LAB_INVENTORY, "--json")
        elapsed = time.monotonic() - started
        assert done.code != 0
        rows = {r["host"]: r for r in done.json()["hosts"]}
        assert rows["web-02"]["outcome"] == "unreachable"
        assert "unreachable" in rows["web-02"]["error"]
        assert rows["lb-01"]["outcome"] == rows["web-01"]["outcome"] == "ok"
        timeout = lab_inventory.hosts["web-02"].ssh.connect_timeout
        assert elapsed < timeout + 5, f"took {elapsed:.1f}s with a {timeout}s connect timeout"
    finally:
        assert run_cli("lab", "up", "web-02").code == 0


def test_changed_host_key_is_refused(lab, tmp_path):
    old = tmp_path / "known_hosts.before"
    shutil.copy(KNOWN_HOSTS, old)
    assert run_cli("lab", "destroy", "web-02").code == 0
    assert run_cli("lab", "up", "web-02").code == 0  # rebuilt: a new host key
    inv = lab_copy(tmp_path, lambda d: d["defaults"]["ssh"].update(known_hosts=str(old)))
    done = run_cli("ping", "-i", inv, "--json")
    assert done.code != 0
    rows = {r["host"]: r for r in done.json()["hosts"]}
    assert rows["web-02"]["outcome"] == "failed"
    assert "CHANGED" in rows["web-02"]["error"] and "10.77.0.12" in rows["web-02"]["error"]
    assert rows["web-01"]["outcome"] == "ok"
    assert run_cli("ping", "-i", LAB_INVENTORY, "--hosts", "web-02").code == 0  # the lab's own file knows the new key


def test_lab_up_clears_what_a_killed_lab_left_behind(lab):
    """A SIGKILLed nspawn leaves an orphaned init, its veth and its overlay mount: `lab up` copes."""
    machine = lab.machines["web-02"]
    os.kill(machine.nspawn_pid(), signal.SIGKILL)
    time.sleep(1)
    assert machine.init_pids(), "the orphaned init should still be running"
    status = {r["host"]: r["state"] for r in run_cli("lab", "status", "--json").json()["hosts"]}
    assert status["web-02"] == "stale"
    done = run_cli("lab", "up")
    assert done.code == 0, done
    assert "clearing leftovers" in done.err
    assert run_cli("ping", "-i", LAB_INVENTORY, "--hosts", "web-02").code == 0


def test_adhoc_run_prefixes_output_lines_and_is_journaled(lab, tmp_path):
    journal = tmp_path / "journal.sqlite"
    done = run_cli(
        "run", "-i", LAB_INVENTORY, "--hosts", "web-*", "--journal", journal, "--", "printf 'one\\ntwo\\n'; hostname"
    )
    assert done.code == 0, done
    lines = done.out.splitlines()
    for name in ("web-01", "web-02"):
        assert f"{name} | one" in lines and f"{name} | two" in lines and f"{name} | {name}" in lines
    failing = run_cli("run", "-i", LAB_INVENTORY, "--journal", journal, "--sudo", "--", "test $(hostname) != lb-01")
    assert failing.code == 1 and "lb-01: failed: exit code 1" in failing.err
    from foobar_ops.core.journal import Journal

    runs = Journal(journal).runs()
    assert list(runs["status"]) == ["failed", "ok"] and list(runs["results"]) == [len(HOSTS), 2]


def test_command_timeout_fails_the_command_not_the_run(lab, lab_inventory):
    outcomes = ssh.run_many(lab_inventory.select("lb-01,web-01"), "sleep 10", timeout=1)
    assert [o.outcome for o in outcomes] == ["failed", "failed"]
    assert all("timed out after 1" in o.error for o in outcomes)


def test_parallel_cap_limits_how_many_hosts_run_at_once(lab, lab_inventory):
    """Each host prints when its command started and ended; a cap of 1 never overlaps them."""
    probe = "date +%s.%N; sleep 0.4; date +%s.%N"

    def spans(cap):
        outcomes = ssh.run_many(lab_inventory.select("all"), probe, cap=cap)
        assert all(o.ok for o in outcomes), outcomes
        return sorted(tuple(map(float, o.stdout.split())) for o in outcomes)

    serial = spans(1)
    assert all(a[1] <= b[0] for a, b in zip(serial, serial[1:], strict=False)), serial
    parallel = spans(3)
    assert any(b[0] < a[1] for a, b in zip(parallel, parallel[1:], strict=False)), parallel
