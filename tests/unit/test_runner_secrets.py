"""Secrets never leave the runner, whatever the runbook does with them and however the run ends:
a runbook that prints a secret it was given and raises an error holding it, run by the real
command line (real papermill, real kernel), leaves the value in none of its streamed output, its
--json, the notebook, the HTML or the journal; a SIGTERM mid-run still leaves a scrubbed notebook,
its HTML and a final status; what the runner keeps is its owner's only."""

from __future__ import annotations

import html
import json
import os
import re
import signal
import stat
import subprocess
import time
from pathlib import Path

import nbformat
import pytest

from foobar_ops.core.journal import Journal
from tests.conftest import FOOBAR_OPS, PROJECT, run_cli, stored_bytes
from tests.unit.runbook_files import runbook_folders, write

TOKEN_ENV = "FOOBAR_TEST_RUNNER_TOKEN"

LEAKS = """
    # %%
    import sys

    import foobar_ops as fo

    rb = fo.runbook(globals())
    value = fo.Secret(token).reveal()
    print("the token is", value)
    print(repr({"token": value}))
    print("on stderr too:", value, file=sys.stderr)

    # %%
    raise RuntimeError(f"refused token {value} <img src=x onerror=alert(1)>")
"""

PIECES = """
    # %%
    import sys
    import time

    import foobar_ops as fo

    rb = fo.runbook(globals())
    value = fo.Secret(token).reveal()
    sys.stdout.write("in two pieces: " + value[:4])
    sys.stdout.flush()
    time.sleep(0.5)  # the first piece goes out as an output of its own
    print(value[4:], "and the rest")
"""

SLEEPS = """
    # %%
    import foobar_ops as fo

    rb = fo.runbook(globals())
    print("started with", fo.Secret(token).reveal(), flush=True)

    # %%
    import time

    time.sleep(120)
"""


@pytest.fixture
def books(tmp_path, monkeypatch):
    found = runbook_folders(tmp_path, monkeypatch)
    for name, body in (("leaks", LEAKS), ("sleeps", SLEEPS), ("pieces", PIECES)):
        write(found["folder"], name, body)
    return found


def forms(value: str) -> set[str]:
    """How a value may be written: as it is, escaped in JSON, escaped in HTML."""
    return {value, json.dumps(value)[1:-1], html.escape(value), html.escape(json.dumps(value)[1:-1])}


def assert_nowhere(value: str, *texts: str | bytes) -> None:
    for text in texts:
        body = text.decode(errors="replace") if isinstance(text, bytes) else text
        body = body.replace('"execution_count"', '"<the notebook key>"')  # its structure, not the secret
        for form in forms(value):
            assert form not in body, (form, body[max(0, body.find(form) - 200) : body.find(form) + 200])


@pytest.mark.parametrize(
    "value",
    ['pa"ss\\wo-rd', "tok-7d2c-plain-value", "ecution_count"],
    ids=["quote-backslash", "plain", "a-notebook-key"],
)
def test_a_secret_printed_and_raised_is_in_none_of_the_outputs(books, monkeypatch, value):
    monkeypatch.setenv(TOKEN_ENV, value)
    streamed = run_cli("runbook", "leaks", "-p", "who", "ops", "--journal", books["journal"])
    assert streamed.code == 1, streamed
    assert "the token is ********" in streamed.err  # streamed as it ran, masked
    assert "raised RuntimeError: refused token ********" in streamed.err
    as_json = run_cli("runbook", "leaks", "-p", "who", "ops", "--json", "--journal", books["journal"])
    assert as_json.code == 1, as_json
    doc = as_json.json()
    assert doc["outcome"] == "failed" and "refused token ********" in doc["error"]
    notebook, page = Path(doc["output_notebook"]), Path(doc["html"])
    nbformat.validate(nbformat.read(notebook, as_version=4))  # still a notebook
    assert "the token is ********" in notebook.read_text()
    assert_nowhere(
        value,
        streamed.out,
        streamed.err,
        as_json.out,
        as_json.err,
        notebook.read_bytes(),
        page.read_bytes(),
        stored_bytes(books["journal"]),
    )
    row = Journal(books["journal"]).run(doc["run_id"])
    assert row["status"] == "failed" and row["output_html"] == str(page)


def test_a_secret_written_in_two_pieces_is_masked_in_the_streamed_output(books, monkeypatch):
    value = "tok-7d2c-in-pieces"
    monkeypatch.setenv(TOKEN_ENV, value)
    done = run_cli("runbook", "pieces", "-p", "who", "ops", "--journal", books["journal"])
    assert done.code == 0, done
    assert "in two pieces: ******** and the rest" in done.err.splitlines()
    assert [line for line in done.err.splitlines() if "Working directory:" in line] == [f"Working directory: {PROJECT}"]
    assert_nowhere(value, done.out, done.err)
    assert value[:4] not in done.err and value[4:] not in done.err
    (notebook,) = (books["records"] / "runbooks").glob("pieces-*.ipynb")
    assert "in two pieces: ******** and the rest" in notebook.read_text()
    assert value[4:] not in notebook.read_text()


