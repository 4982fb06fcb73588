# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: foobar-ops
#     language: python
#     name: foobar-ops
# ---

# %% [markdown]
# # Firewall: plan the rules, apply them with a commit-confirm, prove them from the hosts
#
# **What it does:** shows each host's firewall table as the topology derives it (the plan, with a
# diff per host; nothing changes), applies exactly that plan one host at a time (each host arms a
# rollback before it loads its new table, and keeps it only once a new SSH connection gets in; a
# host whose rules would lock us out puts its old ones back and stops the run), then checks every
# path from every host and from this machine against what the rules intend.
#
# **When to use it:** after adding a host, changing `stack.firewall` (admin sources, extra
# openings), or to prove the rules hold.
#
# **Parameters:** `inventory`, `hosts` (a host pattern), `test` (plan and check only),
# `check_timeout` (seconds before a connection counts as dropped).

# %% tags=["parameters"]
from typing import Optional

inventory: str = "inventories/lab.yml"  # the inventory file
hosts: Optional[str] = None  # host pattern (None: all hosts)
test: bool = False  # True: plan and check only, change nothing
check_timeout: float = 1.5  # seconds before a connection counts as dropped
run_id: Optional[str] = None  # set by the runner
output_notebook: Optional[str] = None  # set by the runner
lock_wait: float = 0.0  # set by the runner: seconds to wait for another run's host lock (--wait)

# %%
import foobar_ops as fo

rb = fo.runbook(globals(), "firewall")
inv = fo.load_inventory(inventory)
inv

# %% [markdown]
# ## Plan: each host's table as the topology derives it (nothing changes)

# %%
plan = fo.plan(inv, ["firewall"], hosts=hosts, save_plan=rb.path("plan.json"), **rb.recorded("plan"))
print(plan.summary(diffs=True))

# %% [markdown]
# ## Apply the plan, one host at a time, each confirmed by a new SSH connection

# %%
if test:
    print("test mode: nothing applied")
    report = plan
else:
    report = rb.apply_plan(inv, plan)
    print(report.summary(diffs=False))
assert report.ok, f"the firewall was not applied on {', '.join(report.failed_hosts)} (run {report.run_id})"

# %% [markdown]
# ## Check: every path from every host (and this machine), as the rules intend?

# %%
check = fo.firewall_check(inv, timeout=check_timeout)
print(check.line())
check.matrix()

# %%
assert test or check.ok, (
    check.line()
    + "; "
    + "; ".join(
        f"{c.source} -> {c.to}:{c.port} expected {c.expected}, measured {c.measured}" for c in check.differences()
    )
)
