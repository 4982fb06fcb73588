"""Faults and concurrency on the deployed stack: two runs at once, a run killed (SIGKILL, SIGTERM)
or cut off mid-change, a journal that stops taking records, a host powered off mid-run, a write
whose first server fails after committing. Each leaves the site serving and the records true."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml

from foobar_ops.core.errors import FoobarOpsError
from foobar_ops.core.inventory import load_inventory
from foobar_ops.stack.lb import HAProxy
from tests.conftest import FOOBAR_OPS, LAB_INVENTORY, PROJECT, run_cli
from tests.lab.helpers import LAB_CA, Traffic, apply, get, inventory_with, post, request_from

WEB = ["web-01", "web-02"]


@pytest.fixture(scope="module")
def site(lab):
    """The stack as the lab inventory says, both servers UP."""
    done, doc = apply()
    assert done.code == 0, json.dumps([r for r in doc["results"] if r["result"] is False], indent=1)
    with HAProxy(load_inventory(LAB_INVENTORY), record=False) as lb:
        for name in WEB:  # whatever an earlier test left out of rotation
            lb.ready(name)
    assert wait_all_up() == {"web-01": "UP", "web-02": "UP"}
    release = get("/health")["release"]
    yield {"lab": lab, "inv": load_inventory(LAB_INVENTORY), "release": release}
    wait_all_up()


def wait_all_up(timeout: float = 60) -> dict[str, str]:
    with HAProxy(load_inventory(LAB_INVENTORY), record=False) as lb:
        return lb.wait_all_up(timeout=timeout)


class LBWatch:
    """Polls the load balancer's servers in the background: every status seen, and whether there
    was a moment when no web server was UP."""

    def __init__(self, every: float = 0.1) -> None:
        self.every, self.seen, self.none_up = every, [], []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.lb = HAProxy(load_inventory(LAB_INVENTORY), record=False)

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                rows = {n: str(r["status"]) for n, r in self.lb.servers().items()}
            except FoobarOpsError:  # its own connection was cut too: look again
                self.lb.close()
                continue
            self.seen.append(rows)
            if not any(s.startswith("UP") for s in rows.values()):
                self.none_up.append(rows)
            time.sleep(self.every)

    def wait_for(self, status: str, timeout: float = 120) -> str:
        """Wait until a web server has `status`; return its name."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.seen:
                for name, got in self.seen[-1].items():
                    if got == status:
                        return name
            time.sleep(0.05)
        raise AssertionError(f"no server became {status} in {timeout} s: last seen {self.seen[-1:]}")

    def __enter__(self) -> LBWatch:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)
        self.lb.close()


