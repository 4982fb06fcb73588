"""Every result an operation returns has one shape: `ok` (a bool that follows the data),
`as_json()` (JSON as it is), `_repr_html_()` (its line, escaped) and a one-line `str()` that names
the outcome. Each class is built from fed data: no host is asked."""

from __future__ import annotations

import html
import json

import pandas as pd
import pytest

from foobar_ops.core.report import Report
from foobar_ops.core.result import HostOutcome, Outcome, Result, Status
from foobar_ops.core.shape import Shaped, headline, one_line
from foobar_ops.stack import load_inventory
from foobar_ops.stack import verify as verify_mod
from foobar_ops.stack.loadtest import Check, LoadTest, against_baseline
from foobar_ops.stack.replication import NodeStatus, ReplicationStatus
from foobar_ops.stack.rolechange import RoleChange
from tests.unit.inventories import LAB


def assert_shaped(x: object, ok: bool) -> str:
    """Check the shape every result shares; return its line."""
    assert isinstance(x, Shaped)
    assert isinstance(x.ok, bool) and x.ok is ok
    doc = x.as_json()
    assert isinstance(doc, dict)
    assert json.loads(json.dumps(doc, allow_nan=False)) == doc  # printable as it is, no NaN
    line = str(x)
    assert line and "\n" not in line and "\r" not in line and line == line.strip()
    page = x._repr_html_()
    assert html.escape(line) in page
    return line


# --- the helpers ------------------------------------------------------------------------------


def test_one_line_folds_every_line_break_and_headline_escapes():
    assert one_line("a\nb\r\n  c\u2028d\te ") == "a b c d e"
    assert headline("x <b>\ny", True) == "<p style='color:#1a7f37'><b>x &lt;b&gt; y</b></p>"
    assert "#cf222e" in headline("x", False) and "#9a6700" in headline("x", None)


# --- Report -----------------------------------------------------------------------------------


def a_report(status: Status, test: bool = False, **kw) -> Report:
    results = [
        Result("web-01", "pkg.installed:curl", "curl", "pkg.installed", Status.OK, comment="installed: curl"),
        Result(
            "web-01",
            "file.managed:/etc/x",
            "/etc/x",
            "file.managed",
            status,
            comment="first line\nsecond line <job>",
            diff="--- a\n+++ b\n-old\n+new\n",
        ),
        Result("web-02", "pkg.installed:curl", "curl", "pkg.installed", Status.OK),
    ]
    report = Report("r<1>", test, results, duration_s=1.654, hosts=["web-01", "web-02"], **kw)
    report.order_hosts()
    return report


def test_a_report_that_changed_a_host_is_ok_and_says_so_on_one_line():
    report = a_report(Status.CHANGED)
    line = assert_shaped(report, ok=True)
    assert line == "run r<1>: 2 hosts, 3 states, 1 changed, 0 failed (1.65 s)"
    assert repr(report) == f"<Report {line}>"  # short, not the dataclass's fields
    page = report._repr_html_()
    assert "r&lt;1&gt;" in page and "<1>" not in page and "&lt;job&gt;" in page and "<job>" not in page


def test_a_report_with_a_failed_state_is_not_ok_and_names_the_failed_host():
    report = a_report(Status.FAILED)
    line = assert_shaped(report, ok=False)
    assert line == "run r<1>: 2 hosts, 3 states, 0 changed, 1 failed (1.65 s); failed hosts: web-01"
    assert "\n" not in repr(report) and len(repr(report)) < 200


def test_a_test_mode_report_counts_pending_and_an_unreachable_host_and_journal_errors():
    report = a_report(Status.PENDING, test=True, journal_errors=["cannot write\nkept aside"])
    assert report.ok
    report.outcomes["web-02"] = HostOutcome("web-02", Outcome.UNREACHABLE, "connection\nrefused")
    line = assert_shaped(report, ok=False)
    assert line.startswith("run r<1> (test): 2 hosts, 3 states, 1 pending, 0 failed, 1 unreachable (1.65 s)")
    assert "failed hosts: web-02" in line and "the journal could not take 1 record" in line


