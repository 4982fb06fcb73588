"""Runs recorded by another journal (the scheduler host's) are added once, with their results and
host outcomes; a run still running there, or already here, is left alone."""

from __future__ import annotations

from foobar_ops.core.journal import Journal


def test_finished_runs_of_another_journal_are_added_once(tmp_path, monkeypatch):
    monkeypatch.setenv("FOOBAR_OPS_USER", "schedule-health_report")
    there = Journal(tmp_path / "there.sqlite")
    done = there.start_run(command="foobar-ops runbook health_report -i x", runbook="health_report")
    there.finish_run(done, "ok")
    running = there.start_run(command="foobar-ops runbook health_report -i x", runbook="health_report")
    runs = there.runs()
    rows = [
        dict(r)
        for r in runs.drop(columns=["results", "changed", "failed", "unreachable", "last_result"]).to_dict("records")
    ]
    for row in rows:
        row["finished"] = None if row["run_id"] == running else row["finished"]
    here = Journal(tmp_path / "here.sqlite")
    assert here.import_runs(rows, [], []) == 1
    assert here.import_runs(rows, [], []) == 0
    got = here.run(done)
    assert got["status"] == "ok" and got["user"] == "schedule-health_report" and here.run(running) is None


def test_records_list_says_when_an_identity_was_given_and_json_keeps_it_apart(tmp_path, monkeypatch):
    from tests.conftest import run_cli

    journal = tmp_path / "j.sqlite"
    monkeypatch.setenv("FOOBAR_OPS_USER", "alice")
    opened = Journal(journal)
    opened.finish_run(opened.start_run(command="foobar-ops apply -i x"), "ok")
    table = run_cli("records", "list", "--journal", journal)
    assert table.code == 0 and "alice (FOOBAR_OPS_USER)" in table.out
    [row] = run_cli("records", "list", "--journal", journal, "--json").json()["rows"]
    assert row["user"] == "alice" and row["user_source"] == "FOOBAR_OPS_USER"