def start_apply(inv: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [str(FOOBAR_OPS), "apply", "-i", str(inv), "--json", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=PROJECT,
        env=env,
    )


def finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def marks(lab) -> list[dict]:
    listing = lab.run("lb-01", ["sh", "-c", "cat /var/lib/foobar-ops/drains/* 2>/dev/null; true"]).stdout
    return [json.loads(line) for line in listing.splitlines() if line.strip()]


def leftovers(lab, host: str) -> list[str]:
    found = lab.run(host, ["sh", "-c", "ls -d /tmp/.foobar-* 2>/dev/null; true"]).stdout.split()
    return found


# --- one change at a time -------------------------------------------------------------------------


def test_two_applies_at_once_one_is_refused_naming_the_other_and_never_both_servers_drained(site, tmp_path):
    for build in ("11", "12"):  # a loop: each time both runs have a rolling change to make
        inv = inventory_with(tmp_path, WEB, app_build=build)
        with Traffic() as traffic, LBWatch() as watch:
            runs = [start_apply(inv), start_apply(inv)]
            (code_a, out_a, err_a), (code_b, out_b, err_b) = [finish(p) for p in runs]
        codes = sorted([code_a, code_b])
        assert codes == [0, 2], (code_a, err_a[-500:], code_b, err_b[-500:])
        winner_out, loser_err = (out_a, err_b) if code_a == 0 else (out_b, err_a)
        winner = json.loads(winner_out)
        assert f"is locked by run {winner['run_id']}" in loser_err and "this run changed nothing" in loser_err
        assert watch.none_up == [], watch.none_up[:3]  # never both servers out at once
        assert traffic.failures == [], traffic.failures[:3]
        assert {get("/health")["release"] for _ in range(6)} == {f"{site['release']}-b{build}"}
    done, doc = apply()  # back to the inventory's release
    assert done.code == 0


def test_a_run_waits_for_the_lock_when_asked(site, tmp_path):
    holder = start_apply(LAB_INVENTORY, "--states", str(sleeper(tmp_path, 4)), "--hosts", "loadgen-01")
    wait_running(site["lab"], holder, "loadgen-01", "sleep 4")  # it holds the lock
    started = time.monotonic()
    done = run_cli("apply", "-i", LAB_INVENTORY, "--hosts", "loadgen-01", "--wait", "30", "--json")
    assert done.code == 0, done
    assert time.monotonic() - started > 1.0  # it waited for the first run
    assert finish(holder)[0] == 0


def wait_running(lab, proc: subprocess.Popen, host: str, command: str, timeout: float = 60) -> None:
    """Wait until `command` runs on `host` (a state of the run `proc` has begun)."""
    deadline = time.monotonic() + timeout
    while lab.run(host, ["pgrep", "-fx", command]).returncode != 0:
        assert proc.poll() is None and time.monotonic() < deadline, f"`{command}` never started on {host}"
        time.sleep(0.1)


def sleeper(tmp_path: Path, seconds: float) -> Path:
    path = tmp_path / "sleeper.py"
    path.write_text(
        "from foobar_ops import states as s\n\n"
        "def states(host, inventory):\n"
        f"    return [s.cmd.run('sleep {seconds}', label='sleep', id='sleep'), "
        "s.cmd.run('true', label='after', id='after')]\n"
    )
    return path


# --- nothing left drained -------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_apply_killed_while_a_server_is_drained_leaves_nothing_drained(site, tmp_path, how):
    inv = inventory_with(tmp_path, WEB, app_build=f"k{how[3:].lower()}")
    lab = site["lab"]
    with Traffic(writes=f"kill-{how}") as traffic, LBWatch() as watch:
        proc = start_apply(inv)
        drained = watch.wait_for("DRAIN")
        proc.send_signal(getattr(signal, how))
        code, out, err = finish(proc, timeout=120)
        if how == "SIGTERM":  # handled like Ctrl-C: the run itself puts the server back
            assert code == 143, err[-800:]
            assert wait_all_up()[drained] == "UP", (err[-800:], marks(lab))
            assert marks(lab) == []
        else:  # nothing could run: the server stays drained, with the dead run's mark
            assert code == -9
            assert [m["server"] for m in marks(lab)] == [drained]
        done, doc = apply(inv)  # the next run puts back what was left, before anything else
        assert done.code == 0, json.dumps([r for r in doc["results"] if r["result"] is False], indent=1)
    if how == "SIGKILL":
        first = doc["results"][0]
        assert first["id"] == f"haproxy.server:bk_web/{drained}:ready" and "put back" in first["comment"]
    # every server runs the new release: a restart the killed run owed was made by the next one
    assert {get("/health")["release"] for _ in range(6)} == {f"{site['release']}-bk{how[3:].lower()}"}
    assert marks(lab) == []
    assert wait_all_up() == {"web-01": "UP", "web-02": "UP"}
    assert watch.none_up == []
    assert traffic.failures == [], traffic.failures[:3]
    for host in WEB:
        assert leftovers(lab, host) == []  # upload folders of the killed run were cleaned up
    again, doc = apply(inv)
    assert again.code == 0 and [r["id"] for r in doc["results"] if r["changed"]] == []


def test_a_connection_cut_mid_change_loses_no_outcome_and_leaves_nothing_drained(site, tmp_path):
    inv = inventory_with(tmp_path, WEB, app_build="cut")
    lab = site["lab"]
    with Traffic(writes="cut") as traffic, LBWatch() as watch:
        proc = start_apply(inv)
        drained = watch.wait_for("DRAIN")
        for host in ("lb-01", drained):  # every SSH session of the run's user there is cut
            lab.run(host, ["pkill", "-KILL", "-f", "sshd: ops"])
        code, out, err = finish(proc, timeout=300)
    # the run connected again, took its locks again, read back what it could not see, and finished
    assert code == 0, (err[-800:], [r for r in json.loads(out)["results"] if r["result"] is False])
    assert marks(lab) == []
    assert wait_all_up() == {"web-01": "UP", "web-02": "UP"}
    assert watch.none_up == []
    assert traffic.failures == [], traffic.failures[:3]
    assert {get("/health")["release"] for _ in range(6)} == {f"{site['release']}-bcut"}
    again, doc = apply(inv)
    assert again.code == 0 and [r["id"] for r in doc["results"] if r["changed"]] == []


#: a change that cuts its own SSH connection (it kills the sshd process serving it), then goes on
CUT_OWN_CONNECTION = (
    'p=$$; while [ "$p" -gt 1 ]; do '
    '[ "$(cat /proc/$p/comm)" = sshd ] && { kill -9 $p; break; }; '
    "p=$(awk '{print $4}' /proc/$p/stat); done; sleep 1; date +%s%N > /srv/cut-proof"
)


def test_a_connection_cut_while_a_change_runs_loses_no_outcome(site, tmp_path):
    states = tmp_path / "cut.py"
    states.write_text(
        "from foobar_ops import states as s\n\n"
        "def states(host, inventory):\n"
        f"    return [s.cmd.run({CUT_OWN_CONNECTION!r}, label='cut', id='cut'),\n"
        "            s.cmd.run('cat /srv/cut-proof', label='after', id='after', require=['cut'])]\n"
    )
    done = run_cli("apply", "-i", LAB_INVENTORY, "--hosts", "web-02", "--states", states, "--json")
    assert done.code == 0, done
    by = {r["id"]: r for r in done.json()["results"]}
    assert by["cut"]["status"] == "changed" and "outcome read back after the connection was cut" in by["cut"]["comment"]
    assert by["after"]["status"] == "changed"  # the run went on, on a new connection
    site["lab"].run("web-02", ["rm", "-f", "/srv/cut-proof"])
    listing = site["lab"].run("web-02", ["sh", "-c", "ls /var/lib/foobar-ops/outcomes/ 2>/dev/null; true"]).stdout
    assert listing.split() == []  # the outcomes read back were removed


def test_a_journal_made_read_only_mid_run_never_keeps_a_server_out(site, tmp_path):
    inv = inventory_with(tmp_path, WEB, app_build="ro")
    folder = tmp_path / "records"
    folder.mkdir()
    journal = folder / "journal.sqlite"
    with LBWatch() as watch:
        proc = start_apply(inv, "--journal", str(journal))
        watch.wait_for("DRAIN")
        # read-only for root too: a read-only bind mount over the journal's folder
        subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
        try:
            # the remount is refused ("busy") while the run has the journal open for a write
            deadline = time.monotonic() + 30
            while subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], capture_output=True).returncode:
                assert time.monotonic() < deadline, "the journal's folder could not be made read-only"
                time.sleep(0.02)
            code, out, err = finish(proc, timeout=300)
        finally:
            subprocess.run(["umount", str(folder)], check=True)
    doc = json.loads(out)
    assert code == 1 and doc["journal_errors"], err[-500:]
    assert "cannot write" in err and "journal" in err
    assert wait_all_up() == {"web-01": "UP", "web-02": "UP"}  # put back despite the journal
    assert watch.none_up == []
    assert doc["summary"]["failed"] == 0  # the change itself went through
    # the records kept aside reach the journal once it can be written again
    from foobar_ops.core.journal import Journal

    j = Journal(journal)
    assert not Path(str(journal) + ".spool.jsonl").exists()
    run = j.run(doc["run_id"])
    assert run is not None and run["status"] == "failed"  # finished, and flagged
    assert len(j.results(doc["run_id"])) == len(doc["results"])
    j.close()
    apply()  # back to the inventory's release


