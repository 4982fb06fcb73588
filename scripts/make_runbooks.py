#!/usr/bin/env python3
"""Write the runbook notebooks in runbooks/ from the cell sources below (run after editing them)."""
from __future__ import annotations

from pathlib import Path

import nbformat

RUNBOOKS = Path(__file__).resolve().parent.parent / "runbooks"

DEPLOY_STACK = [
    ("markdown", """# Deploy the foobar.com stack

Applies the inventory's roles (MariaDB, the app, Nginx, HAProxy): first a plan with diffs (test
mode, nothing changes), then the apply, then a check through the load balancer. Every result is in
the change journal (`foobar-ops records list`)."""),
    ("parameters", """# Parameters (papermill: -p NAME VALUE)
inventory = "inventories/lab.yml"   # inventory file, relative to the project
roles = []                          # only these roles (empty: every role each host has)
hosts = None                        # host pattern (None: all hosts)
test = False                        # True: plan only, change nothing
verify_requests = 20                # requests sent through the load balancer at the end
output_notebook = None              # set by the runner: linked from the journal"""),
    ("code", """from foobar_ops.runbook import check_parameters  # first: before any other name exists

params = check_parameters(globals(), {"inventory": (str,), "roles": (list,), "hosts": (str, type(None)),
                                      "test": (bool,), "verify_requests": (int,),
                                      "output_notebook": (str, type(None))})
from pathlib import Path
import pandas as pd
import foobar_ops
from foobar_ops import roles as role_mod
from foobar_ops.highstate import apply
from foobar_ops.inventory import load_inventory
from foobar_ops.records import Journal
from foobar_ops.verify import summary_line, through_lb, wait_all_up

PROJECT = Path(foobar_ops.__file__).resolve().parent.parent
inv_path = Path(inventory) if Path(inventory).is_absolute() else PROJECT / inventory
inv = load_inventory(inv_path)
role_mod.check_roles(roles)
journal = Journal()
pd.DataFrame([h.as_dict() for h in inv.select(hosts)])[["name", "address", "roles"]]"""),
    ("markdown", "## Plan: what would change (test mode)"),
    ("code", """plan = apply(inv, role_mod.phases(roles or None), pattern=hosts, test=True, journal=journal,
             command="runbook deploy_stack: plan", runbook="runbooks/deploy_stack.ipynb", parameters=params,
             output_notebook=output_notebook)
plan"""),
    ("code", """frame = plan.frame()
frame[frame["result"].isna() | (frame["result"] == False)][["host", "state", "name", "comment"]]"""),
    ("markdown", "## Apply"),
    ("code", """if test:
    print("test mode: nothing applied")
    report = plan
else:
    report = apply(inv, role_mod.phases(roles or None), pattern=hosts, journal=journal,
                   command="runbook deploy_stack: apply", runbook="runbooks/deploy_stack.ipynb", parameters=params,
                   output_notebook=output_notebook)
print(report.summary(diffs=False))
if not report.ok:
    raise RuntimeError(f"apply failed on {', '.join(report.failed_hosts)} (run {report.run_id})")"""),
    ("markdown", "## Verify through the load balancer"),
    ("code", """if not test:
    print("load balancer sees:", wait_all_up(inv, timeout=30))
checks = through_lb(inv, verify_requests)
line = summary_line(inv, checks)
print(line)
display(checks.groupby(["served_by", "status"]).size().rename("requests").to_frame())
if not test:
    assert (checks["status"] == 200).all(), line
    assert set(checks["served_by"]) == {h.name for h in inv.hosts.values() if "nginx" in h.roles}, line"""),
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