def test_the_error_is_text_in_the_html_never_markup(books, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, "tok-7d2c-plain-value")
    doc = run_cli("runbook", "leaks", "-p", "who", "ops", "--json", "--journal", books["journal"]).json()
    page = Path(doc["html"]).read_text()
    assert not re.search(r"<img[^>]*onerror", page)  # no tag that would run it
    assert "&lt;img src=x onerror=alert(1)&gt;" in page  # the runner's note, escaped


@pytest.mark.parametrize("value", ["e", "abcde"])
def test_a_secret_too_short_to_mask_is_refused_before_anything_runs(books, monkeypatch, value):
    monkeypatch.setenv(TOKEN_ENV, value)
    done = run_cli("runbook", "leaks", "-p", "who", "ops", "--json", "--journal", books["journal"])
    assert done.code == 2, done
    doc = done.json()
    assert doc["outcome"] == "refused" and doc["output_notebook"] is None
    assert doc["error"] == (
        f"parameter 'token': secret env:{TOKEN_ENV}: the value is too short to be masked safely "
        f"({len(value)} character(s); at least 6): use a longer secret"
    )
    assert "Traceback" not in done.err
    assert Journal(books["journal"]).run(doc["run_id"])["status"] == "refused"
    assert not list(books["records"].rglob("*.ipynb"))  # no cell ran
    plain = run_cli("runbook", "leaks", "-p", "who", "ops", "--journal", books["journal"])
    assert plain.code == 2 and plain.out == ""
    assert plain.err.splitlines() == [f"foobar-ops: error: runbook leaks: {doc['error']}"]  # one line, naming it


@pytest.mark.parametrize(
    "how",
    [
        ["-p", "token", 'pa"ss\\wo-rd-literal'],
        ["-y", '{token: "pa\\"ss\\\\wo-rd-literal"}'],
        ["-p", "token", "x"],  # too short to be masked as text: its whole word is
    ],
    ids=["-p", "-y", "short"],
)
def test_a_literal_secret_on_the_command_line_is_refused_and_never_recorded(books, monkeypatch, how):
    monkeypatch.setenv(TOKEN_ENV, "tok-7d2c-plain-value")
    done = run_cli("runbook", "leaks", "-p", "who", "ops", *how, "--json", "--journal", books["journal"])
    assert done.code == 2 and "must be a secret reference" in done.json()["error"], done
    row = Journal(books["journal"]).run(done.json()["run_id"])
    literal = 'pa"ss\\wo-rd-literal' if how[-1] != "x" else None
    if literal:
        assert_nowhere(literal, done.out, done.err, stored_bytes(books["journal"]), row["command"])
        assert "********" in row["command"]
    else:
        assert "x" not in row["command"].replace("foobar-ops", "") and "********" in row["command"]
    assert row["command"].startswith("foobar-ops runbook leaks -p who ops")


