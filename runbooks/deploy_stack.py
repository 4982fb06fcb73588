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
# # Deploy the foobar.com stack: plan with diffs, apply that plan, verify through the load balancer
#
# **What it does:** applies the inventory's roles (the firewall, MariaDB primary and replica, Nginx,
# HAProxy and keepalived, the app one server at a time, then monitoring) as a reviewed plan: the plan
# (test mode, nothing changes) is shown with its diffs and saved, then exactly that plan is applied (a
# host that drifted meanwhile is refused), then the site is checked through the load balancer, and,
# with monitoring, every Prometheus target is checked up.
#
# **When to use it:** a first deploy, or to converge the stack after an inventory or code change.
#
# **Parameters:** `inventory`, `roles` (only these; empty: all), `hosts` (a host pattern),
# `test` (plan only), `verify_requests`.

# %% tags=["parameters"]
from typing import Optional

inventory: str = "inventories/lab.yml"  # the inventory file
roles: list = []  # only these roles (empty: every role each host has)
hosts: Optional[str] = None  # host pattern (None: all hosts)
test: bool = False  # True: plan only, change nothing
verify_requests: int = 20  # requests sent through the load balancer at the end
run_id: Optional[str] = None  # set by the runner
output_notebook: Optional[str] = None  # set by the runner
lock_wait: float = 0.0  # set by the runner: seconds to wait for another run's host lock (--wait)

# %%
import foobar_ops as fo  # the public API, in one import

rb = fo.runbook(globals(), "deploy_stack")  # checks the parameters above; links every run below to this notebook
inv = fo.load_inventory(inventory)
inv

# %% [markdown]
# ## Plan: what would change (test mode, nothing changes)

# %%
plan = fo.plan(inv, roles, hosts=hosts, save_plan=rb.path("plan.json"), **rb.recorded("plan"))
plan

# %% [markdown]
# ## Apply the plan above, exactly

# %%
if test:
    print("test mode: nothing applied")
    report = plan
else:
    report = rb.apply_plan(inv, plan)
    print(report.summary(diffs=False))
assert report.ok, f"apply failed on {', '.join(report.failed_hosts)} (run {report.run_id})"

# %% [markdown]
# ## Verify through the load balancer

# %%
check = fo.verify(inv, verify_requests, wait=0 if test else 30)
print(check.line)
check

# %%
assert test or check.ok, check.line

# %% [markdown]
# ## Monitoring: every target up (when the inventory has monitoring)

# %%
if test or inv.stack.get("monitoring") is None:
    print("no monitoring to check" if not test else "test mode: monitoring not checked")
else:
    state = fo.health(inv, wait=30)  # Prometheus scrapes every target within two intervals
    display(state.targets_frame(), state.alerts_frame())  # display: IPython's
    assert not state.down, f"targets down: {', '.join(t['job'] + '/' + t['instance'] for t in state.down)}"
