"""Load tests with Locust on the lab: verdicts on round-robin balancing (also with unequal weights),
read scaling, a web server stopped mid-run, a distributed run, scheduled runs collected against a
baseline (and a run slowed on purpose failing it), and the load-test runbooks. Short runs."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import pytest
import yaml

from foobar_ops.core.journal import Journal
from tests.conftest import LAB_INVENTORY, run_cli
from tests.lab.helpers import apply

CONTRACT = {"verdict", "checks", "servers", "db_nodes", "rps", "p50_ms", "p95_ms", "failures", "run_id"}


def loadtest(kind: str, *args: str, inv=LAB_INVENTORY) -> tuple[int, dict]:
    done = run_cli("loadtest", kind, "-i", inv, "--json", *args, timeout=900)
    doc = json.loads(done.out)
    assert CONTRACT <= set(doc) and (done.code == 0) == (doc["verdict"] == "pass"), done
    for check in doc["checks"]:
        assert set(check) >= {"name", "expected", "measured", "ok"}
    print(
        f"{kind} {' '.join(args)}: {doc['verdict']}, {doc['rps']} req/s, p50 {doc['p50_ms']} ms, "
        f"p95 {doc['p95_ms']} ms, servers { ({n: s['share'] for n, s in doc['servers'].items()}) }, "
        f"db { ({n: d['share'] for n, d in doc['db_nodes'].items()}) }, extra {doc.get('extra')}"
    )
    return done.code, doc


def check(doc: dict, prefix: str) -> list[dict]:
    return [c for c in doc["checks"] if c["name"].startswith(prefix)]


@pytest.fixture(scope="module")
def stack(lab):
    done, _ = apply()
    assert done.code == 0, done
    return lab


def test_round_robin_passes_and_lbtot_agrees_with_the_responses(stack):
    code, doc = loadtest("round-robin", "--run-time", "20s")
    assert code == 0 and doc["verdict"] == "pass", [c for c in doc["checks"] if not c["ok"]]
    for server in doc["servers"].values():
        assert abs(server["share"] - 0.5) <= 0.05 and server["requests"] > 0
        assert abs(server["lbtot"] - server["requests"]) <= 0.02 * sum(s["requests"] for s in doc["servers"].values())
    assert doc["failures"] == 0 and doc["p95_ms"] is not None
    run = Journal().run(doc["run_id"])
    assert run["status"] == "ok" and Path(run["output_html"]).exists()  # kept, and linked from the journal
    assert (Path(doc["folder"]) / "locust_stats.csv").exists() and (Path(doc["folder"]) / "verdict.json").exists()


def test_with_weights_3_to_1_the_verdict_follows_the_configured_weights(stack, tmp_path):
    data = yaml.safe_load(LAB_INVENTORY.read_text())
    data["hosts"]["web-01"]["vars"]["haproxy_weight"] = 3
    weighted = tmp_path / "weighted.yml"
    weighted.write_text(yaml.safe_dump(data, sort_keys=False))
    done, _ = apply(weighted, "haproxy")
    assert done.code == 0, done
    try:
        code, doc = loadtest("round-robin", "--run-time", "10s", inv=weighted)
        assert code == 0, [c for c in doc["checks"] if not c["ok"]]
        assert check(doc, "share of web-01")[0]["expected"].startswith("0.75")
        assert abs(doc["servers"]["web-01"]["share"] - 0.75) <= 0.05
    finally:
        assert apply(LAB_INVENTORY, "haproxy")[0].code == 0


def test_read_scaling_spreads_reads_by_weight_and_writes_only_on_the_primary(stack):
    code, doc = loadtest("read-scaling", "--run-time", "10s")
    assert code == 0, [c for c in doc["checks"] if not c["ok"]]
    assert {n: d["reads"] > 0 for n, d in doc["db_nodes"].items()} == {"web-01": True, "web-02": True}
    assert abs(doc["db_nodes"]["web-01"]["share"] - 0.5) <= 0.1
    assert check(doc, "writes on the primary only")[0]["measured"] == ["web-01"]
    assert doc["extra"]["primary_only"]["rps"] > 0 and doc["extra"]["read_scaling_ratio"] is not None


def test_a_web_server_stopped_during_a_run_shows_in_the_verdict(stack):
    def stop_web_02():
        time.sleep(3)
        stack.run("web-02", ["systemctl", "stop", "nginx"])

    stopper = threading.Thread(target=stop_web_02)
    stopper.start()
    try:
        code, doc = loadtest("round-robin", "--run-time", "12s")
    finally:
        stopper.join()
        stack.run("web-02", ["systemctl", "start", "nginx"])
    assert code != 0 and doc["verdict"] == "fail"
    failed = [c["name"] for c in doc["checks"] if not c["ok"]]
    assert any(name.startswith(("share of", "failure ratio")) for name in failed), failed
    assert doc["servers"]["web-02"]["share"] < 0.45


def test_a_distributed_run_with_two_workers_gives_the_same_verdict(stack):
    code, doc = loadtest("round-robin", "--run-time", "12s", "--workers", "2")
    assert code == 0 and doc["verdict"] == "pass", [c for c in doc["checks"] if not c["ok"]]
    assert doc["parameters"]["workers"] == 2 and sum(s["requests"] for s in doc["servers"].values()) > 100


def test_workers_on_two_load_generators_give_the_same_tallies_and_a_passing_verdict(stack):
    code, doc = loadtest("round-robin", "--run-time", "12s", "--workers-on", "loadgen-01,loadgen-02")
    assert code == 0 and doc["verdict"] == "pass", [c for c in doc["checks"] if not c["ok"]]
    assert doc["parameters"]["workers_on"] == ["loadgen-01", "loadgen-02"]
    assert doc["extra"]["workers_on"] == {"loadgen-01": {"exit": 0}, "loadgen-02": {"exit": 0}}
    total = sum(s["requests"] for s in doc["servers"].values())
    assert total > 100 and all(abs(s["lbtot"] - s["requests"]) <= 0.02 * total for s in doc["servers"].values())
    logs = {p.name for p in Path(doc["folder"]).glob("worker-*.log")}
    assert logs == {"worker-loadgen-01.log", "worker-loadgen-02.log"}
    refused = run_cli("loadtest", "round-robin", "-i", LAB_INVENTORY, "--workers-on", "web-01", "--json")
    assert refused.code == 2 and "not a load generator" in refused.err


def wait_for_runs(lab, name: str, count: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        out = lab.run(
            "loadgen-01", ["sh", "-c", f"ls -d /var/lib/foobar-loadgen/runs/{name}-*/done 2>/dev/null | wc -l"]
        )
        if int(out.stdout.strip() or 0) >= count or time.monotonic() > deadline:
            return
        time.sleep(2)


def test_a_scheduled_run_is_collected_and_a_slowed_backend_fails_against_the_baseline(stack):
    name = f"t{uuid.uuid4().hex[:6]}"
    done = run_cli(
        "loadtest", "schedule", name, "-i", LAB_INVENTORY, "--every", "1h", "--run-time", "8s", "--users", "8", "--json"
    )
    assert done.code == 0, done
    try:
        wait_for_runs(stack, name, 1)
        first = run_cli("loadtest", "collect", "-i", LAB_INVENTORY, "--json")
        runs = [r for r in first.json() if r["extra"]["schedule"] == name]
        assert len(runs) == 1 and runs[0]["verdict"] == "pass", runs
        assert runs[0]["extra"]["load_generator"] == "loadgen-01"
        assert "baseline" in runs[0]["extra"]  # the first passing run became the baseline
        slow = "limit_rate 2k;\n"  # a delay on one backend: web-01's responses trickle out
        assert (
            stack.run(
                "web-01", ["sh", "-c", f"echo '{slow}' > /etc/nginx/conf.d/zz-slow.conf && systemctl reload nginx"]
            ).returncode
            == 0
        )
        try:
            assert stack.run("loadgen-01", ["systemctl", "start", f"foobar-loadtest-{name}.service"]).returncode == 0
            wait_for_runs(stack, name, 2)
        finally:
            stack.run("web-01", ["sh", "-c", "rm -f /etc/nginx/conf.d/zz-slow.conf && systemctl reload nginx"])
        second = run_cli("loadtest", "collect", "-i", LAB_INVENTORY, "--json")
        assert second.code != 0
        [slowed] = [r for r in second.json() if r["extra"]["schedule"] == name]
        assert slowed["verdict"] == "fail"
        assert any(
            c["name"].startswith(("p95 against baseline", "throughput against baseline")) and not c["ok"]
            for c in slowed["checks"]
        ), slowed["checks"]
        history = run_cli("loadtest", "history", name, "--json").json()
        assert [h["verdict"] for h in history] == ["pass", "fail"] and history[0]["baseline"] is True
    finally:
        assert run_cli("loadtest", "unschedule", name, "-i", LAB_INVENTORY).code == 0
    gone = stack.run("loadgen-01", ["systemctl", "list-timers", "--all", "--no-pager"])
    assert f"foobar-loadtest-{name}" not in gone.stdout


def test_the_load_test_runbooks_run_and_plot(stack):
    for name in ("loadtest_round_robin", "loadtest_read_scaling"):
        done = run_cli("runbook", name, "-i", LAB_INVENTORY, "-p", "run_time", "8s", "--json", timeout=900)
        doc = json.loads(done.out)
        assert done.code == 0 and doc["outcome"] == "ok", doc
        notebook = json.loads(Path(doc["output_notebook"]).read_text())
        kinds = {k for c in notebook["cells"] for o in c.get("outputs", []) for k in o.get("data", {})}
        assert "image/png" in kinds and Path(doc["html"]).exists()
