"""Every runbook run by the runner on the lab, ending with its verification passing and its HTML
written; parameter errors refused before any cell runs; a rolling deploy under traffic, and one of
a broken release that stops after the first server and rolls it back; a saved plan refused where a
host drifted; a secret passed by reference found nowhere; two runner processes writing one
journal on the lab's MariaDB. Tests run in order on one deployment."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from foobar_ops import load_inventory
from foobar_ops.core.journal import Journal
from foobar_ops.stack.lb import HAProxy
from tests.conftest import FOOBAR_OPS, LAB_INVENTORY, PROJECT, run_cli, stored_bytes
from tests.lab.helpers import Traffic, apply, get


def runbook(name: str, *args: str, inv=LAB_INVENTORY, timeout: float = 900) -> dict:
    done = run_cli("runbook", name, "-i", inv, *args, "--json", timeout=timeout)
    doc = json.loads(done.out)
    assert done.code == {"ok": 0, "failed": 1, "refused": 2, "timeout": 3, "kernel-died": 4}[doc["outcome"]]
    doc["code"] = done.code
    return doc


def passed(doc: dict) -> dict:
    assert doc["outcome"] == "ok", doc
    assert Path(doc["output_notebook"]).exists() and Path(doc["html"]).exists()
    assert "foobar-ops-error" not in Path(doc["output_notebook"]).read_text()
    return doc


def releases(n: int = 8) -> set[str]:
    return {get("/health")["release"] for _ in range(n)}


@pytest.fixture(scope="module")
def site(lab, tmp_path_factory):
    done, _ = apply()
    assert done.code == 0, done
    folder = tmp_path_factory.mktemp("runbooks")
    copy = folder / "lab.yml"
    shutil.copy(LAB_INVENTORY, copy)
    yield {"lab": lab, "dir": folder, "inv": copy}
    lab.up()
    if "mysql_role: primary" not in copy.read_text().split("web-01:")[1].split("web-02:")[0]:
        run_cli("db", "switchover", "-i", copy, "--to", "web-01", timeout=300)
    apply()


def test_deploy_stack_plans_applies_that_plan_and_verifies(site):
    doc = passed(runbook("deploy_stack"))
    runs = Journal().runs(20)
    mine = runs[runs["output_notebook"] == doc["output_notebook"]]
    assert set(mine["runbook"]) == {"deploy_stack"}
    assert len(mine) >= 3  # the runner's own run, the plan, the apply of that plan
    text = Path(doc["output_notebook"]).read_text()
    assert "plan.json" in text and "served by web-01" in text and "web-02" in text


def test_a_parameter_error_is_refused_before_any_cell_and_changes_nothing(site):
    with HAProxy(load_inventory(LAB_INVENTORY), record=False) as lb:
        before = {n: r["status"] for n, r in lb.servers().items()}
        doc = runbook("lb_maintenance", "-p", "server", "web-01", "-p", "action", "explode")
        assert doc["outcome"] == "refused" and doc["code"] == 2 and "'action'" in doc["error"]
        assert "drain" in doc["error"] and doc["output_notebook"] is None
        doc = runbook("lb_maintenance", "-p", "sever", "web-01")
        assert doc["outcome"] == "refused" and "unknown parameter 'sever' (did you mean 'server'?)" in doc["error"]
        assert {n: r["status"] for n, r in lb.servers().items()} == before
    row = Journal().run(doc["run_id"])
    assert row["status"] == "refused" and "sever" in row["error"]


def test_lb_maintenance_drains_and_readies_a_server(site):
    doc = passed(runbook("lb_maintenance", "-p", "server", "web-02", "-p", "action", "drain"))
    assert "web-02 drained in" in Path(doc["output_notebook"]).read_text()
    passed(runbook("lb_maintenance", "-p", "server", "web-02", "-p", "action", "ready"))
    with HAProxy(load_inventory(LAB_INVENTORY), record=False) as lb:
        assert {r["status"] for r in lb.servers().values()} == {"UP"}


def test_a_direct_papermill_run_of_lb_maintenance_works_warns_of_nothing_and_is_journaled(site, tmp_path):
    from foobar_ops.runbooks.runner import ensure_kernel

    def papermill(action: str) -> subprocess.CompletedProcess:
        out = tmp_path / f"lb_maintenance-{action}.ipynb"
        args = ["-p", "inventory", str(LAB_INVENTORY), "-p", "server", "web-02", "-p", "action", action]
        book = "runbooks/lb_maintenance.ipynb"
        done = subprocess.run(
            [sys.executable, "-m", "papermill", book, str(out), *args, "-k", ensure_kernel()],
            cwd=PROJECT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert "unknown parameter" not in done.stderr.lower(), done.stderr
        return done

    papermill("drain")
    with HAProxy(load_inventory(LAB_INVENTORY), record=False) as lb:
        assert lb.servers()["web-02"]["status"] == "DRAIN"
    papermill("ready")
    with HAProxy(load_inventory(LAB_INVENTORY), record=False) as lb:
        assert {r["status"] for r in lb.servers().values()} == {"UP"}
    listed = run_cli("records", "list", "--limit", "30", "--json")
    assert listed.code == 0, listed
    mine = [r for r in json.loads(listed.out)["rows"] if r["command"] == "papermill lb_maintenance"]
    assert len(mine) >= 2 and {r["status"] for r in mine[:2]} == {"ok"}, mine
    changed = [r for r in json.loads(listed.out)["rows"] if r["command"].startswith("runbook lb_maintenance: drain")]
    assert changed, "the drain the notebook made is journaled as its step"


def test_a_saved_plan_is_refused_where_a_host_drifted_and_applied_elsewhere(site, tmp_path):
    states = tmp_path / "drill.py"
    states.write_text(
        "from foobar_ops import states as s\n\n"
        "def states(host, inventory):\n"
        "    return [s.file.managed('/etc/foobar-drill.txt', content=host.vars.get('drill', 'planned') + '\\n')]\n"
    )
    tag = uuid.uuid4().hex[:8]
    data = yaml.safe_load(LAB_INVENTORY.read_text())
    for host in ("web-01", "web-02"):
        data["hosts"][host]["vars"]["drill"] = f"planned-{tag}"
    inv = tmp_path / "drill.yml"
    inv.write_text(yaml.safe_dump(data, sort_keys=False))
    plan = tmp_path / "plan.json"
    made = run_cli(
        "apply", "-i", inv, "--states", states, "--hosts", "web-01,web-02", "--test", "--save-plan", plan, "--json"
    )
    assert made.code == 0 and plan.exists(), made
    assert {r["host"] for r in made.json()["results"] if r["status"] == "pending"} == {"web-01", "web-02"}
    assert site["lab"].run("web-02", ["sh", "-c", "echo drifted > /etc/foobar-drill.txt"]).returncode == 0
    done = run_cli("apply", "-i", inv, "--plan", plan, "--json")
    assert done.code != 0
    doc = done.json()
    web02 = [r for r in doc["results"] if r["host"] == "web-02"]
    assert web02[0]["status"] == "failed" and "drifted since the plan" in web02[0]["comment"]
    assert "file.managed:/etc/foobar-drill.txt" in web02[0]["comment"]
    assert [r["status"] for r in doc["results"] if r["host"] == "web-01"] == ["changed"]
    assert site["lab"].run("web-01", ["cat", "/etc/foobar-drill.txt"]).stdout == f"planned-{tag}\n"
    assert site["lab"].run("web-02", ["cat", "/etc/foobar-drill.txt"]).stdout == "drifted\n"  # left as it was
    changed_inv = tmp_path / "changed.yml"
    changed_inv.write_text(inv.read_text() + "\n# an edit\n")
    refused = run_cli("apply", "-i", changed_inv, "--plan", plan)
    assert refused.code == 2 and "changed since the plan was made" in refused.err


def test_rolling_deploy_under_traffic_then_rollback(site):
    before = releases()
    build = f"r{uuid.uuid4().hex[:6]}"
    with Traffic(path="/", writes="rolling", every=3, max_seconds=300) as traffic:
        passed(runbook("rolling_deploy", "-p", "build", build))
    print(f"rolling deploy under traffic: {len(traffic.results)} requests, {len(traffic.failures)} failed")
    assert len(traffic.results) > 30 and traffic.failures == [], traffic.failures[:3]
    assert {r.rsplit("-b", 1)[-1] for r in releases()} == {build}  # both servers on the new release
    with Traffic(path="/", max_seconds=300) as traffic:
        passed(runbook("rollback"))
    assert traffic.failures == [] and releases() == before


def test_a_release_that_fails_its_health_check_stops_after_the_first_server_which_is_rolled_back(site, tmp_path):
    broken = tmp_path / "app"
    shutil.copytree(PROJECT / "app", broken, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    wsgi = broken / "foobar_app" / "wsgi.py"
    source = wsgi.read_text()
    assert 'healthy = checks["db_read"].startswith("ok")' in source
    wsgi.write_text(source.replace('healthy = checks["db_read"].startswith("ok")', "healthy = False  # broken"))
    data = yaml.safe_load(LAB_INVENTORY.read_text())
    data["stack"]["app_source"] = str(broken)
    inv = tmp_path / "broken.yml"
    inv.write_text(yaml.safe_dump(data, sort_keys=False))
    before = releases()
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    doc = runbook("rolling_deploy", inv=inv)
    assert doc["outcome"] == "failed" and doc["code"] == 1, doc
    assert "rolling deploy stopped at" in doc["error"]
    text = Path(doc["output_notebook"]).read_text()
    assert "foobar-ops-error" in text and "rolling back web-01 (the others never changed)" in text
    assert Path(doc["html"]).exists()
    assert Journal().run(doc["run_id"])["status"] == "failed"
    deadline = time.monotonic() + 30
    while releases(6) != before and time.monotonic() < deadline:
        time.sleep(1)
    assert releases() == before  # web-01 rolled back, web-02 never touched
    changes = Journal().changes(host="web-01", since=started)
    assert "app:current" in set(changes["state_id"])  # the change made before the failure is on record
    assert "app:current" not in set(Journal().changes(host="web-02", since=started)["state_id"])


def test_mysql_runbooks_replication_switchover_failover(site):
    inv, lab = site["inv"], site["lab"]
    passed(runbook("mysql_replication", inv=inv))
    doc = passed(runbook("mysql_switchover", inv=inv))
    assert "mysql_role: primary" in inv.read_text().split("web-02:")[1]
    passed(runbook("mysql_switchover", "-p", "to", "web-01", inv=inv))
    assert inv.read_text() == LAB_INVENTORY.read_text()
    lab.down(["web-01"])
    try:
        passed(runbook("mysql_failover", inv=inv))
    finally:
        lab.up(["web-01"])
    passed(runbook("mysql_replication", inv=inv))  # the old primary rejoins as a replica
    passed(runbook("mysql_switchover", "-p", "to", "web-01", inv=inv))
    assert inv.read_text() == LAB_INVENTORY.read_text()
    assert "switchover web-01 -> web-02: ok" in Path(doc["output_notebook"]).read_text()


def test_read_only_runbooks_show_tables_and_plots(site):
    for name in ("troubleshoot_web", "troubleshoot_replication", "health_report", "records"):
        doc = passed(runbook(name) if name != "records" else passed_records())
        notebook = json.loads(Path(doc["output_notebook"]).read_text())
        kinds = {k for c in notebook["cells"] for o in c.get("outputs", []) for k in o.get("data", {})}
        assert "text/html" in kinds, name  # tables
        if name != "records" or "image/png" in kinds:
            assert "image/png" in kinds, name  # plots
        if name != "records":  # the metrics from Prometheus: one plot more than the logs give
            images = [o for c in notebook["cells"] for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
            assert len(images) >= (1 if name == "health_report" else 2), name


def passed_records() -> dict:
    done = run_cli("runbook", "records", "--json", timeout=600)
    doc = json.loads(done.out)
    assert done.code == 0, doc
    return doc


def test_a_secret_passed_by_reference_appears_nowhere(site, tmp_path, monkeypatch):
    value = f"tok-{uuid.uuid4().hex}"
    folder = tmp_path / "books"
    folder.mkdir()
    shutil.copy(PROJECT / "runbooks" / "jupytext.toml", folder)
    (folder / "token_file.py").write_text(
        (PROJECT / "runbooks" / "records.py").read_text().split("# %% [markdown]")[0]
        + """# %% [markdown]