def start_sleeping(books) -> tuple[subprocess.Popen, list[str]]:
    """Start `runbook sleeps` and return once its first cell has printed (masked)."""
    proc = subprocess.Popen(
        [str(FOOBAR_OPS), "runbook", "sleeps", "-p", "who", "ops", "--journal", str(books["journal"])],
        cwd=PROJECT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        seen.append(line)
        if "started with" in line or not line:
            break
    assert any("started with ********" in line for line in seen), seen
    return proc, seen


def test_sigterm_mid_run_leaves_a_scrubbed_notebook_its_html_and_a_final_status(books, monkeypatch):
    value = 'sig"term\\tok-61a'
    monkeypatch.setenv(TOKEN_ENV, value)
    proc, seen = start_sleeping(books)
    time.sleep(1)  # into the sleeping cell
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, (out, err)
    assert err.splitlines()[-1] == "foobar-ops: terminated" and "Traceback" not in err
    runs = Journal(books["journal"]).runs()
    assert list(runs["status"]) == ["terminated"]
    row = runs.iloc[0]
    assert "terminated during cell" in row["error"] and row["finished"]
    notebook, page = Path(row["output_notebook"]), Path(row["output_html"])
    nbformat.validate(nbformat.read(notebook, as_version=4))
    assert "started with ********" in notebook.read_text()
    assert "foobar-ops: terminated" in notebook.read_text()  # the note on the cell it stopped in
    assert_nowhere(value, out, err, "".join(seen), notebook.read_bytes(), page.read_bytes())
    assert_nowhere(value, stored_bytes(books["journal"]))


def test_a_runbook_run_killed_outright_shows_as_died(books, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, "tok-7d2c-plain-value")
    proc, _ = start_sleeping(books)
    listed = run_cli("records", "list", "--json", "--journal", books["journal"]).json()["rows"]
    assert [r["status"] for r in listed] == ["running"]  # alive
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    listed = run_cli("records", "list", "--journal", books["journal"])
    header, row = listed.out.splitlines()
    assert " died " in row and "LAST_RESULT" in header, listed
    assert mode(Path(Journal(books["journal"]).runs().iloc[0]["output_notebook"])) == 0o600


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_what_a_run_keeps_is_its_owners_only(books, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, "tok-7d2c-plain-value")
    books["records"].mkdir(mode=0o755)
    os.chmod(books["records"], 0o755)  # made by an older foobar_ops: readable by all
    doc = run_cli("runbook", "leaks", "-p", "who", "ops", "--json", "--journal", books["journal"]).json()
    assert mode(books["records"]) == 0o700 and mode(books["records"] / "runbooks") == 0o700
    assert mode(Path(doc["output_notebook"])) == 0o600 and mode(Path(doc["html"])) == 0o600
    assert mode(books["journal"]) == 0o600


def test_a_records_folder_a_team_shares_on_purpose_keeps_its_group(books, monkeypatch):
    monkeypatch.setenv(TOKEN_ENV, "tok-7d2c-plain-value")
    books["records"].mkdir()
    os.chmod(books["records"], 0o2770)  # chgrp TEAM DIR; chmod 2770 DIR
    monkeypatch.delenv("FOOBAR_OPS_JOURNAL", raising=False)
    doc = run_cli("runbook", "leaks", "-p", "who", "ops", "--json").json()
    assert mode(books["records"]) == 0o2770 and mode(books["records"] / "runbooks") == 0o2770
    assert mode(Path(doc["output_notebook"])) == 0o660 and mode(Path(doc["html"])) == 0o660
    assert mode(books["records"] / "journal.sqlite") == 0o660


def test_a_shared_folder_named_as_the_records_folder_is_never_closed(tmp_path, monkeypatch):
    from foobar_ops.core import privacy

    sticky = tmp_path / "like-tmp"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    monkeypatch.setenv("FOOBAR_OPS_HOME", str(sticky))  # FOOBAR_OPS_HOME=/tmp, say
    privacy.make_dir(sticky)
    assert mode(sticky) == 0o1777
    mine = tmp_path / "records"
    mine.mkdir()
    os.chmod(mine, 0o755)
    monkeypatch.setenv("FOOBAR_OPS_HOME", str(mine))
    privacy.make_dir(mine)
    assert mode(mine) == 0o700


def test_a_folder_a_journal_path_names_is_left_as_it_is_and_the_journal_is_private(tmp_path, monkeypatch):
    monkeypatch.setenv("FOOBAR_OPS_HOME", str(tmp_path / "records"))
    elsewhere = tmp_path / "team-journals"
    elsewhere.mkdir()
    os.chmod(elsewhere, 0o755)  # not foobar_ops' to close: --journal merely puts a file there
    Journal(elsewhere / "journal.sqlite").close()
    assert mode(elsewhere) == 0o755 and mode(elsewhere / "journal.sqlite") == 0o600
    os.chmod(elsewhere / "journal.sqlite", 0o644)  # made readable by all (an older foobar_ops, a hand)
    Journal(elsewhere / "journal.sqlite").close()
    assert mode(elsewhere / "journal.sqlite") == 0o600  # tightened when it is next opened
    made = tmp_path / "new" / "deeper"
    Journal(made / "journal.sqlite").close()  # the folders it makes are private
    assert mode(made) == 0o700 and mode(made.parent) == 0o700


def test_a_notebook_cut_short_is_still_masked_as_text(tmp_path):
    from foobar_ops.core.secrets import remember
    from foobar_ops.runbooks import outputs

    value = 'cut"short\\tok-5e1'
    remember(value)
    notebook = tmp_path / "cut.ipynb"
    printed = nbformat.v4.new_output("stream", name="stdout", text=f"the token is {value}\n")
    whole = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(token)", outputs=[printed])])
    notebook.write_text(nbformat.writes(whole)[:-40])  # papermill stopped while writing it
    with pytest.raises(nbformat.reader.NotJSONError):
        outputs.keep(notebook, None, "foobar-ops: terminated")
    assert_nowhere(value, notebook.read_bytes())
    assert "********" in notebook.read_text()