# --- Result and HostOutcome -------------------------------------------------------------------


def test_a_state_result_and_a_host_outcome_read_on_one_line():
    r = Result("web-01", "cmd.run:x", "x", "cmd.run", Status.FAILED, comment="exit 1:\nno such file")
    assert str(r) == "web-01 failed cmd.run x: exit 1: no such file"
    assert str(Result("web-01", "cmd.run:x", "x", "cmd.run", Status.OK)) == "web-01 ok cmd.run x"
    down = HostOutcome("web-02", Outcome.UNREACHABLE, "host key\nchanged", 0)
    assert str(down) == "web-02 unreachable: host key changed (0 round trips)"
    assert str(HostOutcome("web-01", Outcome.OK, None, 1)) == "web-01 ok (1 round trip)"


# --- Verification -----------------------------------------------------------------------------


def answered(*servers: str | None) -> pd.DataFrame:
    rows = [
        {
            "status": 200 if s else None,
            "served_by": s,
            "db_node": "web-01" if s else None,
            "release": "r1" if s else None,
            "ms": 2.5,
            "error": None if s else "timed out",
        }
        for s in servers
    ]
    return pd.DataFrame(rows)


@pytest.fixture
def site(monkeypatch):
    """check_site with the requests and the load balancer's statuses fed, not asked."""
    fed: dict = {"frame": answered(), "statuses": {}}
    monkeypatch.setattr(verify_mod, "through_lb", lambda inventory, n: fed["frame"])
    monkeypatch.setattr(verify_mod, "wait_all_up", lambda inventory, wait: fed["statuses"])

    def check(frame: pd.DataFrame, statuses: dict | None = None, wait: float = 0):
        fed.update(frame=frame, statuses=statuses or {})
        return verify_mod.check_site(load_inventory(LAB), len(frame), wait)

    return check


def test_a_verification_every_server_answered_passes(site):
    check = site(answered("web-01", "web-02", "web-01", "web-02"))
    line = assert_shaped(check, ok=True)
    via = "foobar.com via the floating address 10.77.0.50 over https"
    assert line == f"PASS {via}: 4/4 answered 200; served by web-01 2, web-02 2"
    doc = check.as_json()
    assert doc["ok"] is True and doc["line"] == check.line and doc["statuses"] == {}
    assert len(doc["requests"]) == 4 and doc["requests"][0]["served_by"] == "web-01"
    assert repr(check) == f"<Verification {line}>"


def test_a_verification_with_a_request_unanswered_fails_and_its_json_has_no_nan(site):
    check = site(answered("web-01", None, "web-02"), {"web-01": "UP", "web-02": "DOWN <L7STS>\n"}, wait=5)
    line = assert_shaped(check, ok=False)
    assert line.startswith("FAIL foobar.com via the floating address 10.77.0.50 over https: 2/3 answered 200")
    assert line.endswith("not UP: web-02 DOWN <L7STS>")
    missed = check.as_json()["requests"][1]
    assert missed["status"] is None and missed["error"] == "timed out"
    page = check._repr_html_()
    assert "&lt;L7STS&gt;" in page and "<L7STS>" not in page


def test_a_verification_with_a_web_server_that_answered_nothing_fails(site):
    check = site(answered("web-01", "web-01"))
    assert_shaped(check, ok=False)
    assert str(check).startswith("FAIL ")


# --- LoadTest ---------------------------------------------------------------------------------


def a_load_test(verdict: str) -> LoadTest:
    return LoadTest(
        "round-robin",
        "lt-1",
        verdict=verdict,
        checks=[Check("share of web-01", "0.5 +/- 0.05", 0.5, True)],
        servers={"web-01": {"requests": 510, "share": 0.5, "lbtot": 511}},
        rps=1010.2,
        p50_ms=8.0,
        p95_ms=15.0,
        requests=1018,
        parameters={"users": 16, "spawn_rate": 16, "run_time": "20s", "workers": 0},
    )


