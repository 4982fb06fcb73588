"""The state engine on real hosts: idempotency, drift, validation, watch, test mode, journal,
secrets. Tests in this module run in order and build on each other's host state (lb-01)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

from foobar_ops.core.journal import Journal
from tests.conftest import LAB_INVENTORY, PROJECT, run_cli, stored_bytes

DEMO = PROJECT / "tests" / "lab" / "statefiles" / "demo.py"
TOKEN = "tok-3f9c1e7a-never-print-me"
CFG = "/etc/haproxy/haproxy.cfg"


@pytest.fixture(scope="module")
def env(lab, tmp_path_factory):
    """An inventory copy with the demo secret and per-test vars, and a private journal."""
    folder = tmp_path_factory.mktemp("engine")
    mp = pytest.MonkeyPatch()
    mp.setenv("FOOBAR_DEMO_TOKEN", TOKEN)
    yield {"dir": folder, "journal": folder / "journal.sqlite", "lab": lab}
    mp.undo()


def inventory(env, **vars_) -> Path:
    data = yaml.safe_load(LAB_INVENTORY.read_text())
    data["secrets"] = {"demo_token": "env:FOOBAR_DEMO_TOKEN"}
    for host in data["hosts"].values():
        host.setdefault("vars", {}).update(vars_)
    path = env["dir"] / f"inv-{abs(hash(json.dumps(vars_, sort_keys=True)))}.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def apply(env, *args, hosts="lb-01", **vars_):
    done = run_cli(
        "apply",
        "-i",
        inventory(env, **vars_),
        "--hosts",
        hosts,
        "--states",
        DEMO,
        "--journal",
        env["journal"],
        "--json",
        *args,
    )
    assert done.out, done
    return done, done.json()


def sh(env, host, script) -> str:
    done = env["lab"].run(host, ["sh", "-c", script])
    assert done.returncode == 0, done.stderr
    return done.stdout


def pending(doc):
    return [r for r in doc["results"] if r["result"] is None and r["changes"]]


def test_apply_twice_second_run_changes_nothing(env):
    first, doc = apply(env)
    assert first.code == 0, first
    assert doc["summary"]["failed"] == 0 and doc["summary"]["changed"] >= 8
    assert sh(env, "lb-01", "systemctl is-active haproxy").strip() == "active"
    second, doc2 = apply(env)
    assert second.code == 0, second
    changed = [r["id"] for r in doc2["results"] if r["changed"]]
    assert changed == [], changed
    assert doc2["round_trips"]["lb-01"] == 1  # a no-op costs one SSH round trip
    # the bytes each connection moved are counted (the first apply uploaded the files: more)
    moved = {run: {h["host"]: h["ssh_bytes"] for h in d["hosts"]} for run, d in (("first", doc), ("no-op", doc2))}
    assert all(0 < n < moved["first"][h] for h, n in moved["no-op"].items()), moved
    _, doc3 = apply(env, "--test")
    assert doc3["test"] is True and pending(doc3) == []


def test_drift_is_reported_by_test_mode_and_fixed_by_apply(env):
    sh(env, "lb-01", f"sed -i 's/timeout client 30s/timeout client 99s/' {CFG}")
    done, doc = apply(env, "--test")
    [change] = pending(doc)
    assert change["id"] == f"file.managed:{CFG}"
    assert "-    timeout client 99s" in change["diff"] and "+    timeout client 30s" in change["diff"]
    assert "99s" in sh(env, "lb-01", f"grep 'timeout client' {CFG}")  # test mode fixed nothing
    done, doc = apply(env)
    assert done.code == 0
    assert {r["id"] for r in doc["results"] if r["changed"]} == {f"file.managed:{CFG}", "service.running:haproxy"}
    assert "30s" in sh(env, "lb-01", f"grep 'timeout client' {CFG}")
    backups = sh(env, "lb-01", "ls /var/backups/foobar-ops/")
    assert "etc%haproxy%haproxy.cfg." in backups  # the previous version was kept


def reloads(env, expect: int | None = None) -> int:
    """Count haproxy reloads in the host's journal (waiting up to 3 s for `expect`, when given)."""
    deadline = time.monotonic() + 3
    while True:
        count = int(sh(env, "lb-01", "journalctl -u haproxy --no-pager | grep -c 'Reloaded' || true").strip())
        if expect is None or count == expect or time.monotonic() > deadline:
            return count
        time.sleep(0.2)


