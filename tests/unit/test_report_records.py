"""Report (counts, host outcomes, DataFrame, JSON, terminal and HTML summaries) and the change
Journal (SQLite on tmp_path: runs, results with their status, host outcomes, changes, --since,
crash safety, secret masking, migration of a journal of the old schema)."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event

from foobar_ops.core import heartbeat, schema
from foobar_ops.core import journal as records
from foobar_ops.core.journal import Journal, JournalError, parse_since
from foobar_ops.core.report import COLUMNS, Report
from foobar_ops.core.result import HostOutcome, Outcome, Result, Status
from foobar_ops.core.secrets import MASK, Secret
from foobar_ops.core.version import __version__
from tests.conftest import stored_bytes

DIFF = (
    "--- /etc/haproxy/haproxy.cfg (live)\n+++ /etc/haproxy/haproxy.cfg (wanted)\n@@ -1,2 +1,2 @@\n"
    " frontend www\n-    bind :80\n+    bind :8080\n"
)
ANSI = re.compile(r"\033\[[0-9;]*m")


@pytest.fixture(autouse=True)
def _no_git(monkeypatch):
    """The journal records the project's git commit; keep these tests away from the real repo."""
    monkeypatch.setattr(records, "git_commit", lambda folder=records.CHECKOUT: "abc1234")


def ok(host, id_, status=Status.OK, **kw):
    state, _, name = id_.partition(":")
    return Result(host, id_, name, state, status, **kw)


def sample_results() -> list[Result]:
    return [
        ok("web-01", "pkg.installed:haproxy", comment="installed: haproxy", duration_ms=12.0),
        ok(
            "web-01",
            "file.managed:/etc/haproxy/haproxy.cfg",
            Status.CHANGED,
            diff=DIFF,
            changes={"old": {"size": 25}, "new": {"size": 27}},
            comment="/etc/haproxy/haproxy.cfg updated",
        ),
        Result(
            "web-01",
            "service.running:haproxy",
            "haproxy",
            "service.running",
            Status.FAILED,
            comment="reload failed (exit 1): <job> failed",
        ),
        Result(
            "web-01",
            "cmd.run:check",
            "check",
            "cmd.run",
            Status.NOT_RUN,
            comment="not run: requisite service.running:haproxy failed or did not run",
        ),
        ok("web-02", "pkg.installed:haproxy", comment="installed: haproxy"),
    ]


def outcome(host, how=Outcome.OK, round_trips=1, error=None) -> HostOutcome:
    return HostOutcome(host, how, error, round_trips)


def sample_report(**kw) -> Report:
    outcomes = {"web-01": outcome("web-01", Outcome.FAILED, 5), "web-02": outcome("web-02")}
    return Report(
        "20261126-101500-abc123",
        False,
        sample_results(),
        outcomes,
        duration_s=1.23456,
        hosts=["web-01", "web-02"],
        **kw,
    )


def pending_report() -> Report:
    r = Result(
        "web-01",
        "file.managed:/etc/haproxy/haproxy.cfg",
        "/etc/haproxy/haproxy.cfg",
        "file.managed",
        Status.PENDING,
        changes={"old": {"size": 25}, "new": {"size": 27}},
        diff=DIFF,
        comment="would change: /etc/haproxy/haproxy.cfg updated",
    )
    return Report(
        "r-test", True, [r, ok("web-01", "pkg.installed:curl")], {"web-01": outcome("web-01")}, 0.2, ["web-01"]
    )


def unreachable_report() -> Report:
    """web-01 ran its states; web-02 could not be reached (no results, an outcome saying why)."""
    return Report(
        "r-down",
        False,
        [ok("web-01", "pkg.installed:curl")],
        {"web-01": outcome("web-01"), "web-02": outcome("web-02", Outcome.UNREACHABLE, 0, "connection refused")},
        0.5,
        ["web-01", "web-02"],
    )


# --- Report ----------------------------------------------------------------------------------


def test_report_counts():
    assert sample_report().counts() == {
        "succeeded": 3,
        "changed": 1,
        "pending": 0,
        "failed": 1,
        "not_run": 1,
        "unreachable": 0,
        "total": 5,
    }
    assert pending_report().counts() == {
        "succeeded": 1,
        "changed": 0,
        "pending": 1,
        "failed": 0,
        "not_run": 0,
        "unreachable": 0,
        "total": 2,
    }
    assert unreachable_report().counts() == {
        "succeeded": 1,
        "changed": 0,
        "pending": 0,
        "failed": 0,
        "not_run": 0,
        "unreachable": 1,
        "total": 1,
    }


def test_result_salt_fields_derive_from_the_status():
    derived = {
        s: (ok("h", "x:y", s).result, ok("h", "x:y", s).changed, ok("h", "x:y", s).pending, ok("h", "x:y", s).failed)
        for s in Status
    }
    assert derived == {
        Status.OK: (True, False, False, False),
        Status.CHANGED: (True, True, False, False),
        Status.PENDING: (None, False, True, False),
        Status.FAILED: (False, False, False, True),
        Status.NOT_RUN: (False, False, False, True),
    }