def test_a_journal_that_cannot_start_a_run_refuses_it_before_any_host_is_touched(site, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)], check=True)
    try:
        done = run_cli("apply", "-i", LAB_INVENTORY, "--journal", folder / "journal.sqlite")
    finally:
        subprocess.run(["umount", str(folder)], check=True)
    assert done.code == 2 and "journal" in done.err


def test_a_host_powered_off_mid_run_is_unreachable_within_seconds_and_the_others_finish(site, tmp_path):
    lab = site["lab"]
    veth = lab.pick(["loadgen-01"])[0].veth
    proc = start_apply(LAB_INVENTORY, "--states", str(sleeper(tmp_path, 6)))
    wait_running(lab, proc, "loadgen-01", "sleep 6")  # mid-run: its facts are in, its first state runs
    started = time.monotonic()
    subprocess.run(["ip", "link", "set", veth, "down"], check=True)  # as if its power cord was pulled
    try:
        code, out, err = finish(proc, timeout=200)
        elapsed = time.monotonic() - started
    finally:
        subprocess.run(["ip", "link", "set", veth, "up"], check=True)
    doc = json.loads(out)
    hosts = {h["host"]: h for h in doc["hosts"]}
    assert code == 1 and hosts["loadgen-01"]["outcome"] == "unreachable", hosts
    assert all(hosts[h]["outcome"] == "ok" for h in ("lb-01", "web-01", "web-02"))
    connect = site["inv"].hosts["loadgen-01"].ssh.connect_timeout
    assert elapsed < 3 * connect + 10, f"{elapsed:.1f} s to give up a dead host ({connect} s connect timeout)"
    after = [r for r in doc["results"] if r["host"] == "loadgen-01" and r["id"] == "after"]
    assert after and after[0]["status"] == "not_run"
    deadline = time.monotonic() + 30
    while run_cli("ping", "-i", LAB_INVENTORY, "--hosts", "loadgen-01").code != 0 and time.monotonic() < deadline:
        time.sleep(1)


