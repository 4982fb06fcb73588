"""The operations the command line lists hosts and reads the records through."""

from __future__ import annotations

import pytest

from foobar_ops import ops
from foobar_ops.core import paths
from foobar_ops.core.journal import Journal, JournalError

INVENTORY = (
    "hosts:\n"
    "  web-01:\n    address: 10.77.0.11\n    roles: [nginx]\n"
    "  lb-01:\n    address: 10.77.0.10\n    roles: [haproxy]\n"
)


def test_hosts_lists_the_inventorys_hosts_and_where_it_is(tmp_path):
    path = tmp_path / "inv.yml"
    path.write_text(INVENTORY)
    found = ops.hosts(path)
    assert found["inventory"] == str(path)
    assert [h["name"] for h in found["hosts"]] == ["web-01", "lb-01"]
    assert [h["name"] for h in ops.hosts(path, "role:haproxy")["hosts"]] == ["lb-01"]


def test_records_read_one_journal_opened_once(tmp_path):
    journal = ops.open_journal(tmp_path / "journal.sqlite")
    try:
        assert isinstance(journal, Journal)
        run_id = journal.start_run(command="foobar-ops apply", test=True, parameters={})
        journal.finish_run(run_id, "ok")
        assert list(ops.records_runs(journal)["run_id"]) == [run_id]
        assert ops.records_results(run_id, journal).empty
        whole = ops.records_run(run_id, journal)
        assert whole["run"]["run_id"] == run_id and whole["results"].empty and whole["hosts"].empty
        assert ops.records_changes(journal, host="web-01").empty
        with pytest.raises(JournalError, match="no run 'nope'"):
            ops.records_results("nope", journal)
        with pytest.raises(JournalError, match="no run 'nope'"):
            ops.records_run("nope", journal)
    finally:
        journal.close()


def test_record_paths_are_the_cores():
    assert ops.record_paths() == {**paths.describe(), "lab_ca": "/var/lib/foobar-ops/lab/tls/ca.crt"}
