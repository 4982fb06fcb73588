#!/usr/bin/env python3
"""Write the runbook notebooks in runbooks/ from the cell sources below (run after editing them)."""

from __future__ import annotations

from pathlib import Path

import nbformat

RUNBOOKS = Path(__file__).resolve().parent.parent / "runbooks"

DEPLOY_STACK = [
    (
        "markdown",
        """# Deploy the foobar.com stack

Applies the inventory's roles (MariaDB, the app, Nginx, HAProxy): first a plan with diffs (test
mode, nothing changes), then the apply, then a check through the load balancer. Every result is in
the change journal (`foobar-ops records list`).""",
    ),
    (
        "parameters",
        """# Parameters (papermill: -p NAME VALUE)
inventory = "inventories/lab.yml"   # inventory file (relative to the working directory)
roles = []                          # only these roles (empty: every role each host has)
hosts = None                        # host pattern (None: all hosts)
test = False                        # True: plan only, change nothing
verify_requests = 20                # requests sent through the load balancer at the end
output_notebook = None              # set by the runner: linked from the journal""",
    ),
    (
        "code",
        """import foobar_ops as fo  # the public API: one import

params = fo.check_parameters(globals(), {"inventory": (str,), "roles": (list,), "hosts": (str, type(None)),
                                         "test": (bool,), "verify_requests": (int,),
                                         "output_notebook": (str, type(None))})
inv = fo.load_inventory(inventory)
inv""",
    ),
    ("markdown", "## Plan: what would change (test mode)"),
    (
        "code",
        """run = dict(runbook="runbooks/deploy_stack.ipynb", parameters=params, output_notebook=output_notebook)
plan = fo.plan(inv, roles, hosts=hosts, command="runbook deploy_stack: plan", **run)
plan""",
    ),
    ("markdown", "## Apply"),
    (
        "code",
        """report = plan if test else fo.deploy(inv, roles, hosts=hosts, command="runbook deploy_stack: apply", **run)
print(report.summary(diffs=False))
if not report.ok:
    raise RuntimeError(f"apply failed on {', '.join(report.failed_hosts)} (run {report.run_id})")""",
    ),
    ("markdown", "## Verify through the load balancer"),
    (
        "code",
        """check = fo.verify(inv, verify_requests, wait=0 if test else 30)
print(check.line)
check""",
    ),
    (
        "code",
        """if not test:
    assert check.ok, check.line""",
    ),
]


def notebook(cells) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for kind, source in cells:
        if kind == "markdown":
            nb.cells.append(nbformat.v4.new_markdown_cell(source))
        else:
            cell = nbformat.v4.new_code_cell(source)
            if kind == "parameters":
                cell.metadata["tags"] = ["parameters"]
            nb.cells.append(cell)
    for index, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{index}"
    return nb


def main() -> None:
    RUNBOOKS.mkdir(exist_ok=True)
    nbformat.write(notebook(DEPLOY_STACK), RUNBOOKS / "deploy_stack.ipynb")
    print(f"wrote {RUNBOOKS / 'deploy_stack.ipynb'}")


if __name__ == "__main__":
    main()