# --- correctness and exposure ---------------------------------------------------------------------


def test_a_post_whose_first_server_fails_after_committing_is_stored_once(site):
    lab = site["lab"]
    # web-01 commits every POST (a mirrored copy reaches the app) and answers 503 all the same
    broken = r"""
server { listen 127.0.0.1:8099; return 503; }
server {
    listen 10.77.0.11:80;
    server_name foobar.com;
    location = /api/items { mirror /commit; proxy_pass http://127.0.0.1:8099; }
    location = /commit { internal; proxy_pass http://127.0.0.1:8000/api/items; }
    location / { proxy_pass http://127.0.0.1:8000; proxy_set_header Host $host; }
}
"""
    site_file = "/etc/nginx/sites-enabled/foobar.conf"
    lab.run("web-01", ["cp", site_file, "/root/foobar.conf.saved"])
    lab.run("web-01", ["sh", "-c", f"cat > {site_file} <<'EOF'\n{broken}\nEOF\nnginx -t && systemctl restart nginx"])
    try:
        answers = []
        for i in range(6):  # round robin: about half reach web-01
            name = f"once-{os.getpid()}-{i}"
            answers.append((name, post(json.dumps({"name": name}).encode())))
    finally:
        lab.run("web-01", ["sh", "-c", f"cp /root/foobar.conf.saved {site_file} && systemctl restart nginx"])
    assert any(a["status"] == 503 for _, a in answers)  # the fault really happened
    time.sleep(1)
    for name, answer in answers:
        rows = lab.run("web-01", ["mysql", "-NB", "foobar", "-e", f"SELECT COUNT(*) FROM items WHERE name = '{name}'"])
        assert rows.stdout.strip() == "1", (name, answer["status"], rows.stdout)  # never doubled
    done, doc = apply()
    assert done.code == 0 and not [r for r in doc["results"] if r["changed"]]  # the site file is back


