"""Small runbooks written by unit tests of the runner: a header, the parameters cell they share, and
the folders they run in (a runbooks folder of their own, the records folder)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

HEADER = """# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: foobar-ops
#     language: python
#     name: foobar-ops
# ---

"""

PARAMS = """# %% tags=["parameters"]
from typing import Optional  # noqa: F401

from foobar_ops.runbooks import SecretRef  # noqa: F401

count: int = 2  # how many
mode = "fast"  # type: Literal["fast","slow"] how
who: str = ...  # required
token: SecretRef = "env:FOOBAR_TEST_RUNNER_TOKEN"  # a secret, by reference
run_id: Optional[str] = None
output_notebook: Optional[str] = None
"""


def write(folder: Path, name: str, body: str) -> None:
    (folder / f"{name}.py").write_text(
        HEADER + "# %% [markdown]\n# # A test runbook\n\n" + PARAMS + textwrap.dedent(body)
    )


def runbook_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """A runbooks folder of the test's own (FOOBAR_OPS_RUNBOOKS) and a records folder
    (FOOBAR_OPS_HOME) under tmp_path; returns them, with the journal's path and tmp_path."""
    folder = tmp_path / "runbooks"
    folder.mkdir()
    monkeypatch.setenv("FOOBAR_OPS_RUNBOOKS", str(folder))
    monkeypatch.setenv("FOOBAR_OPS_HOME", str(tmp_path / "records"))
    return {"folder": folder, "journal": tmp_path / "journal.sqlite", "records": tmp_path / "records", "tmp": tmp_path}
