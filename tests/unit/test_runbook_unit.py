"""Runbook parameter checks: typos and wrong types are refused, naming the parameter."""

from __future__ import annotations

import pytest

from foobar_ops.runbooks import RunbookParameterError, check_parameters
from tests.conftest import PROJECT

SPEC = {"inventory": (str,), "roles": (list,), "hosts": (str, type(None)), "test": (bool,), "n": (int,)}
GOOD = {"inventory": "inventories/lab.yml", "roles": [], "hosts": None, "test": False, "n": 20}


def test_good_parameters_pass_and_come_back():
    assert check_parameters(dict(GOOD, In=[], Out={}, get_ipython=print, _ih=[]), SPEC) == GOOD


def test_a_typo_is_an_unknown_parameter():
    with pytest.raises(RunbookParameterError, match="unknown parameter.*tset"):
        check_parameters(dict(GOOD, tset=True), SPEC)


@pytest.mark.parametrize("name, value", [("test", "false"), ("roles", "nginx"), ("n", True), ("n", "20"), ("hosts", 3)])
def test_a_wrong_type_names_the_parameter(name, value):
    with pytest.raises(RunbookParameterError, match=f"parameter '{name}' must be"):
        check_parameters(dict(GOOD, **{name: value}), SPEC)


def test_every_runbook_is_a_pair_in_step_and_declares_its_parameters():
    """runbooks/NAME.py (what a review reads) and NAME.ipynb (what Jupyter opens) hold the same cells
    (jupytext keeps them in step when either is saved in Jupyter); each has one parameters cell whose
    parameters are typed, and a header saying what it does."""
    import jupytext

    from foobar_ops.runbooks.catalog import all_runbooks

    pairs = sorted((PROJECT / "runbooks").glob("*.py"))
    assert len(pairs) >= 10
    for text in pairs:
        notebook = text.with_suffix(".ipynb")
        assert notebook.exists(), f"{notebook.name} is missing: run `jupytext --sync {text}`"
        a, b = jupytext.read(text), jupytext.read(notebook)
        assert [(c.cell_type, c.source) for c in a.cells] == [(c.cell_type, c.source) for c in b.cells], text.name
    for runbook in all_runbooks():
        assert runbook.description(), runbook.name
        names = [p.name for p in runbook.parameters()]
        assert len(names) == len(set(names)) and "output_notebook" in names, runbook.name


def test_a_bad_parameter_fails_the_run_naming_it_and_still_writes_the_output_notebook(tmp_path):
    """papermill itself only warns about an unknown name; the runbook's first cell refuses it
    before any host is contacted, and papermill still leaves the output notebook."""
    import papermill

    out = tmp_path / "out.ipynb"
    with pytest.raises(papermill.PapermillExecutionError) as info:
        papermill.execute_notebook(
            str(PROJECT / "runbooks" / "deploy_stack.ipynb"),
            str(out),
            parameters={"tset": True},
            progress_bar=False,
            cwd=str(tmp_path),
        )
    assert info.value.ename == "RunbookParameterError" and "tset" in info.value.evalue
    assert out.exists() and "unknown parameter 'tset' (did you mean 'test'?)" in out.read_text()
    # the same message as the runner's, word for word
    from foobar_ops.runbooks.catalog import find
    from foobar_ops.runbooks.parameters import resolve

    with pytest.raises(RunbookParameterError) as by_runner:
        resolve(find("deploy_stack").parameters(), {"tset": True})
    assert info.value.evalue == str(by_runner.value)