def test_report_failed_hosts_in_host_order():
    report = sample_report()
    assert report.failed_hosts == ["web-01"] and report.ok is False
    report.results.append(Result("web-00", "x", "x", "cmd.run", Status.FAILED))
    report.outcomes["web-00"] = outcome("web-00", Outcome.FAILED)
    assert report.failed_hosts == ["web-01"]  # web-00 is not a targeted host of this report
    listed = Report(
        "r",
        False,
        outcomes={"web-02": outcome("web-02", Outcome.FAILED), "web-01": outcome("web-01", Outcome.UNREACHABLE)},
        hosts=["web-01", "web-02"],
    )
    assert listed.failed_hosts == ["web-01", "web-02"]  # the hosts' order, not the outcomes'
    assert pending_report().failed_hosts == [] and pending_report().ok


def test_an_unreachable_host_is_a_failed_host_without_results():
    report = unreachable_report()
    assert report.unreachable_hosts == ["web-02"] and report.failed_hosts == ["web-02"]
    assert not report.ok
    assert [r.host for r in report.results] == ["web-01"]  # no made-up result for the host
    assert report.round_trips == {"web-01": 1, "web-02": 0}


def test_order_hosts_adds_hosts_acted_on_for_others_with_an_outcome():
    drain = Result("lb-01", "haproxy.server:bk_web/web-01:drain", "bk_web/web-01", "haproxy.server", Status.CHANGED)
    report = Report(
        "r",
        False,
        [ok("web-01", "pkg.installed:curl"), drain, ok("web-02", "pkg.installed:curl")],
        {"web-01": outcome("web-01"), "web-02": outcome("web-02")},
        hosts=["web-01", "web-02"],
    )
    report.order_hosts()
    assert report.hosts == ["web-01", "web-02", "lb-01"]
    assert [r.host for r in report.results] == ["web-01", "web-02", "lb-01"]
    assert report.outcomes["lb-01"].outcome is Outcome.OK
    failed = Report("r", False, [ok("lb-01", "haproxy.server:x", Status.FAILED)], hosts=["web-01"])
    failed.order_hosts()
    assert failed.outcomes["lb-01"].outcome is Outcome.FAILED and failed.failed_hosts == ["lb-01"]


def test_report_frame_has_one_row_per_result_and_the_columns():
    frame = sample_report().frame()
    assert (
        list(frame.columns)
        == COLUMNS
        == ["host", "id", "name", "state", "status", "result", "changed", "comment", "diff", "duration_ms"]
    )
    assert len(frame) == 5
    assert list(frame["host"]) == ["web-01"] * 4 + ["web-02"]
    assert list(frame["status"]) == ["ok", "changed", "failed", "not_run", "ok"]
    assert frame["changed"].sum() == 1
    assert list(frame.loc[frame["status"] == "not_run", "id"]) == ["cmd.run:check"]
    assert Report("r", False).frame().columns.tolist() == COLUMNS  # empty report, same columns


def test_report_as_json_shape():
    doc = sample_report().as_json()
    assert set(doc) == {"run_id", "test", "results", "hosts", "summary", "round_trips", "journal_errors"}
    assert doc["run_id"] == "20261126-101500-abc123" and doc["test"] is False
    assert doc["journal_errors"] == []
    assert doc["round_trips"] == {"web-01": 5, "web-02": 1}
    assert doc["summary"] == {
        "succeeded": 3,
        "changed": 1,
        "pending": 0,
        "failed": 1,
        "not_run": 1,
        "unreachable": 0,
        "total": 5,
        "seconds": 1.235,
        "failed_hosts": ["web-01"],
    }
    assert len(doc["results"]) == 5
    assert set(doc["results"][1]) == {
        "host",
        "id",
        "name",
        "state",
        "status",
        "result",
        "changed",
        "changes",
        "comment",
        "diff",
        "duration_ms",
        "idempotent",
    }
    assert [r["status"] for r in doc["results"]] == ["ok", "changed", "failed", "not_run", "ok"]
    assert (doc["results"][1]["result"], doc["results"][1]["changed"]) == (True, True)
    assert doc["results"][1]["changes"] == {"old": {"size": 25}, "new": {"size": 27}}
    assert doc["hosts"] == [
        {"host": "web-01", "outcome": "failed", "error": None, "round_trips": 5, "ssh_bytes": None},
        {"host": "web-02", "outcome": "ok", "error": None, "round_trips": 1, "ssh_bytes": None},
    ]
    assert json.loads(json.dumps(doc)) == doc  # printable as-is


def test_report_as_json_of_an_unreachable_host():
    doc = unreachable_report().as_json()
    assert doc["hosts"][1] == {
        "host": "web-02",
        "outcome": "unreachable",
        "error": "connection refused",
        "round_trips": 0,
        "ssh_bytes": None,
    }
    assert doc["summary"]["unreachable"] == 1 and doc["summary"]["failed_hosts"] == ["web-02"]
    assert json.loads(json.dumps(doc)) == doc


def test_report_summary_text():
    text = sample_report().summary()
    assert "\033[" not in text
    assert "web-01:" in text and "web-02:" in text
    assert "Succeeded: 3 (changed=1)" in text
    assert "Failed:    1, not run: 1" in text
    assert "Unreachable" not in text
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


def test_report_summary_names_an_unreachable_host_and_why():
    text = unreachable_report().summary()
    assert "web-02: unreachable: connection refused" in text
    assert "Unreachable: web-02" in text and "Failed hosts: web-02" in text
    assert "Round trips:  web-01 1, web-02 0" in text