def test_a_passing_load_test_is_ok():
    test = a_load_test("pass")
    line = assert_shaped(test, ok=True)
    assert line == "round-robin lt-1: PASS: 1010 req/s, p50 8.0 ms, p95 15.0 ms, 0 failed of 1018"
    assert test.as_json()["ok"] is True and test.as_json()["verdict"] == "pass"


def test_a_load_test_slower_than_its_baseline_fails_and_says_which_check():
    test = against_baseline(a_load_test("pass"), {"run_id": "lt-0", "rps": 2000.0, "p95_ms": 5.0}, 0.5)
    line = assert_shaped(test, ok=False)
    assert line.startswith("round-robin lt-1: FAIL: ")
    assert "failed: p95 against baseline lt-0 (expected <= 7.5 ms, measured 15.0)" in line
    assert test.as_json()["ok"] is False
    page = test._repr_html_()
    assert "&lt;= 7.5 ms" in page and "<= 7.5" not in page


def test_an_invalid_load_test_is_never_ok():
    test = a_load_test("invalid")
    line = assert_shaped(test, ok=False)
    assert ": INVALID: " in line and "#9a6700" in test._repr_html_()


# --- RoleChange -------------------------------------------------------------------------------


def a_change(ok: bool, test: bool = False, error: str | None = None) -> RoleChange:
    steps = [
        Result("-", "preflight", "preflight", "db.role", Status.OK, comment="checked"),
        Result("db-02", "promote", "promote", "db.role", Status.OK if ok else Status.FAILED, comment="<promoted>"),
    ]
    return RoleChange("switchover", "db-01", "db-02", test, ok, steps, error)


def test_a_verified_switchover_is_ok():
    change = a_change(True)
    line = assert_shaped(change, ok=True)
    assert line == "switchover db-01 -> db-02: verified (2 steps)"
    assert "&lt;promoted&gt;" in change._repr_html_() and "<promoted>" not in change._repr_html_()


def test_a_test_mode_switchover_whose_checks_pass_says_so():
    assert (
        assert_shaped(a_change(True, test=True), ok=True) == "switchover db-01 -> db-02 (test): checks pass (2 steps)"
    )


def test_a_failed_switchover_is_not_ok_and_says_why_on_one_line():
    change = a_change(False, error="db-02 <10.0.0.3> refused:\nread-only")
    line = assert_shaped(change, ok=False)
    assert line == "switchover db-01 -> db-02: FAILED (2 steps): db-02 <10.0.0.3> refused: read-only"
    assert change.as_json()["ok"] is False and change.as_json()["error"] == change.error


# --- ReplicationStatus ------------------------------------------------------------------------


def a_pair(error: str | None = None, lag: float = 0.0) -> ReplicationStatus:
    primary = NodeStatus("db-01", "primary", "primary", False, gtid="0-1-42")
    replica = NodeStatus("db-02", "replica", "replica", True, True, True, lag, "0-1-42", "db-01", error)
    return ReplicationStatus([primary, replica], 5.0)


def test_a_healthy_pair_is_ok():
    line = assert_shaped(a_pair(), ok=True)
    assert line == "replication ok: db-01 primary; db-02 replica lag 0 s (lag threshold 5 s)"


def test_a_lagging_replica_makes_the_pair_not_ok_and_is_named():
    pair = a_pair(error="replication lag 9 s over 5 s\n<behind>", lag=9.0)
    line = assert_shaped(pair, ok=False)
    assert line.startswith("replication NOT OK: ")
    assert "db-02 replica lag 9 s: replication lag 9 s over 5 s <behind>" in line
    assert pair.as_json()["ok"] is False
    assert "<behind>" not in pair._repr_html_()