def test_nginx_answers_only_the_sites_name_on_its_own_address_and_hides_its_version(site):
    lab = site["lab"]
    listening = lab.run("web-01", ["ss", "-Hltn", "sport = :80"]).stdout.split()
    assert "10.77.0.11:80" in listening and "0.0.0.0:80" not in listening and "*:80" not in listening
    # asked from a load balancer (web-01's firewall lets no one else reach its port 80): the
    # connection is made, and Nginx closes it without an answer (curl: 52, empty reply), not a
    # dropped connection (28, timeout)
    ask = ["curl", "-s", "--max-time", "5", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Host: not-foobar.example"]
    other = lab.run("lb-01", [*ask, "http://10.77.0.11/"])
    assert other.stdout == "000" and other.returncode == 52, (other.returncode, other.stdout, other.stderr)
    headers = subprocess.run(
        ["curl", "-sI", "--cacert", str(LAB_CA), "--resolve", "foobar.com:443:10.77.0.10", "https://foobar.com/"],
        capture_output=True,
        text=True,
    ).stdout.lower()
    assert "server: nginx\n" in headers  # no version
    # the app sees the client's address through the load balancer (X-Forwarded-For)
    served = get("/")["served_by"]
    lines = lab.run(served, ["tail", "-n", "20", "/var/log/nginx/foobar.access.log"]).stdout.splitlines()
    mine = [ln for ln in lines if '"GET / HTTP/1.1"' in ln]  # (the others are the LB's health checks)
    assert mine and mine[-1].startswith("10.77.0.1 - "), lines


def test_a_reload_keeps_an_operators_maint(site, tmp_path):
    assert run_cli("lb", "maint", "web-02", "-i", LAB_INVENTORY).code == 0
    try:
        inv = inventory_with(tmp_path, "lb-01", haproxy_timeout_server="31s")
        done, doc = apply(inv, "haproxy")
        assert done.code == 0 and any(r["id"] == "haproxy:config" and r["changed"] for r in doc["results"])
        with HAProxy(load_inventory(LAB_INVENTORY), record=False) as lb:
            assert lb.servers()["web-02"]["status"] == "MAINT"  # the reload did not undo it
    finally:
        assert run_cli("lb", "ready", "web-02", "-i", LAB_INVENTORY).code == 0
    assert apply(LAB_INVENTORY, "haproxy")[0].code == 0
    wait_all_up()


def test_sudo_runs_the_whole_command_line_as_root(site):
    done = run_cli("run", "-i", LAB_INVENTORY, "--hosts", "web-01", "--sudo", "--", "id -u && id -u; id -u")
    assert done.code == 0, done
    assert [ln.split("|")[-1].strip() for ln in done.out.splitlines()] == ["0", "0", "0"]


def test_an_upload_that_fails_on_a_full_temporary_folder_fails_that_state_and_the_run_goes_on(site, tmp_path):
    lab = site["lab"]
    lab.run("lb-01", ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", "/tmp"])
    try:
        lab.run("lb-01", ["sh", "-c", "dd if=/dev/zero of=/tmp/fill bs=1k count=64 2>/dev/null; true"])
        states = tmp_path / "big.py"
        states.write_text(
            "from foobar_ops import states as s\n\n"
            "def states(host, inventory):\n"
            "    return [s.file.managed('/srv/big.bin', b'x' * 200_000, id='big'),\n"
            "            s.cmd.run('true', label='after', id='after')]\n"
        )
        done = run_cli("apply", "-i", LAB_INVENTORY, "--hosts", "lb-01,web-01", "--states", states, "--json")
    finally:
        lab.run("lb-01", ["umount", "/tmp"])
    doc = done.json()
    by = {(r["host"], r["id"]): r for r in doc["results"]}
    assert by[("lb-01", "big")]["status"] == "failed" and "Error" in by[("lb-01", "big")]["comment"]
    assert by[("lb-01", "after")]["status"] == "changed"  # independent states still run
    assert by[("web-01", "big")]["status"] == "changed"  # and other hosts
    lab.run("web-01", ["rm", "-f", "/srv/big.bin"])


def test_an_app_password_with_a_backslash_quotes_and_a_trailing_space_still_logs_in(site, tmp_path):
    secret = tmp_path / "app_password"
    secret.write_text("pa\\ss\"wo'rd $HOME % ")  # a backslash, both quotes, a $, a %, a trailing space
    secret.chmod(0o600)
    data = yaml.safe_load(LAB_INVENTORY.read_text())
    data["secrets"]["mysql_app_password"] = f"file:{secret}"
    odd = tmp_path / "odd.yml"
    odd.write_text(yaml.safe_dump(data, sort_keys=False))
    try:
        done, doc = apply(odd, "mysql", "app")
        assert done.code == 0, json.dumps([r for r in doc["results"] if r["result"] is False], indent=1)
        assert secret.read_text() not in done.out + done.err
        for host in WEB:  # each app logs in with it: reads and writes work on both
            health = request_from(site["lab"], "lb-01", site["inv"].hosts[host].address, "/health")[0]
            assert health["status"] == 200, health
            checks = json.loads(health["body"])["checks"]
            assert checks["db_read"].startswith("ok") and checks["db_write"].startswith("ok"), checks
        assert post(json.dumps({"name": f"odd-password-{os.getpid()}"}).encode())["status"] == 201
    finally:
        assert apply(LAB_INVENTORY, "mysql", "app")[0].code == 0


def test_the_app_account_ends_with_exactly_its_privileges(site):
    lab = site["lab"]
    extra = "GRANT PROCESS ON *.* TO 'foobar'@'10.77.0.12'; GRANT SELECT ON mysql.* TO 'foobar'@'10.77.0.12'"
    lab.run("web-01", ["mysql", "-e", extra])  # on the primary: replicated
    done, doc = apply(LAB_INVENTORY, "mysql")
    assert done.code == 0
    fixed = [r for r in doc["results"] if r["changed"] and r["id"] == "mysql:user:web-02"]
    assert fixed, [r["id"] for r in doc["results"] if r["changed"]]
    grants = lab.run("web-01", ["mysql", "-NBe", "SHOW GRANTS FOR 'foobar'@'10.77.0.12'"]).stdout
    assert "PROCESS" not in grants and "`mysql`" not in grants
    assert "GRANT SELECT, INSERT ON `foobar`.*" in grants  # what the app uses, no more (no UPDATE/DELETE)
    again, doc = apply(LAB_INVENTORY, "mysql")
    assert again.code == 0 and not [r for r in doc["results"] if r["changed"]]


def test_health_and_error_pages_never_show_database_errors(site):
    lab = site["lab"]
    lab.run("web-02", ["systemctl", "stop", "mariadb"])
    try:
        seen = b""
        for path in ("/health", "/api/items", "/"):
            answer = request_from(lab, "lb-01", "10.77.0.12", path)[0]
            seen += answer["body"]
        for leak in (b"foobar@", b"10.77.0.", b"Can't connect", b"pymysql", b"Traceback", b"OperationalError"):
            assert leak not in seen, (leak, seen[:500])
    finally:
        lab.run("web-02", ["systemctl", "start", "mariadb"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if request_from(lab, "lb-01", "10.77.0.12", "/health")[0]["status"] == 200:
            break
        time.sleep(1)
    apply()  # replication resumes as it was


def test_rollback_twice_goes_one_release_further_back_each_time(site, tmp_path):
    base = site["release"]
    for build in ("r1", "r2"):
        assert apply(inventory_with(tmp_path, WEB, app_build=build))[0].code == 0
    releases = lambda: {get("/health")["release"] for _ in range(6)}
    assert releases() == {f"{base}-br2"}
    assert run_cli("rollback", "-i", LAB_INVENTORY).code == 0
    assert releases() == {f"{base}-br1"}
    assert run_cli("rollback", "-i", LAB_INVENTORY).code == 0  # not back to r2: further back
    assert releases() != {f"{base}-br2"} and releases() != {f"{base}-br1"}
    assert apply()[0].code == 0
    assert releases() == {base}


def test_steady_traffic_through_faults_loses_and_doubles_no_acknowledged_write(site, tmp_path):
    """A backend killed, a reload, a rolling deploy and a cut SSH connection, under steady traffic
    through the load balancer: every acknowledged write is stored exactly once."""
    lab = site["lab"]
    tag = f"faults-{os.getpid()}"
    with Traffic(writes=tag, max_seconds=240, every=3) as traffic, LBWatch() as watch:
        lab.run("web-02", ["pkill", "-KILL", "-f", "gunicorn"])  # a backend killed
        time.sleep(3)
        lab.run("web-02", ["systemctl", "start", "foobar-app"])
        assert wait_all_up() == {"web-01": "UP", "web-02": "UP"}
        reload_inv = inventory_with(tmp_path, "lb-01", haproxy_timeout_server="29s")
        assert apply(reload_inv, "haproxy")[0].code == 0  # a reload
        deploy = start_apply(inventory_with(tmp_path, WEB, app_build="faults"))  # a rolling deploy
        drained = watch.wait_for("DRAIN")
        lab.run(drained, ["pkill", "-KILL", "-f", "sshd: ops"])  # its SSH connection cut mid-change
        code, out, err = finish(deploy)
        doc = json.loads(out or "{}")
        assert code == 0, (err[-800:], [r for r in doc.get("results", []) if not r["result"]], doc.get("hosts"))
        assert apply()[0].code == 0  # back to the inventory's release and haproxy config
    rows = lab.run("web-01", ["mysql", "-NB", "foobar", "-e", f"SELECT name FROM items WHERE name LIKE '{tag}-%'"])
    stored = rows.stdout.split()
    acknowledged = traffic.acknowledged
    print(
        f"\nfault run: {len(traffic.results)} requests, {len(traffic.failures)} failed "
        f"({len(traffic.read_failures)} reads), {len(acknowledged)} writes acknowledged, {len(stored)} stored"
    )
    assert sorted(set(stored)) == sorted(stored)  # none doubled
    assert set(acknowledged) <= set(stored)  # none lost
    assert watch.none_up == []
    assert traffic.read_failures == [], traffic.read_failures[:3]