def test_journal_errors_are_in_the_json_and_the_summary():
    report = sample_report()
    assert "Journal:" not in report.summary()
    report.journal_errors = ["journal j.sqlite: cannot write: attempt to write a readonly database; kept in j.spool"]
    assert report.as_json()["journal_errors"] == report.journal_errors
    assert "Journal: journal j.sqlite: cannot write: attempt to write a readonly database; kept in j.spool" in (
        report.summary()
    )


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
    assert "3 ok, 1 changed, 0 pending, 1 failed" in page
    assert page.count("<tr") == 1 + 5


# --- Journal ---------------------------------------------------------------------------------


@pytest.fixture
def journal(tmp_path):
    j = Journal(tmp_path / "records" / "journal.sqlite")
    yield j
    j.close()


def record(journal: Journal, results, *, test=False, status="ok", command="foobar-ops apply web") -> str:
    run_id = journal.start_run(command=command, test=test, parameters={"hosts": "web-*"})
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
    assert json.loads(row["parameters"]) == {"hosts": "web-*"}
    row = runs.set_index("run_id").loc[second]
    assert (row["results"], row["changed"], row["failed"], row["test"]) == (2, 0, 0, 1)
    assert len(journal.runs(limit=1)) == 1


def test_journal_results_of_one_run_in_order(journal):
    run_id = record(journal, sample_results())
    record(journal, pending_report().results)
    frame = journal.results(run_id)
    assert list(frame["state_id"]) == [r.id for r in sample_results()]
    assert list(frame["status"]) == ["ok", "changed", "failed", "not_run", "ok"]
    assert list(frame["result"].astype("Int64")) == [1, 1, 0, 0, 1]
    assert json.loads(frame["changes"][1]) == {"old": {"size": 25}, "new": {"size": 27}}
    assert frame["diff"][1] == DIFF


def test_journal_results_of_an_unknown_run(journal):
    with pytest.raises(JournalError, match="no run 'nope'"):
        journal.results("nope")
    empty = journal.start_run(command="x")
    assert journal.results(empty).empty  # a known run with no results yet is not an error


def test_journal_changes_filters_by_host_state_and_since(journal):
    run_id = record(
        journal,
        sample_results()
        + [
            ok("web-02", "file.managed:/etc/hosts", Status.CHANGED, changes={"old": None, "new": {"size": 1}}),
            ok("web-02", "service.running:nginx", Status.CHANGED, changes={"new": {"active": "active"}}),
        ],
    )
    every = journal.changes()
    assert list(every["state_id"]) == [
        "service.running:nginx",
        "file.managed:/etc/hosts",
        "file.managed:/etc/haproxy/haproxy.cfg",
    ]  # newest first
    assert set(every["run_id"]) == {run_id} and set(every["command"]) == {"foobar-ops apply web"}
    assert list(journal.changes(host="web-01")["state_id"]) == ["file.managed:/etc/haproxy/haproxy.cfg"]
    assert list(journal.changes(host="web-02", state="file.managed")["name"]) == ["/etc/hosts"]
    assert list(journal.changes(state="service.running:nginx")["host"]) == ["web-02"]
    assert len(journal.changes(since="7d")) == 3
    # age one of them: it is older than a week
    old = (datetime.now(UTC) - timedelta(days=30)).isoformat(timespec="milliseconds")
    with sqlite3.connect(journal.path) as db:
        db.execute("UPDATE results SET at = ? WHERE state_id = 'file.managed:/etc/hosts'", (old,))
    assert list(journal.changes(since="7d")["state_id"]) == [
        "service.running:nginx",
        "file.managed:/etc/haproxy/haproxy.cfg",
    ]
    assert len(journal.changes(since="60d")) == 3
    assert journal.changes(since=datetime.now(UTC) + timedelta(hours=1)).empty
    assert journal.changes(host="web-03").empty


def test_journal_changes_of_test_runs_are_pending_changes(journal):
    record(journal, pending_report().results, test=True)
    assert journal.changes().empty
    pending = journal.changes(test=True)
    assert list(pending["state_id"]) == ["file.managed:/etc/haproxy/haproxy.cfg"]


def test_journal_outcomes_of_one_run_in_order(journal):
    with journal.recording(command="foobar-ops apply") as run:
        run.add(ok("web-01", "pkg.installed:curl"))
        run.add_outcome(outcome("web-01", round_trips=2))
        run.add_outcome(outcome("web-02", Outcome.UNREACHABLE, 0, "connection refused"))
    with journal.recording(command="foobar-ops apply") as other:
        other.add_outcome(outcome("web-01"))
    frame = journal.outcomes(run.id)
    assert frame[["host", "outcome", "round_trips"]].to_dict("records") == [
        {"host": "web-01", "outcome": "ok", "round_trips": 2},
        {"host": "web-02", "outcome": "unreachable", "round_trips": 0},
    ]
    assert frame["error"].isna()[0] and frame["error"][1] == "connection refused"
    assert set(frame["run_id"]) == {run.id}
    runs = journal.runs().set_index("run_id")
    assert runs.loc[run.id, "status"] == "failed"  # a host it could not reach fails the run
    assert runs.loc[run.id, "unreachable"] == 1 and runs.loc[other.id, "unreachable"] == 0
    assert runs.loc[other.id, "status"] == "ok"
    assert journal.outcomes("nope").empty


