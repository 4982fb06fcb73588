"""Report (counts, DataFrame, JSON, terminal and HTML summaries) and the change Journal
(SQLite on tmp_path: runs, results, changes, --since, crash safety, secret masking)."""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import pytest

from foobar_ops import records
from foobar_ops.records import Journal, JournalError, parse_since
from foobar_ops.report import COLUMNS, Report
from foobar_ops.result import Result
from foobar_ops.secrets import MASK, Secret

DIFF = ("--- /etc/haproxy/haproxy.cfg (live)\n+++ /etc/haproxy/haproxy.cfg (wanted)\n@@ -1,2 +1,2 @@\n"
        " frontend www\n-    bind :80\n+    bind :8080\n")
ANSI = re.compile(r"\033\[[0-9;]*m")


@pytest.fixture(autouse=True)
def _no_git(monkeypatch):
    """The journal records the project's git commit; keep these tests away from the real repo."""
    monkeypatch.setattr(records, "git_commit", lambda folder=records.PROJECT: "abc1234")


def ok(host, id_, **kw):
    state, _, name = id_.partition(":")
    return Result(host, id_, name, state, True, **kw)


def sample_results() -> list[Result]:
    return [
        ok("web-01", "pkg.installed:haproxy", comment="installed: haproxy", duration_ms=12.0),
        ok("web-01", "file.managed:/etc/haproxy/haproxy.cfg", changed=True, diff=DIFF,
           changes={"old": {"size": 25}, "new": {"size": 27}}, comment="/etc/haproxy/haproxy.cfg updated"),
        Result("web-01", "service.running:haproxy", "haproxy", "service.running", False,
               comment="reload failed (exit 1): <job> failed"),
        Result("web-01", "cmd.run:check", "check", "cmd.run", False, run=False,
               comment="not run: requisite service.running:haproxy failed or did not run"),
        ok("web-02", "pkg.installed:haproxy", comment="installed: haproxy"),
    ]


def sample_report(**kw) -> Report:
    return Report("20261126-101500-abc123", False, sample_results(),
                  round_trips={"web-01": 5, "web-02": 1}, duration_s=1.23456,
                  hosts=["web-01", "web-02"], **kw)


def pending_report() -> Report:
    r = Result("web-01", "file.managed:/etc/haproxy/haproxy.cfg", "/etc/haproxy/haproxy.cfg",
               "file.managed", None, changes={"old": {"size": 25}, "new": {"size": 27}}, diff=DIFF,
               comment="would change: /etc/haproxy/haproxy.cfg updated")
    return Report("r-test", True, [r, ok("web-01", "pkg.installed:curl")], {"web-01": 1}, 0.2, ["web-01"])


# --- Report ----------------------------------------------------------------------------------


def test_report_counts():
    assert sample_report().counts() == {"succeeded": 3, "changed": 1, "pending": 0, "failed": 2,
                                        "not_run": 1, "total": 5}
    assert pending_report().counts() == {"succeeded": 1, "changed": 0, "pending": 1, "failed": 0,
                                         "not_run": 0, "total": 2}


def test_report_failed_hosts_in_host_order():
    report = sample_report()
    assert report.failed_hosts == ["web-01"] and report.ok is False
    report.results.append(Result("web-00", "x", "x", "cmd.run", False))
    assert report.failed_hosts == ["web-01"]  # web-00 is not a targeted host of this report
    assert pending_report().failed_hosts == [] and pending_report().ok


def test_report_frame_has_one_row_per_result_and_the_columns():
    frame = sample_report().frame()
    assert list(frame.columns) == COLUMNS == ["host", "id", "name", "state", "result", "changed",
                                              "comment", "diff", "duration_ms", "run"]
    assert len(frame) == 5
    assert list(frame["host"]) == ["web-01"] * 4 + ["web-02"]
    assert frame["changed"].sum() == 1
    assert list(frame.loc[frame["run"] == False, "id"]) == ["cmd.run:check"]  # noqa: E712
    assert Report("r", False).frame().columns.tolist() == COLUMNS  # empty report, same columns


def test_report_as_json_shape():
    doc = sample_report().as_json()
    assert set(doc) == {"run_id", "test", "results", "summary", "round_trips"}
    assert doc["run_id"] == "20261126-101500-abc123" and doc["test"] is False
    assert doc["round_trips"] == {"web-01": 5, "web-02": 1}
    assert doc["summary"] == {"succeeded": 3, "changed": 1, "pending": 0, "failed": 2, "not_run": 1,
                              "total": 5, "seconds": 1.235, "failed_hosts": ["web-01"]}
    assert len(doc["results"]) == 5
    assert set(doc["results"][1]) == {"host", "id", "name", "state", "result", "changed", "changes",
                                      "comment", "diff", "duration_ms", "run", "idempotent"}
    assert doc["results"][1]["changes"] == {"old": {"size": 25}, "new": {"size": 27}}
    assert json.loads(json.dumps(doc)) == doc  # printable as-is