# # Put a token into a file on the load balancer

# %% tags=["parameters"]
from typing import Optional

from foobar_ops.runbooks import SecretRef  # noqa: F401

inventory: str = "inventories/lab.yml"  # the inventory file
token: SecretRef = "env:FOOBAR_TEST_BOOK_TOKEN"  # the token, by reference
run_id: Optional[str] = None  # set by the runner
output_notebook: Optional[str] = None  # set by the runner

# %%
import foobar_ops as fo

rb = fo.runbook(globals(), "token_file")
inv = fo.load_inventory(inventory)
secret = fo.Secret(token)


def states(host, inventory):
    return [fo.states.file.managed("/etc/foobar-token.conf", template="token = {{ t }}\\n", inline=True,
                                   context={"t": secret}, mode="0600")]


report = fo.apply(inv, states, hosts="lb-01", on_result=rb.progress, **rb.recorded("token"))
print(report.summary())
print("the token is", secret.reveal())  # careless: the runner scrubs it from what it keeps

# %%
assert report.ok
"""
    )
    env = dict(os.environ, FOOBAR_OPS_RUNBOOKS=str(folder), FOOBAR_TEST_BOOK_TOKEN=value)
    done = subprocess.run(
        [str(FOOBAR_OPS), "runbook", "token_file", "-i", str(LAB_INVENTORY), "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    doc = json.loads(done.stdout)
    assert site["lab"].run("lb-01", ["cat", "/etc/foobar-token.conf"]).stdout == f"token = {value}\n"
    assert value not in done.stdout + done.stderr
    for path in (Path(doc["output_notebook"]), Path(doc["html"]), *Path(Journal().path).parent.glob("journal.sqlite*")):
        assert value.encode() not in stored_bytes(path), path
    assert "********" in Path(doc["output_notebook"]).read_text()
    assert "env:FOOBAR_TEST_BOOK_TOKEN" in Path(doc["output_notebook"]).read_text()  # the reference, not the value
    site["lab"].run("lb-01", ["rm", "-f", "/etc/foobar-token.conf"])


def test_two_runner_processes_write_one_journal_on_the_labs_mariadb(site, tmp_path):
    password = f"jr-{uuid.uuid4().hex}"
    (tmp_path / "pw").write_text(password)
    states = tmp_path / "journal_db.py"
    states.write_text(
        "from foobar_ops import states as s\n"
        "from foobar_ops.core.secrets import Secret\n\n"
        "def states(host, inventory):\n"
        f"    pw = Secret('file:{tmp_path / 'pw'}')\n"
        "    return [s.mysql.database('foobar_ops_journal'),\n"
        "            s.mysql.user('journal', host='10.77.0.1', password=pw, database='foobar_ops_journal',\n"
        "                         privileges=['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'CREATE', 'ALTER', 'INDEX'],\n"
        "                         require=['mysql.database:foobar_ops_journal'])]\n"
    )
    done = run_cli("apply", "-i", LAB_INVENTORY, "--states", states, "--hosts", "web-01")
    assert done.code == 0, done
    # this machine reaches web-01's MariaDB only through an opening of its own (stack.firewall.allow)
    data = yaml.safe_load(LAB_INVENTORY.read_text())
    data["stack"]["firewall"]["allow"] = [{"port": 3306, "from": ["10.77.0.1"], "to": ["web-01"]}]
    opened = tmp_path / "opened.yml"
    opened.write_text(yaml.safe_dump(data, sort_keys=False))
    done = run_cli("apply", "-i", opened, "firewall", "--hosts", "web-01")
    assert done.code == 0, done
    try:
        _two_runners_on_one_journal(tmp_path, password)
    finally:
        assert run_cli("apply", "-i", LAB_INVENTORY, "firewall", "--hosts", "web-01").code == 0


def _two_runners_on_one_journal(tmp_path, password):
    url = "mysql+pymysql://journal@10.77.0.11/foobar_ops_journal"
    env = dict(os.environ, FOOBAR_OPS_JOURNAL=url, FOOBAR_OPS_JOURNAL_PASSWORD=f"file:{tmp_path / 'pw'}")
    argv = [str(FOOBAR_OPS), "runbook", "records", "--json", "--quiet"]
    procs = [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=PROJECT)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-1000:] for o in outs]
    ids = {json.loads(o[0])["run_id"] for o in outs}
    os.environ["FOOBAR_OPS_JOURNAL_PASSWORD"] = f"file:{tmp_path / 'pw'}"
    try:
        shared = Journal(url)
        assert ids <= set(shared.runs()["run_id"]) and len(ids) == 2
        assert password not in json.dumps([shared.run(i) for i in ids], default=str)
    finally:
        del os.environ["FOOBAR_OPS_JOURNAL_PASSWORD"]
    assert re.search(r"journal", str(shared.path)) and password not in str(shared.path)
    assert sys.version_info >= (3, 11)