def test_watch_reloads_only_when_the_watched_file_changed(env):
    before = reloads(env)
    apply(env)  # nothing changed
    assert reloads(env) == before
    _, doc = apply(env, demo_motd="an unrelated change")  # a change, but not the watched file
    assert any(r["changed"] for r in doc["results"])
    assert reloads(env) == before
    pid = sh(env, "lb-01", "systemctl show -p MainPID --value haproxy").strip()
    _, doc = apply(env, demo_port=8082)  # the watched config changes
    svc = next(r for r in doc["results"] if r["id"] == "service.running:haproxy")
    assert svc["changed"] and "reloaded" in svc["comment"]
    assert reloads(env, expect=before + 1) == before + 1
    assert sh(env, "lb-01", "systemctl show -p MainPID --value haproxy").strip() == pid  # reload, not restart
    assert "127.0.0.1:8082" in sh(env, "lb-01", "ss -ltnH")
    _, doc = apply(env, demo_port=8082)
    assert reloads(env) == before + 1  # once per change, not once per run


def test_invalid_config_fails_validation_and_changes_nothing(env):
    good = sh(env, "lb-01", f"sha256sum {CFG}")
    pid = sh(env, "lb-01", "systemctl show -p MainPID --value haproxy").strip()
    before = reloads(env)
    done, doc = apply(env, demo_port=8082, demo_balance="no-such-algorithm")
    assert done.code != 0
    cfg = next(r for r in doc["results"] if r["id"] == f"file.managed:{CFG}")
    assert cfg["result"] is False and not cfg["changed"]
    assert "validation failed" in cfg["comment"] and "balance only supports" in cfg["comment"]
    svc = next(r for r in doc["results"] if r["id"] == "service.running:haproxy")
    assert svc["result"] is False and svc["status"] == "not_run"  # dependents are not run
    others = [r for r in doc["results"] if r["id"] not in (cfg["id"], svc["id"])]
    assert all(r["result"] is True for r in others)  # independent states still ran
    assert sh(env, "lb-01", f"sha256sum {CFG}") == good
    assert sh(env, "lb-01", "ls -A /etc/haproxy/").split() == ["errors", "haproxy.cfg"]  # no candidate left
    assert sh(env, "lb-01", "systemctl is-active haproxy").strip() == "active"
    assert sh(env, "lb-01", "systemctl show -p MainPID --value haproxy").strip() == pid
    assert reloads(env) == before
    assert "lb-01" in doc["summary"]["failed_hosts"]


# sudo keeps its own bookkeeping (first-use lecture, ~/.sudo_as_admin_successful, timestamps in
# /var/lib/sudo): the test uses sudo once before the first snapshot, and leaves /var/lib/sudo out.
SNAPSHOT = (
    "dpkg-query -W -f='${Package} ${Version} ${Status}\\n' | sha256sum; getent passwd | sha256sum; "
    "getent group | sha256sum; find /etc /srv /usr /var/lib /var/backups /opt /home /root -xdev "
    "-not -path '/var/lib/systemd/*' -not -path '/var/lib/apt/*' -not -path '/var/lib/sudo/*' "
    "-printf '%p %s %m %U %G %T@\\n' "
    "2>/dev/null | sort | sha256sum; cat /etc/motd | sha256sum; systemctl list-units --all "
    "--no-legend --plain 'haproxy*' | sha256sum"
)


def test_test_mode_leaves_a_host_byte_for_byte_as_it_was(env):
    assert run_cli("ping", "-i", LAB_INVENTORY, "--hosts", "web-02", "--sudo").code == 0
    before = sh(env, "web-02", SNAPSHOT)
    done, doc = apply(env, "--test", hosts="web-02")
    assert doc["test"] is True
    assert len(pending(doc)) >= 6  # a fresh host: nearly everything would change
    assert all(not r["changed"] for r in doc["results"])
    cfg = next(r for r in doc["results"] if r["id"] == "file.managed:/srv/demo/token.conf")
    assert cfg["result"] is None
    assert sh(env, "web-02", SNAPSHOT) == before