def test_report_summary_text():
    text = sample_report().summary()
    assert "\033[" not in text
    assert "web-01:" in text and "web-02:" in text
    assert "Succeeded: 3 (changed=1)" in text
    assert "Failed:    2 (1 not run)" in text
    assert "Failed hosts: web-01" in text
    assert "Total states: 5" in text and "Round trips:  web-01 5, web-02 1" in text
    assert "Pending" not in text  # only in test mode
    assert "+    bind :8080" in text and "-    bind :80" in text  # diff of the changed file
    assert "+    bind :8080" not in sample_report().summary(diffs=False)


def test_report_summary_without_failures_has_no_failed_hosts_line():
    text = pending_report().summary()
    assert "Failed hosts" not in text
    assert "test mode: nothing changed" in text and "Pending:   1" in text
    assert "+    bind :8080" in text  # pending diffs are shown


def test_report_summary_colours_only_when_asked():
    plain, coloured = sample_report().summary(color=False), sample_report().summary(color=True)
    assert not ANSI.search(plain)
    assert "\033[31mFailed hosts: web-01\033[0m" in coloured
    assert "\033[32m+    bind :8080\033[0m" in coloured and "\033[31m-    bind :80\033[0m" in coloured
    assert ANSI.sub("", coloured) == plain


def test_report_html_colours_the_diff_and_escapes_text():
    page = sample_report()._repr_html_()
    assert "<span style='color:#1a7f37'>+    bind :8080</span>" in page
    assert "<span style='color:#cf222e'>-    bind :80</span>" in page
    assert "<span style='color:inherit'>+++ /etc/haproxy/haproxy.cfg (wanted)</span>" in page
    assert "&lt;job&gt; failed" in page and "<job>" not in page
    assert "3 ok, 1 changed, 0 pending, 2 failed" in page
    assert page.count("<tr") == 1 + 5


# --- Journal ---------------------------------------------------------------------------------


@pytest.fixture
def journal(tmp_path):
    j = Journal(tmp_path / "records" / "journal.sqlite")
    yield j
    j.close()


def record(journal: Journal, results, *, test=False, status="ok", command="foobar-ops apply web") -> str:
    run_id = journal.start_run(command=command, test=test, parameters={"pattern": "web-*"})
    for r in results:
        journal.add_result(run_id, r)
    journal.finish_run(run_id, status)
    return run_id


def test_journal_records_runs_with_their_counts(journal):
    first = record(journal, sample_results(), status="failed")
    second = record(journal, pending_report().results, test=True)
    runs = journal.runs()
    assert list(runs["run_id"]) == [second, first]  # newest first
    row = runs.set_index("run_id").loc[first]
    assert (row["results"], row["changed"], row["failed"]) == (5, 1, 2)
    assert row["status"] == "failed" and row["test"] == 0 and row["finished"]
    assert row["command"] == "foobar-ops apply web" and row["git_commit"] == "abc1234"
    assert json.loads(row["parameters"]) == {"pattern": "web-*"}
    row = runs.set_index("run_id").loc[second]
    assert (row["results"], row["changed"], row["failed"], row["test"]) == (2, 0, 0, 1)
    assert len(journal.runs(limit=1)) == 1


def test_journal_results_of_one_run_in_order(journal):
    run_id = record(journal, sample_results())
    record(journal, pending_report().results)
    frame = journal.results(run_id)
    assert list(frame["state_id"]) == [r.id for r in sample_results()]
    assert list(frame["result"].astype("Int64")) == [1, 1, 0, 0, 1]
    assert json.loads(frame["changes"][1]) == {"old": {"size": 25}, "new": {"size": 27}}
    assert frame["diff"][1] == DIFF


def test_journal_results_of_an_unknown_run(journal):
    with pytest.raises(JournalError, match="no run 'nope'"):
        journal.results("nope")
    empty = journal.start_run(command="x")
    assert journal.results(empty).empty  # a known run with no results yet is not an error


def test_journal_changes_filters_by_host_state_and_since(journal):
    run_id = record(journal, sample_results() + [
        ok("web-02", "file.managed:/etc/hosts", changed=True, changes={"old": None, "new": {"size": 1}}),
        ok("web-02", "service.running:nginx", changed=True, changes={"new": {"active": "active"}})])
    every = journal.changes()
    assert list(every["state_id"]) == ["service.running:nginx", "file.managed:/etc/hosts",
                                       "file.managed:/etc/haproxy/haproxy.cfg"]  # newest first
    assert set(every["run_id"]) == {run_id} and set(every["command"]) == {"foobar-ops apply web"}
    assert list(journal.changes(host="web-01")["state_id"]) == ["file.managed:/etc/haproxy/haproxy.cfg"]
    assert list(journal.changes(host="web-02", state="file.managed")["name"]) == ["/etc/hosts"]
    assert list(journal.changes(state="service.running:nginx")["host"]) == ["web-02"]
    assert len(journal.changes(since="7d")) == 3
    # age one of them: it is older than a week
    with journal.lock:
        old = (datetime.now(timezone.utc) - timedelta(days=30)).isoformat(timespec="milliseconds")
        journal.db.execute("UPDATE results SET at = ? WHERE state_id = 'file.managed:/etc/hosts'", (old,))
        journal.db.commit()
    assert list(journal.changes(since="7d")["state_id"]) == ["service.running:nginx",
                                                             "file.managed:/etc/haproxy/haproxy.cfg"]
    assert len(journal.changes(since="60d")) == 3
    assert journal.changes(since=datetime.now(timezone.utc) + timedelta(hours=1)).empty
    assert journal.changes(host="web-03").empty