def test_a_failed_host_outcome_fails_the_run_even_when_every_result_is_ok(journal):
    with journal.recording(command="x") as run:
        run.add(ok("web-01", "pkg.installed:curl"))
        run.add_outcome(outcome("web-01", Outcome.FAILED, 1, "sudo: a password is required"))
    assert journal.run(run.id)["status"] == "failed"


def test_parse_since_ages_and_dates():
    now = datetime.now(UTC)
    for text, delta in (
        ("7d", timedelta(days=7)),
        ("12h", timedelta(hours=12)),
        ("30m", timedelta(minutes=30)),
        ("2w", timedelta(weeks=2)),
    ):
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
    run_id = journal.start_run(
        command=f"foobar-ops apply --password {value}",
        parameters={"db_password": value, "nested": {"dsn": f"mysql://app:{value}@db"}},
    )
    run = journal.run(run_id)
    assert SECRET_VALUE not in json.dumps(run)
    assert json.loads(run["parameters"]) == {"db_password": MASK, "nested": {"dsn": f"mysql://app:{MASK}@db"}}
    assert run["command"] == f"foobar-ops apply --password {MASK}"
    journal.finish_run(run_id, "error", f"boom near {value}")
    assert journal.run(run_id)["error"] == f"boom near {MASK}"


def test_results_with_a_revealed_secret_are_stored_masked(journal, db_password):
    value = db_password.reveal()
    run_id = journal.start_run(command="x")
    journal.add_result(
        run_id,
        ok(
            "web-01",
            "file.managed:/etc/app/db.ini",
            Status.CHANGED,
            changes={"new": {"line": f"password={value}"}},
            diff=f"+password={value}\n",
            comment=f"validation failed: {value}",
        ),
    )
    frame = journal.results(run_id)
    assert SECRET_VALUE not in frame.to_json()
    assert frame["diff"][0] == f"+password={MASK}\n"


def test_a_host_outcome_with_a_revealed_secret_is_stored_masked(journal, db_password):
    value = db_password.reveal()
    run_id = journal.start_run(command="x")
    journal.add_outcome(run_id, outcome("web-01", Outcome.FAILED, 1, f"sudo refused {value}"))
    assert list(journal.outcomes(run_id)["error"]) == [f"sudo refused {MASK}"]


def test_a_secret_in_a_state_name_is_stored_masked(journal, db_password):
    value = db_password.reveal()
    command = f"htpasswd -b /etc/app/.htpasswd admin {value}"
    run_id = journal.start_run(command="x")
    journal.add_result(
        run_id, Result("web-01", f"cmd.run:{command}", command, "cmd.run", Status.CHANGED, comment="run htpasswd")
    )
    assert SECRET_VALUE not in journal.results(run_id).to_json()


@pytest.mark.parametrize(
    "value", ['pa"ss-unit-61', "pa\\ss-unit-62", "pässwört-unit-63"], ids=["quote", "backslash", "non-ascii"]
)
def test_parameters_with_json_special_secrets_are_stored_masked(journal, monkeypatch, value):
    monkeypatch.setenv("FOOBAR_UNIT_ODD_PW", value)
    revealed = Secret("env:FOOBAR_UNIT_ODD_PW").reveal()
    run_id = journal.start_run(command="x", parameters={"db_password": revealed})
    assert json.loads(journal.run(run_id)["parameters"]) == {"db_password": MASK}


# --- Journal: the schema's version and its migration -------------------------------------------

#: The journal's schema before it was versioned (user_version 0): results had no status, and there
#: was no hosts table.
OLD_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  run_id TEXT PRIMARY KEY, started TEXT NOT NULL, finished TEXT, user TEXT, command TEXT,
  runbook TEXT, parameters TEXT, inventory TEXT, inventory_sha256 TEXT, version TEXT,
  git_commit TEXT, test INTEGER, status TEXT NOT NULL, output_notebook TEXT, error TEXT);
CREATE TABLE IF NOT EXISTS results (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL REFERENCES runs(run_id), at TEXT NOT NULL,
  host TEXT NOT NULL, state_id TEXT NOT NULL, state TEXT, name TEXT, result INTEGER, changed INTEGER,
  run INTEGER, changes TEXT, comment TEXT, diff TEXT, duration_ms REAL);