def test_journal_holds_every_result_of_every_run_and_no_secret(env):
    j = Journal(env["journal"])
    runs = j.runs()
    assert len(runs) >= 10
    assert set(runs["status"]) >= {"ok", "failed"}
    for run in runs.itertuples():
        frame = j.results(run.run_id)
        assert len(frame) == 10, run.run_id  # every state of lb-01/web-02's demo stack
    failed = runs[runs["status"] == "failed"].iloc[0]
    rows = j.results(failed["run_id"])
    assert (rows["result"] == 0).sum() == 2
    assert failed["inventory_sha256"] and failed["version"] and failed["user"]
    j.close()
    for path in env["journal"].parent.glob("journal.sqlite*"):
        assert TOKEN.encode() not in stored_bytes(path), path
    listing = run_cli("records", "changes", "--journal", env["journal"], "--host", "lb-01", "--json")
    assert listing.code == 0 and len(listing.json()["rows"]) >= 8
    assert TOKEN not in listing.out


def test_secret_never_appears_in_output_diffs_or_errors(env, tmp_path):
    assert TOKEN in sh(env, "lb-01", "cat /srv/demo/token.conf")  # the file itself holds it
    old_secret = "an-old-rotated-secret-4242"  # no mask knows this one: diffs must not show content
    sh(env, "lb-01", f"echo 'token = {old_secret}' > /srv/demo/token.conf")
    done, doc = apply(env, "--test", demo_port=8082)
    [change] = pending(doc)
    assert change["id"] == "file.managed:/srv/demo/token.conf"
    assert "not shown: the file holds secrets" in change["diff"]
    assert TOKEN not in done.out + done.err and old_secret not in done.out + done.err
    text = run_cli(
        "apply", "-i", inventory(env, demo_port=8082), "--hosts", "lb-01", "--states", DEMO, "--journal", env["journal"]
    )
    assert text.code == 0 and TOKEN not in text.out + text.err and old_secret not in text.out + text.err
    failing = tmp_path / "leaky.py"
    failing.write_text(
        "from foobar_ops import states as s\n"
        "def states(host, inventory):\n"
        "    inventory.secret('demo_token').reveal()\n"
        "    return [s.cmd.run('cat /srv/demo/token.conf; exit 3')]\n"
    )
    done = run_cli(
        "apply", "-i", inventory(env), "--hosts", "lb-01", "--states", failing, "--journal", env["journal"], "--json"
    )
    assert done.code != 0
    [result] = done.json()["results"]
    assert result["result"] is False and "********" in result["comment"]
    assert TOKEN not in done.out + done.err
    for path in env["journal"].parent.glob("journal.sqlite*"):
        assert TOKEN.encode() not in stored_bytes(path) and old_secret.encode() not in stored_bytes(path)


def test_unreachable_host_fails_alone(env):
    env["lab"].down(["web-02"])
    try:
        done, doc = apply(env, hosts="lb-01,web-02")
        assert done.code != 0
        assert doc["summary"]["failed_hosts"] == ["web-02"] and doc["summary"]["unreachable"] == 1
        outcome = {h["host"]: h for h in doc["hosts"]}
        assert outcome["web-02"]["outcome"] == "unreachable" and "unreachable" in outcome["web-02"]["error"]
        assert outcome["lb-01"]["outcome"] == "ok"
        assert [r for r in doc["results"] if r["host"] == "web-02"] == []  # no state was attempted there
        assert all(r["result"] is True for r in doc["results"] if r["host"] == "lb-01")
        outcomes = Journal(env["journal"]).outcomes(doc["run_id"])  # the journal holds the outcome too
        assert dict(zip(outcomes["host"], outcomes["outcome"], strict=True)) == {"lb-01": "ok", "web-02": "unreachable"}
    finally:
        env["lab"].up(["web-02"])


def test_a_wrong_sudo_password_fails_the_host_clearly_and_changes_nothing(env, monkeypatch):
    monkeypatch.setenv("FOOBAR_TEST_BAD_SUDO", "not-the-sudo-password-8086")
    path = inventory(env, demo_motd="a change that must not happen")
    data = yaml.safe_load(path.read_text())
    data["defaults"]["sudo_password"] = "env:FOOBAR_TEST_BAD_SUDO"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    before = sh(env, "lb-01", "md5sum /etc/motd")
    done = run_cli("apply", "-i", path, "--hosts", "lb-01", "--states", DEMO, "--journal", env["journal"], "--json")
    assert done.code != 0
    doc = done.json()
    assert doc["results"] == []  # nothing could be attempted as root
    [outcome] = doc["hosts"]
    assert outcome["outcome"] == "failed" and "sudo refused the password" in outcome["error"]
    assert "env:FOOBAR_TEST_BAD_SUDO" in outcome["error"]
    assert "not-the-sudo-password-8086" not in done.out + done.err
    assert sh(env, "lb-01", "md5sum /etc/motd") == before