def test_journal_changes_of_test_runs_are_pending_changes(journal):
    record(journal, pending_report().results, test=True)
    assert journal.changes().empty
    pending = journal.changes(test=True)
    assert list(pending["state_id"]) == ["file.managed:/etc/haproxy/haproxy.cfg"]


def test_parse_since_ages_and_dates():
    now = datetime.now(timezone.utc)
    for text, delta in (("7d", timedelta(days=7)), ("12h", timedelta(hours=12)),
                        ("30m", timedelta(minutes=30)), ("2w", timedelta(weeks=2))):
        moment = datetime.fromisoformat(parse_since(text))
        assert abs((now - delta) - moment) < timedelta(seconds=5), text
    assert parse_since("2026-11-01") == "2026-11-01T00:00:00.000+00:00"
    assert parse_since("2026-11-01T12:30:00+02:00") == "2026-11-01T10:30:00.000+00:00"
    assert parse_since(datetime(2026, 11, 1, 8, 0)) == "2026-11-01T08:00:00.000+00:00"


@pytest.mark.parametrize("bad", ["yesterday", "7 days", "", "-3d"])
def test_parse_since_refuses_what_it_cannot_read(bad):
    with pytest.raises(JournalError) as info:
        parse_since(bad)
    assert "7d" in str(info.value) and "2026-11-01" in str(info.value)


def test_a_result_recorded_before_a_crash_is_kept(tmp_path):
    path = tmp_path / "journal.sqlite"
    crashed = Journal(path)
    run_id = crashed.start_run(command="foobar-ops apply web")
    crashed.add_result(run_id, sample_results()[1])
    # no finish_run, no close: the process died here
    fresh = Journal(path)
    try:
        run = fresh.run(run_id)
        assert run["status"] == "running" and run["finished"] is None
        assert fresh.runs().set_index("run_id").loc[run_id, "results"] == 1
        assert list(fresh.results(run_id)["state_id"]) == ["file.managed:/etc/haproxy/haproxy.cfg"]
        assert len(fresh.changes()) == 1
    finally:
        fresh.close()
        crashed.close()


SECRET_VALUE = "Vb2-unit-journal-pw-48q"


@pytest.fixture
def db_password(monkeypatch):
    monkeypatch.setenv("FOOBAR_UNIT_JOURNAL_PW", SECRET_VALUE)
    return Secret("env:FOOBAR_UNIT_JOURNAL_PW")


def test_parameters_with_a_revealed_secret_are_stored_masked(journal, db_password):
    value = db_password.reveal()
    run_id = journal.start_run(command=f"foobar-ops apply --password {value}",
                               parameters={"db_password": value, "nested": {"dsn": f"mysql://app:{value}@db"}})
    run = journal.run(run_id)
    assert SECRET_VALUE not in json.dumps(run)
    assert json.loads(run["parameters"]) == {"db_password": MASK, "nested": {"dsn": f"mysql://app:{MASK}@db"}}
    assert run["command"] == f"foobar-ops apply --password {MASK}"
    journal.finish_run(run_id, "error", f"boom near {value}")
    assert journal.run(run_id)["error"] == f"boom near {MASK}"


def test_results_with_a_revealed_secret_are_stored_masked(journal, db_password):
    value = db_password.reveal()
    run_id = journal.start_run(command="x")
    journal.add_result(run_id, ok("web-01", "file.managed:/etc/app/db.ini", changed=True,
                                  changes={"new": {"line": f"password={value}"}},
                                  diff=f"+password={value}\n", comment=f"validation failed: {value}"))
    frame = journal.results(run_id)
    assert SECRET_VALUE not in frame.to_json()
    assert frame["diff"][0] == f"+password={MASK}\n"


def test_a_secret_in_a_state_name_is_stored_masked(journal, db_password):
    value = db_password.reveal()
    command = f"htpasswd -b /etc/app/.htpasswd admin {value}"
    run_id = journal.start_run(command="x")
    journal.add_result(run_id, Result("web-01", f"cmd.run:{command}", command, "cmd.run", True,
                                      changed=True, comment="run htpasswd"))
    assert SECRET_VALUE not in journal.results(run_id).to_json()


@pytest.mark.parametrize("value", ['pa"ss-unit-61', "pa\\ss-unit-62", "pässwört-unit-63"],
                         ids=["quote", "backslash", "non-ascii"])
def test_parameters_with_json_special_secrets_are_stored_masked(journal, monkeypatch, value):
    monkeypatch.setenv("FOOBAR_UNIT_ODD_PW", value)
    revealed = Secret("env:FOOBAR_UNIT_ODD_PW").reveal()
    run_id = journal.start_run(command="x", parameters={"db_password": revealed})
    assert json.loads(journal.run(run_id)["parameters"]) == {"db_password": MASK}
