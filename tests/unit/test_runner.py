"""The runbook runner without hosts: small runbooks in a folder of their own, run with papermill on
the project's kernel. Parameters are refused before any cell runs; a failing cell, a cell past its
time and a dead kernel are told apart; the output notebook and its HTML are always kept; secret
values are scrubbed; every run is journaled."""

from __future__ import annotations

import json
import sqlite3
import sys

import pytest

from foobar_ops.core.journal import Journal
from foobar_ops.runbooks import parameters as params_mod
from foobar_ops.runbooks import runner
from foobar_ops.runbooks.parameters import RunbookParameterError, declared, resolve
from tests.conftest import run_cli
from tests.unit.runbook_files import PARAMS, runbook_folders, write


@pytest.fixture
def books(tmp_path, monkeypatch):
    found = runbook_folders(tmp_path, monkeypatch)
    folder = found["folder"]
    monkeypatch.setenv("FOOBAR_TEST_RUNNER_TOKEN", "tok-runner-7d2c-never-shown")
    write(
        folder,
        "fine",
        """
        # %%
        import foobar_ops as fo

        rb = fo.runbook(globals(), "fine")
        secret = fo.Secret(token)
        print("working for", who, count, mode, secret.reveal())  # a careless print: the runner scrubs it

        # %%
        assert count > 0
    """,
    )
    write(
        folder,
        "fails",
        """
        # %%
        import foobar_ops as fo

        rb = fo.runbook(globals())
        print("first cell ran")

        # %%
        raise RuntimeError("the verification failed on purpose")

        # %%
        print("never")
    """,
    )
    write(
        folder,
        "slow",
        """
        # %%
        import time

        time.sleep(30)
    """,
    )
    write(
        folder,
        "dies",
        """
        # %%
        import os

        os._exit(3)
    """,
    )
    return found


def run(books, name, **kw):
    kw.setdefault("stream", False)
    return runner.run(name, journal=books["journal"], **kw)


def test_declared_parameters_read_from_the_cell():
    found = {p.name: p for p in declared(PARAMS.split("\n", 1)[1])}
    assert found["count"].kind == "int" and found["count"].default == 2 and found["count"].help == "how many"
    assert found["mode"].choices == ("fast", "slow") and found["who"].required
    assert found["token"].kind == "secret" and found["run_id"].optional


@pytest.mark.parametrize(
    "given, texts, words",
    [
        ({"cuont": 3}, {}, "unknown parameter 'cuont' (did you mean 'count'?)"),
        ({}, {}, "'who' required"),
        ({"who": "x", "count": "3"}, {}, "parameter 'count' must be int"),
        ({"who": "x"}, {"count": "three"}, "parameter 'count' must be int"),
        ({"who": "x", "mode": "medium"}, {}, "parameter 'mode' must be one of 'fast', 'slow'"),
        ({"who": "x", "token": "a-literal-value"}, {}, "parameter 'token' must be a secret reference"),
    ],
)
def test_bad_parameters_are_refused_before_any_cell_runs(books, given, texts, words):
    done = run(books, "fine", parameters=given, texts=texts)
    assert done.outcome == "refused" and done.exit_code == 2 and words in done.error
    assert done.output_notebook is None  # no cell ran
    row = Journal(books["journal"]).run(done.run_id)
    assert row["status"] == "refused" and words in row["error"]
    assert "a-literal-value" not in json.dumps(row)


def test_command_line_values_take_the_declared_types(books):
    done = run(books, "fine", texts={"who": "ops", "count": "3", "mode": "slow"})
    assert done.ok, done.error
    text = done.output_notebook.read_text()
    assert "working for ops 3 slow" in text


def test_a_good_run_keeps_its_notebook_and_html_links_them_and_scrubs_the_secret(books):
    done = run(books, "fine", parameters={"who": "ops"})
    assert done.ok and done.exit_code == 0
    assert done.output_notebook.exists() and done.html.exists()
    assert done.output_notebook.parent == books["tmp"] / "records" / "runbooks"
    value = "tok-runner-7d2c-never-shown"
    for path in (done.output_notebook, done.html, books["journal"]):
        assert value.encode() not in path.read_bytes(), path
    notebook = json.loads(done.output_notebook.read_text())
    assert notebook["metadata"]["papermill"]["parameters"]["token"] == "env:FOOBAR_TEST_RUNNER_TOKEN"
    assert "working for ops 2 fast ********" in done.output_notebook.read_text()
    row = Journal(books["journal"]).run(done.run_id)
    assert row["status"] == "ok" and row["runbook"] == "fine"
    assert row["output_notebook"] == str(done.output_notebook) and row["output_html"] == str(done.html)


