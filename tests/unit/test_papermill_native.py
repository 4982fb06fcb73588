"""Runbooks are papermill-native: papermill's own help lists the parameters the catalog declares,
and a direct papermill run is checked and journaled like a run through the runner."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import papermill
import pytest

from foobar_ops.core.journal import Journal
from foobar_ops.runbooks import runner
from foobar_ops.runbooks.catalog import all_runbooks, find

from .runbook_files import runbook_folders, write


@pytest.mark.parametrize("book", [b.name for b in all_runbooks()])
def test_papermill_help_lists_every_parameter_the_catalog_declares(book):
    found = find(book)
    inferred = papermill.inspect_notebook(str(found.path.with_suffix(".ipynb")))
    for param in found.parameters():
        assert param.name in inferred, f"{book}: papermill does not see {param.name}"
        seen = inferred[param.name]
        assert seen["help"].startswith(param.help.split(";")[0]) or not param.help, (book, param.name, seen)
        assert seen["inferred_type_name"] not in ("None", ""), (book, param.name, seen)


def test_the_papermill_command_prints_each_parameter_with_its_type_default_and_help():
    shown = subprocess.run(
        [sys.executable, "-m", "papermill", "--help-notebook", str(find("lb_maintenance").path.with_suffix(".ipynb"))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    assert 'action: Literal["drain","maint","ready"] (default "drain") what to do with it' in text
    assert "server: str (default ...) the web server" in text
    assert "timeout: float (default 60) seconds a drain waits" in text


@pytest.fixture
def books(tmp_path, monkeypatch):
    found = runbook_folders(tmp_path, monkeypatch)
    monkeypatch.setenv("FOOBAR_TEST_RUNNER_TOKEN", "tok-native-never-shown")
    write(
        found["folder"],
        "native",
        """
        # %%
        import foobar_ops as fo

        rb = fo.runbook(globals(), "native")
        print("working for", who, count, mode)
        """,
    )
    return found


def test_a_direct_papermill_run_warns_of_nothing_and_is_journaled(books, caplog):
    caplog.set_level(logging.WARNING, logger="papermill")
    out = books["tmp"] / "native-direct.ipynb"
    papermill.execute_notebook(
        find("native").notebook(),
        str(out),
        parameters={"who": "ops", "mode": "slow", "count": 4},
        kernel_name=runner.ensure_kernel(),
        progress_bar=False,
    )
    assert not [r for r in caplog.records if "unknown parameter" in r.getMessage().lower()], caplog.text
    assert "working for ops 4 slow" in out.read_text()
    rows = Journal(books["records"] / "journal.sqlite").runs()
    mine = rows[rows["command"] == "papermill native"]
    assert len(mine) == 1, rows
    row = mine.iloc[0]
    assert row["status"] == "ok" and row["runbook"] == "native"
    assert json.loads(row["parameters"])["mode"] == "slow"


def test_a_direct_papermill_run_with_an_unknown_parameter_is_refused_with_the_runners_words(books, caplog):
    caplog.set_level(logging.WARNING, logger="papermill")
    refused = runner.run("native", parameters={"who": "x", "cuont": 3}, journal=books["journal"], stream=False)
    with pytest.raises(papermill.PapermillExecutionError) as info:
        papermill.execute_notebook(
            find("native").notebook(),
            str(books["tmp"] / "out.ipynb"),
            parameters={"who": "x", "cuont": 3},
            kernel_name=runner.ensure_kernel(),
            progress_bar=False,
        )
    assert info.value.ename == "RunbookParameterError"
    assert info.value.evalue == refused.error
    assert "Passed unknown parameter: cuont" in caplog.text  # the warning the good run must not give


def test_papermill_typed_values_are_read_as_the_runner_reads_their_text(books):
    # papermill's command line turns `-p who 123` into an int and `-p count 5` stays an int: the
    # runner reads both as text of the declared type, and so does the notebook run directly
    out = books["tmp"] / "native-typed.ipynb"
    papermill.execute_notebook(
        find("native").notebook(),
        str(out),
        parameters={"who": 123, "count": "5"},
        kernel_name=runner.ensure_kernel(),
        progress_bar=False,
    )
    assert "working for 123 5 fast" in out.read_text()


def test_a_refused_or_spoofed_direct_run_is_journaled_as_papermills_own(books):
    with pytest.raises(papermill.PapermillExecutionError):
        papermill.execute_notebook(
            find("native").notebook(),
            str(books["tmp"] / "bad.ipynb"),
            parameters={"who": "x", "cuont": 3},
            kernel_name=runner.ensure_kernel(),
            progress_bar=False,
        )
    papermill.execute_notebook(
        find("native").notebook(),
        str(books["tmp"] / "spoof.ipynb"),
        parameters={"who": "x", "run_id": "20990101-000000-abcdef"},  # not a run the runner started
        kernel_name=runner.ensure_kernel(),
        progress_bar=False,
    )
    rows = Journal(books["records"] / "journal.sqlite").runs()
    mine = rows[rows["command"] == "papermill native"]
    assert sorted(mine["status"]) == ["ok", "refused"], mine[["status", "error"]]
    assert "unknown parameter 'cuont'" in mine[mine["status"] == "refused"].iloc[0]["error"]