CREATE INDEX IF NOT EXISTS results_run ON results(run_id);
CREATE INDEX IF NOT EXISTS results_host_at ON results(host, at);
"""

#: Rows the old journal held: (state_id, result, changed, run) -> the status they migrate to.
OLD_ROWS = [
    (("pkg.installed:curl", 1, 0, 1), "ok"),
    (("file.managed:/etc/hosts", 1, 1, 1), "changed"),
    (("file.managed:/etc/motd", None, 0, 1), "pending"),
    (("service.running:nginx", 0, 0, 1), "failed"),
    (("cmd.run:check", 0, 0, 0), "not_run"),
]


@pytest.fixture
def old_journal(tmp_path):
    """A journal written by the old schema: one finished run and its results, user_version 0."""
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    db.execute(
        "INSERT INTO runs (run_id, started, finished, command, test, status) VALUES (?,?,?,?,?,?)",
        ("old-run", "2026-01-02T03:04:05.000+00:00", "2026-01-02T03:04:09.000+00:00", "foobar-ops apply", 0, "failed"),
    )
    for (state_id, result, changed, run), _ in OLD_ROWS:
        db.execute(
            "INSERT INTO results (run_id, at, host, state_id, state, name, result, changed, run, changes, "
            "comment, duration_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                "old-run",
                "2026-01-02T03:04:06.000+00:00",
                "web-01",
                state_id,
                state_id.split(":")[0],
                state_id.split(":", 1)[1],
                result,
                changed,
                run,
                "{}",
                "",
                1.0,
            ),
        )
    db.commit()
    assert db.execute("PRAGMA user_version").fetchone()[0] == 0
    db.close()
    return path


def user_version(path) -> int:
    db = sqlite3.connect(path)
    try:
        return db.execute("PRAGMA user_version").fetchone()[0]
    finally:
        db.close()


def test_a_new_journal_has_the_current_schema_version(tmp_path):
    Journal(tmp_path / "new.sqlite").close()
    assert user_version(tmp_path / "new.sqlite") == schema.SCHEMA_VERSION


def test_an_old_journal_is_migrated_on_open_and_its_rows_get_a_status(old_journal):
    journal = Journal(old_journal)
    try:
        assert user_version(old_journal) == schema.SCHEMA_VERSION
        frame = journal.results("old-run")
        assert list(frame["state_id"]) == [row[0] for row, _ in OLD_ROWS]  # nothing lost
        assert list(frame["status"]) == [status for _, status in OLD_ROWS]
        assert journal.outcomes("old-run").empty  # the hosts table exists, empty for old runs
        row = journal.runs().set_index("run_id").loc["old-run"]
        assert (row["results"], row["changed"], row["failed"], row["unreachable"]) == (5, 1, 2, 0)
        assert list(journal.changes()["state_id"]) == ["file.managed:/etc/hosts"]
        # the migrated journal takes new runs, results and outcomes
        with journal.recording(command="foobar-ops apply") as run:
            run.add(ok("web-01", "pkg.installed:curl", Status.CHANGED))
            run.add_outcome(outcome("web-01"))
        assert list(journal.results(run.id)["status"]) == ["changed"]
        assert list(journal.outcomes(run.id)["outcome"]) == ["ok"]
    finally:
        journal.close()


def test_a_journal_of_a_newer_foobar_ops_is_refused_in_one_line_and_left_as_it_is(tmp_path):
    path = tmp_path / "newer.sqlite"
    Journal(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE foobar_ops_meta SET value = '99' WHERE name = 'schema_version'")
    with pytest.raises(JournalError) as refused:
        Journal(path)
    assert str(refused.value) == (
        f"journal {path}: it has schema version 99, newer than this foobar_ops ({__version__}, "
        f"schema {schema.SCHEMA_VERSION}): upgrade foobar_ops to use it"
    )
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM foobar_ops_meta").fetchall() == [("99",)]


def test_a_migrated_journal_opens_again_unchanged(old_journal):
    Journal(old_journal).close()
    again = Journal(old_journal)
    try:
        assert user_version(old_journal) == schema.SCHEMA_VERSION
        assert list(again.results("old-run")["status"]) == [status for _, status in OLD_ROWS]
    finally:
        again.close()


# --- a journal that refuses writes once a run has started: the spool ---------------------------


def refuse_writes(journal: Journal) -> None:
    """Make the journal's database refuse every write from now on, as a file made read-only does.
    chmod alone does not stop root (who runs the tests in CI), so every new connection is also made
    read-only (SQLite's query_only): a write then fails inside SQLite, as it would on a read-only file."""
    journal.path.chmod(0o444)
    event.listen(journal.engine, "connect", lambda conn, record: conn.execute("PRAGMA query_only = ON"))
    journal.engine.dispose()


def spooled(journal: Journal) -> list[dict]:
    return [json.loads(line) for line in journal.spool.read_text().splitlines()]


def test_the_spool_of_an_embedded_journal_is_next_to_it(journal):
    assert journal.spool == journal.path.with_name("journal.sqlite.spool.jsonl")


def test_a_refused_write_is_kept_in_the_spool_and_says_where(journal):
    run_id = journal.start_run(command="foobar-ops apply web")
    refuse_writes(journal)
    with pytest.raises(JournalError, match=f"cannot write: .*readonly.*; kept in {re.escape(str(journal.spool))}"):
        journal.add_result(run_id, sample_results()[1])
    with pytest.raises(JournalError, match="kept in"):
        journal.finish_run(run_id, "ok")
    first, second = spooled(journal)
    assert (first["table"], first["run_id"]) == ("results", None)
    assert first["values"]["run_id"] == run_id and first["values"]["status"] == "changed"
    assert (second["table"], second["run_id"]) == ("runs", run_id) and second["values"]["status"] == "ok"
    assert oct(journal.spool.stat().st_mode & 0o777) == "0o600"


def test_a_run_being_recorded_goes_on_when_the_journal_refuses_and_says_so(journal):
    with journal.recording(command="foobar-ops apply web") as run:
        run.add(sample_results()[0])
        refuse_writes(journal)
        run.add(sample_results()[1])  # no error escapes
        run.add_outcome(outcome("web-01"))
    assert len(run.errors) == 3 and all("kept in" in e for e in run.errors)  # with how the run ended
    # the first result ("ok": held to be written with the next), the second, the outcome, and how the
    # run ended
    assert sample_results()[0].status is Status.OK
    assert [r["table"] for r in spooled(journal)] == ["results", "results", "hosts", "runs"]
    assert spooled(journal)[-1]["values"]["status"] == "failed"  # its journal is not whole


def test_the_spool_goes_into_the_journal_when_it_can_be_written_again(journal):
    run_id = journal.start_run(command="foobar-ops apply web")
    journal.add_result(run_id, sample_results()[0])
    refuse_writes(journal)
    for r in sample_results()[1:3]:
        with pytest.raises(JournalError):
            journal.add_result(run_id, r)
    with pytest.raises(JournalError):
        journal.finish_run(run_id, "failed")
    assert journal.replay() == 0 and journal.spool.exists()  # still refused: kept for later
    journal.path.chmod(0o644)
    reopened = Journal(journal.path)
    try:
        assert not reopened.spool.exists()
        assert list(reopened.results(run_id)["state_id"]) == [r.id for r in sample_results()[:3]]
        assert reopened.run(run_id)["status"] == "failed" and reopened.run(run_id)["finished"]
        assert reopened.replay() == 0
    finally:
        reopened.close()


def test_a_spool_that_cannot_be_rewritten_adds_nothing_so_nothing_is_added_twice(journal):
    run_id = journal.start_run(command="foobar-ops apply web")
    refuse_writes(journal)
    for r in sample_results()[:2]:
        with pytest.raises(JournalError, match="kept in"):
            journal.add_result(run_id, r)
    journal.path.chmod(0o644)
    blocked = journal.spool.with_name(journal.spool.name + ".new")
    blocked.mkdir()  # the spool cannot be rewritten (as in a folder made read-only)
    reopened = Journal(journal.path)
    try:
        assert reopened.results(run_id).empty and len(spooled(journal)) == 2  # nothing added, all kept
        blocked.rmdir()
        assert reopened.replay() == 2 and reopened.replay() == 0
        assert list(reopened.results(run_id)["state_id"]) == [r.id for r in sample_results()[:2]]  # once each
        assert not journal.spool.exists() and not blocked.exists()
    finally:
        reopened.close()


def test_a_torn_or_duplicate_spooled_line_is_set_aside_and_the_rest_replayed(journal, caplog):
    run_id = journal.start_run(command="foobar-ops apply web")
    refuse_writes(journal)
    for write in (
        lambda: journal.add_result(run_id, sample_results()[0]),
        lambda: journal.add_outcome(run_id, outcome("web-01")),
        lambda: journal.add_outcome(run_id, outcome("web-01")),  # the same host twice: a duplicate
        lambda: journal.add_result(run_id, sample_results()[1]),
    ):
        with pytest.raises(JournalError, match="kept in"):
            write()
    good = journal.spool.read_text().splitlines()
    torn = good[3][: len(good[3]) // 2]  # a write cut off half-way (a full disk, a kill)
    journal.spool.write_text("\n".join([good[0], torn, *good[1:]]) + "\n")
    with pytest.raises(JournalError, match="kept in"):
        journal.finish_run(run_id, "ok")  # appended after the torn line: not glued to it
    journal.path.chmod(0o644)
    reopened = Journal(journal.path)  # replays on open
    try:
        assert list(reopened.results(run_id)["state_id"]) == [r.id for r in sample_results()[:2]]
        assert list(reopened.outcomes(run_id)["host"]) == ["web-01"]
        assert reopened.run(run_id)["status"] == "ok"
        aside = journal.spool.with_name(journal.spool.name + ".rejected")
        assert aside.read_text().splitlines() == [torn, good[2]]  # kept for a person, never lost
        assert not journal.spool.exists()
        (said,) = reopened.rejected
        assert said == (
            f"journal {journal.path}: 2 spooled record(s) could not be added (line 2: not a record "
            f"(JSONDecodeError); line 4: IntegrityError): set aside in {aside}"
        )
        assert said in caplog.text
        assert oct(aside.stat().st_mode & 0o777) == "0o600"
        assert reopened.replay() == 0 and reopened.rejected == []
    finally:
        reopened.close()


WRITER = """
import sys
from foobar_ops.core.journal import Journal, JournalError
from foobar_ops.core.result import Result, Status

journal = Journal(sys.argv[1])


def refused(statement, params=None):
    raise JournalError("journal: cannot write: refused for the test")


journal._write = refused  # this writer's journal refuses: every record goes to the spool
for i in range(int(sys.argv[3])):
    try:
        journal.add_result(sys.argv[4], Result("web-01", f"{sys.argv[2]}-{i}", "x", "cmd.run", Status.CHANGED))
    except JournalError:
        pass
"""


def test_two_writers_racing_a_replay_lose_no_record(journal, tmp_path):
    import subprocess
    import sys

    run_id = journal.start_run(command="foobar-ops apply web")
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    count = 400
    writers = [
        subprocess.Popen([sys.executable, str(script), str(journal.path), name, str(count), run_id])
        for name in ("a", "b")
    ]
    replayed = 0
    while any(w.poll() is None for w in writers):
        replayed += journal.replay()
    assert [w.returncode for w in writers] == [0, 0]
    replayed += journal.replay()
    ids = list(journal.results(run_id)["state_id"])
    assert replayed > 0 and len(ids) == len(set(ids)) == 2 * count
    assert not journal.spool.exists() and not journal.spool.with_name(journal.spool.name + ".rejected").exists()


def test_a_refused_write_that_cannot_be_spooled_either_says_both(journal):
    run_id = journal.start_run(command="foobar-ops apply web")
    refuse_writes(journal)
    for spool in journal.spools:
        spool.parent.mkdir(parents=True, exist_ok=True)
        spool.mkdir()  # not a file: cannot be appended to
    with pytest.raises(JournalError, match=r"cannot write: .*; and no spool can be written \(.*spool.*; .*spool"):
        journal.add_result(run_id, sample_results()[1])


def test_a_journal_whose_folder_refuses_spools_to_the_records_folder(journal):
    run_id = journal.start_run(command="foobar-ops apply web")
    refuse_writes(journal)
    journal.spools[0].mkdir()  # next to the journal: refused
    with pytest.raises(JournalError, match="kept in " + re.escape(str(journal.spools[1]))):
        journal.add_result(run_id, sample_results()[1])
    assert journal.spools[1].parent != journal.spools[0].parent
    assert len(journal.spools[1].read_text().splitlines()) == 1


def test_a_journal_that_cannot_start_a_run_refuses_it(journal):
    refuse_writes(journal)
    with pytest.raises(JournalError, match="cannot write"):
        with journal.recording(command="foobar-ops apply web"):
            pytest.fail("the run must not start")
    assert not journal.spool.exists()


# --- a run whose process is gone: died --------------------------------------------------------

KILLED = """
import sys, time
from foobar_ops.core.journal import Journal
from foobar_ops.core.result import Result, Status

journal = Journal(sys.argv[1])
run_id = journal.start_run(command="foobar-ops apply web")
journal.add_result(run_id, Result("web-01", "pkg.installed:nginx", "nginx", "pkg.installed", Status.CHANGED))
print(run_id, flush=True)
time.sleep(120)
"""


def test_a_run_whose_process_was_killed_shows_as_died_with_its_last_result(journal, tmp_path):
    import signal
    import subprocess
    import sys

    from tests.conftest import run_cli

    script = tmp_path / "killed.py"
    script.write_text(KILLED)
    proc = subprocess.Popen([sys.executable, str(script), str(journal.path)], stdout=subprocess.PIPE, text=True)
    try:
        run_id = proc.stdout.readline().strip()
        assert journal.run(run_id)["status"] == "running"  # its process lives: running
        assert journal.runs().set_index("run_id").loc[run_id, "status"] == "running"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    row = journal.runs().set_index("run_id").loc[run_id]
    assert (row["status"], row["last_result"]) == ("died", "web-01 pkg.installed:nginx: changed")
    assert journal.run(run_id)["status"] == "died"
    listed = run_cli("records", "list", "--json", "--journal", journal.path)
    assert [(r["run_id"], r["status"]) for r in listed.json()["rows"]] == [(run_id, "died")], listed
    shown = run_cli("records", "show", run_id, "--json", "--journal", journal.path).json()
    assert shown["run"]["status"] == "died" and shown["run"]["last_result"] == "web-01 pkg.installed:nginx: changed"


def set_run(journal: Journal, run_id: str, **values) -> None:
    with journal.engine.begin() as conn:
        conn.execute(records.RUNS.update().where(records.RUNS.c.run_id == run_id).values(**values))


def test_a_pid_reused_by_another_process_is_not_the_run(journal):
    run_id = journal.start_run(command="foobar-ops apply web")
    assert journal.run(run_id)["status"] == "running"  # this very process
    set_run(journal, run_id, pid_start="1")  # the pid runs, but it is a process started at another time
    assert journal.run(run_id)["status"] == "died" and journal.run(run_id)["last_result"] is None


def test_a_run_of_another_machine_has_died_when_it_stopped_beating(journal):
    now = datetime.now(UTC)
    quiet, beating, old = (journal.start_run(command=f"foobar-ops apply {n}") for n in ("a", "b", "c"))
    for run_id, beat in ((quiet, now - timedelta(seconds=heartbeat.DIED_AFTER_S + 5)), (beating, now)):
        set_run(journal, run_id, machine_id="another/machine/1", pid=1, heartbeat=beat.isoformat())
    set_run(journal, old, machine_id=None, pid=None, pid_start=None, heartbeat=None)  # an older foobar_ops
    status = journal.runs().set_index("run_id")["status"]
    assert (status[quiet], status[beating], status[old]) == ("died", "running", "running")


def test_a_running_run_beats_until_it_ends_and_a_run_started_later_beats_too(journal, monkeypatch):
    monkeypatch.setattr(heartbeat, "HEARTBEAT_S", 0.05)

    def beats(run_id: str) -> str:
        return journal.run(run_id)["heartbeat"]

    def advances(run_id: str) -> bool:
        first = beats(run_id)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and beats(run_id) == first:
            time.sleep(0.02)
        return beats(run_id) != first

    first = journal.start_run(command="foobar-ops apply web")
    assert advances(first)  # the thread beats while the run runs
    journal.finish_run(first, "ok")
    time.sleep(0.2)  # a beat already on its way lands
    last = beats(first)
    time.sleep(0.3)  # the beating thread has ended: no run left
    assert beats(first) == last
    second = journal.start_run(command="foobar-ops apply web")  # a new thread beats for it
    assert advances(second)
    journal.close()
    time.sleep(0.2)
    last = beats(second)
    time.sleep(0.3)
    assert beats(second) == last  # a closed journal stops beating


def test_a_finished_run_is_never_shown_as_died(journal):
    run_id = record(journal, sample_results())
    set_run(journal, run_id, pid_start="1")
    assert journal.run(run_id)["status"] == "ok"


def test_a_password_in_a_url_on_the_command_line_is_never_recorded(journal):
    run_id = journal.start_run(command="foobar-ops apply --journal 'mysql+pymysql://ops:Url-Pw-7731@db-1/journal'")
    assert journal.run(run_id)["command"] == "foobar-ops apply --journal 'mysql+pymysql://ops:********@db-1/journal'"
    for kept in (journal.path, journal.path.with_name(journal.path.name + "-wal")):
        assert not kept.exists() or b"Url-Pw-7731" not in stored_bytes(kept)


def test_a_journal_url_given_with_journal_is_a_url_and_its_password_is_never_shown():
    from tests.conftest import PROJECT, run_cli

    done = run_cli("records", "list", "--journal", "mysql+pymysql://ops:Url-Pw-8812@127.0.0.1:1/journal")
    assert done.code == 2 and done.out == "", done
    (line,) = done.err.splitlines()  # one line, naming the journal, no traceback
    assert line.startswith("foobar-ops: error: journal mysql+pymysql://ops:***@127.0.0.1:1/journal: ")
    assert "Url-Pw-8812" not in done.err
    assert not (PROJECT / "mysql+pymysql:").exists()  # never taken for a SQLite path


def test_ok_results_are_held_and_written_with_the_next_change_or_at_a_flush_in_order(journal):
    # an "ok" result (nothing was done) waits to be written with the next result that did or
    # failed something, or with the engine's flush after a host's turn: one write, not one each
    first, change, last = sample_results()[:3]
    assert first.status is Status.OK and change.status is Status.CHANGED
    with journal.recording(command="foobar-ops apply web") as run:
        run.add(first)
        assert journal.results(run.id).empty  # held
        run.add(change)
        assert list(journal.results(run.id)["state_id"]) == [first.id, change.id]
        quiet = ok("web-02", "pkg.installed:nginx")
        run.add(quiet)
        assert len(journal.results(run.id)) == 2
        run.flush()
        assert list(journal.results(run.id)["state_id"]) == [first.id, change.id, quiet.id]
        run.add(ok("web-02", "pkg.installed:curl"))
    # how the run ended is written after what it held
    assert list(journal.results(run.id)["state_id"])[-1] == "pkg.installed:curl"


def test_a_hosts_results_stay_in_order_when_another_hosts_batch_is_slow_to_write(journal, monkeypatch):
    import threading

    real = journal.add_results

    def add_results(run_id, batch):
        if any(r.host == "web-02" for r, _ in batch):
            time.sleep(0.2)  # web-02's thread is held up between taking its batch and writing it
        real(run_id, batch)

    monkeypatch.setattr(journal, "add_results", add_results)
    with journal.recording(command="foobar-ops apply") as run:
        run.add(ok("web-01", "a1-check"))  # held
        other = threading.Thread(target=run.add, args=(ok("web-02", "b1-change", Status.CHANGED),))
        other.start()
        time.sleep(0.05)
        run.add(ok("web-01", "a2-change", Status.CHANGED))  # web-01's next result
        other.join()
    frame = journal.results(run.id)
    assert list(frame[frame.host == "web-01"]["state_id"]) == ["a1-check", "a2-change"]


def test_a_batch_the_first_spool_cannot_take_whole_is_kept_once_in_the_next(journal, monkeypatch):
    from foobar_ops.core import spool as spooling

    real = spooling.append_lines

    def full_disk(path, lines):
        if path == journal.spools[0]:  # (what append_lines wrote of it is taken back: the next test)
            raise OSError(28, "No space left on device")
        real(path, lines)

    def refused(statement, params=None):
        raise JournalError("journal: cannot write: disk I/O error")

    run = journal.begin(command="foobar-ops apply")
    monkeypatch.setattr(journal, "_write", refused)
    monkeypatch.setattr(spooling, "append_lines", full_disk)
    for i in range(4):
        run.add(ok("web-01", f"s{i}"))
    run.flush()
    assert run.errors and f"kept in {journal.spools[1]}" in run.errors[0]
    monkeypatch.undo()
    assert not journal.spools[0].exists() or not journal.spools[0].read_text()
    assert len(journal.spools[1].read_text().splitlines()) == 4
    assert journal.replay() == 4
    assert list(journal.results(run.id)["state_id"]) == ["s0", "s1", "s2", "s3"]  # each once


def test_the_spool_takes_back_what_it_wrote_of_a_batch_it_could_not_take_whole(tmp_path, monkeypatch):
    from foobar_ops.core import spool as spooling

    path = tmp_path / "j.spool.jsonl"
    spooling.Spool(path).extend([{"n": 0}])
    before = path.read_bytes()
    real = spooling.os.write
    writes = []

    def short_then_full(fd, data):
        writes.append(len(data))
        if len(writes) == 1:
            return real(fd, bytes(data[:7]))  # part of it
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(spooling.os, "write", short_then_full)
    with pytest.raises(OSError):
        spooling.Spool(path).extend([{"n": 1}, {"n": 2}])
    monkeypatch.undo()
    assert path.read_bytes() == before