def test_a_failing_cell_fails_the_run_naming_the_cell_and_keeps_the_notebook(books):
    done = run(books, "fails", parameters={"who": "ops"})
    assert done.outcome == "failed" and done.exit_code == 1
    assert "raised RuntimeError: the verification failed on purpose" in done.error and "cell" in done.error
    text = done.output_notebook.read_text()
    assert (
        "first cell ran" in text
        and "the verification failed on purpose" in text
        and "never" not in text.split("the verification failed on purpose")[-1].split('"source"')[0]
    )
    assert done.html.exists() and Journal(books["journal"]).run(done.run_id)["status"] == "failed"


def test_a_cell_past_its_time_is_a_timeout(books):
    done = run(books, "slow", parameters={"who": "ops"}, cell_timeout=3)
    assert done.outcome == "timeout" and done.exit_code == 3
    assert "ran past its 3 s" in done.error and "cell 3 ('import time')" in done.error
    assert done.output_notebook.exists() and done.html.exists()


def test_a_dead_kernel_is_told_apart(books):
    done = run(books, "dies", parameters={"who": "ops"})
    assert done.outcome == "kernel-died" and done.exit_code == 4
    assert "the kernel died during cell 3 ('import os')" in done.error
    assert done.output_notebook.exists()


def test_the_command_line_json_contract_and_list(books):
    done = run_cli("runbook", "fine", "-p", "who", "ops", "--json", "--journal", books["journal"])
    assert done.code == 0, done
    doc = done.json()
    assert set(doc) >= {"run_id", "runbook", "outcome", "output_notebook", "html"} and doc["outcome"] == "ok"
    listed = run_cli("runbook", "list", "--json").json()
    fine = next(r for r in listed if r["name"] == "fine")
    assert fine["description"] == "A test runbook"
    assert [p["name"] for p in fine["parameters"]] == ["count", "mode", "who", "token"]
    refused = run_cli("runbook", "fine", "-p", "tset", "true", "--json", "--journal", books["journal"])
    assert refused.code == 2 and "unknown parameter 'tset'" in refused.json()["error"]


def test_the_notebook_checks_its_parameters_itself_when_run_with_papermill_directly(books):
    import papermill

    from foobar_ops.runbooks.catalog import find

    nb = find("fine").notebook()
    with pytest.raises(papermill.PapermillExecutionError) as info:
        papermill.execute_notebook(
            nb,
            str(books["tmp"] / "out.ipynb"),
            parameters={"who": "x", "mode": "medium"},
            kernel_name=runner.ensure_kernel(),
            progress_bar=False,
        )
    assert info.value.ename == "RunbookParameterError" and "'mode' must be one of" in info.value.evalue


def test_resolve_gives_defaults_and_parses_yaml_text():
    decl = declared(PARAMS.split("\n", 1)[1])
    values = resolve(decl, {"who": "w"}, {"count": "7"})
    assert values["count"] == 7 and values["mode"] == "fast" and values["token"].startswith("env:")
    with pytest.raises(RunbookParameterError):
        params_mod.check_parameters({"__annotations__": {"n": int}, "n": True})
    assert sys.modules.get("sqlite3") is sqlite3


def test_progress_names_each_finished_cell_out_of_all_the_cells_run(books):
    import io

    stream = io.StringIO()
    done = run(books, "fine", parameters={"who": "ops"}, stream=stream)
    assert done.ok
    lines = [line for line in stream.getvalue().splitlines() if line.startswith("[fine] cell ")]
    notebook = json.loads(done.output_notebook.read_text())
    total = len(notebook["cells"])  # papermill's injected-parameters cell included
    assert [line.split(" (")[0] for line in lines] == [f"[fine] cell {n}/{total} done" for n in range(1, total + 1)]
